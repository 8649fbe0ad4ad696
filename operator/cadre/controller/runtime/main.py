"""`cadre run`: load the config, start metrics and health endpoints, run Kopf.

Kopf handles SIGTERM and SIGINT: it stops the watches, runs the cleanup handler (the
writers stop between two steps, the leader gives its Lease up) and returns: exit 0. A
replica that lost its Lease stops the same way and exits 1, so its Deployment restarts
it as a standby.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

import kopf
import structlog
from prometheus_client import disable_created_metrics
from pydantic import ValidationError

from cadre import __version__
from cadre.controller.client import USER_AGENT, ApiClient, ClientSettings
from cadre.controller.faults import FaultInjector
from cadre.controller.leader import default_identity
from cadre.controller.runtime.args import add_run_arguments
from cadre.controller.runtime.collector import freeze_survivors, set_collector
from cadre.controller.runtime.context import Runtime
from cadre.controller.runtime.event_loop import event_loop_factory
from cadre.controller.runtime.health import HealthServer
from cadre.controller.runtime.logs import configure_logging
from cadre.controller.team_metrics import serve_metrics
from cadre.core.api.config import OperatorConfig, parse_config

log = structlog.get_logger("cadre.runtime")


def load_config(path: str | None) -> OperatorConfig:
    if not path:
        raise SystemExit("cadre run: no operator config: pass --config or set CADRE_CONFIG")
    try:
        return parse_config(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise SystemExit(f"cadre run: cannot read {path}: {err.strerror}") from err
    except ValidationError as err:
        raise SystemExit(f"cadre run: {path} is not a valid OperatorConfig:\n{err}") from err


def connect(
    config: OperatorConfig,
    kubeconfig: str | None,
    client_name: str,
    faults: FaultInjector | None = None,
) -> ApiClient:
    """The API client with the config's `api` settings; `client_name` goes into its user
    agent (what the audit log shows)."""
    api = config.api
    return ApiClient.connect(
        kubeconfig,
        ClientSettings(
            timeout_seconds=api.timeout_seconds,
            retries=api.retries,
            backoff_max_seconds=api.backoff_max_seconds,
            max_connections=api.max_connections,
        ),
        user_agent=f"{USER_AGENT} ({client_name})",
        faults=faults,
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(args.log_format)
    set_collector(config.controller.gc_threshold)
    identity = args.identity or default_identity()
    faults = FaultInjector() if args.enable_fault_injection else None
    client = connect(config, args.kubeconfig, identity, faults)
    metrics_port = config.metrics_port if args.metrics_port is None else args.metrics_port
    health_port = config.health_port if args.health_port is None else args.health_port
    # No `_created` series: one more per team and counter or histogram (S8: 1,000 teams
    # gave 36,000 series), and no dashboard or alert reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    # The per-team families come from cadre.controller.team_metrics (text kept per team).
    server, _ = serve_metrics(metrics_port, args.bind_address)
    log.info(
        "cadre operator starting",
        version=__version__,
        identity=identity,
        server=client.configuration.host,
        metrics=f"http://{args.bind_address}:{server.server_port}/metrics",
        health=f"http://{args.bind_address}:{health_port}/healthz",
        fault_injection=faults is not None,
        event_loop=config.controller.event_loop,
    )
    runtime = Runtime.create(config, client, identity=identity)
    runtime.health_server = HealthServer(
        alive=runtime.alive, ready=runtime.ready, details=runtime.health, faults=faults
    )
    runtime.health_address = (args.bind_address, health_port)
    # What the first fill brought in and the modules stay for the whole run: no full
    # collection needs to scan them again.
    runtime.after_fill = freeze_survivors

    # Registers the settings, then the handlers, with Kopf's default registry.
    for module in ("cadre.controller.runtime.settings", "cadre.controller.handlers"):
        importlib.import_module(module)

    # The Runner, not kopf.run's own asyncio.run, so that the loop is the configured one;
    # it still closes async generators and the default executor at the end.
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(config.controller.event_loop)) as r:
            kopf.run(
                clusterwide=True,
                standalone=True,
                memo=runtime,
                stop_flag=runtime.stop_flag,
                loop=r.get_loop(),
            )
    finally:
        server.shutdown()
        log.info("cadre operator stopped", lost_leadership=runtime.lost_leadership)
    return 1 if runtime.lost_leadership else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="cadre run")
    add_run_arguments(parser)
    sys.exit(run(parser.parse_args()))
