"""`cadre run`: load the config, start metrics and health endpoints, run Kopf.

Kopf handles SIGTERM and SIGINT: it stops the watches, runs the cleanup handlers (the
admission loop stops between two passes) and returns; the process exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import kopf
import structlog
from prometheus_client import start_http_server
from pydantic import ValidationError

from cadre import __version__
from cadre.controller.client import Kube
from cadre.controller.runtime.args import add_run_arguments
from cadre.controller.runtime.context import Runtime
from cadre.controller.runtime.logs import configure_logging
from cadre.core.api.config import OperatorConfig, parse_config

log = structlog.get_logger("cadre.controller.runtime")


def load_config(path: str | None) -> OperatorConfig:
    if not path:
        raise SystemExit("cadre run: no operator config: pass --config or set CADRE_CONFIG")
    try:
        return parse_config(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise SystemExit(f"cadre run: cannot read {path}: {err.strerror}") from err
    except ValidationError as err:
        raise SystemExit(f"cadre run: {path} is not a valid OperatorConfig:\n{err}") from err


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(args.log_format)
    kube = Kube.connect(args.kubeconfig)
    metrics_port = config.metrics_port if args.metrics_port is None else args.metrics_port
    health_port = config.health_port if args.health_port is None else args.health_port
    server, _ = start_http_server(metrics_port, addr=args.bind_address)
    log.info(
        "cadre operator starting",
        version=__version__,
        server=kube.configuration.host,
        metrics=f"http://{args.bind_address}:{server.server_port}/metrics",
        health=f"http://{args.bind_address}:{health_port}/healthz",
    )
    runtime = Runtime.create(config, kube)

    # Registers the settings, then the handlers, with Kopf's default registry.
    for module in ("cadre.controller.runtime.settings", "cadre.controller.handlers"):
        importlib.import_module(module)

    try:
        kopf.run(
            clusterwide=True,
            standalone=True,
            liveness_endpoint=f"http://{args.bind_address}:{health_port}/healthz",
            memo=runtime,
        )
    finally:
        server.shutdown()
        kube.close()
        log.info("cadre operator stopped")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="cadre run")
    add_run_arguments(parser)
    sys.exit(run(parser.parse_args()))
