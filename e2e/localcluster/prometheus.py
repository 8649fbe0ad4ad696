"""A Prometheus scraping the Cadre operator, on 127.0.0.1 (e2e tests and `make up`).

The binary is the distribution's (/usr/bin/prometheus, Debian's `prometheus` package; env
CADRE_PROMETHEUS for another). It runs with a generated configuration: the operator's
metrics endpoints scraped every second as job `cadre-operator`, the project's alert rules
(manifests/monitoring/cadre-alerts.rules.yaml) loaded when that file exists, its TSDB in
the given folder. Only loopback addresses are ever scraped or queried.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import procs
from .api import wait_for
from .cluster import REPO_ROOT

NAME = "prometheus"
JOB = "cadre-operator"
RULES = REPO_ROOT / "manifests" / "monitoring" / "cadre-alerts.rules.yaml"
SCRAPE_INTERVAL = "1s"


class PrometheusError(RuntimeError):
    pass


def binary() -> str:
    return os.environ.get("CADRE_PROMETHEUS", "/usr/bin/prometheus")


def available() -> bool:
    return Path(binary()).is_file() and os.access(binary(), os.X_OK)


def default_rules() -> list[Path]:
    """The project's alert rules, if they exist yet."""
    return [RULES] if RULES.is_file() else []


def write_config(
    folder: Path, targets: Sequence[str], rules: Sequence[Path] = (), job: str = JOB
) -> Path:
    """prometheus.yml scraping `targets` (host:port, loopback only) as `job`."""
    for target in targets:
        if not target.startswith("127.0.0.1:"):
            raise ValueError(f"only loopback targets are scraped here, not {target}")
    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            # Rules every 2 s: alerts show up quickly without a core spent on them.
            "evaluation_interval": "2s",
        },
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def argv(config: Path, storage: Path, port: int) -> list[str]:
    return [
        binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_ready(port: int, alive: Callable[[], bool], log: Path, timeout: float = 60) -> None:
    """Poll /-/ready until it answers 200; fail at once if the process exits."""

    def still_running() -> None:
        if not alive():
            raise PrometheusError(f"prometheus exited; last lines of {log}:\n{procs.log_tail(log)}")

    try:
        wait_for("prometheus /-/ready", lambda: ready(port), timeout, on_wait=still_running)
    except TimeoutError as err:
        raise PrometheusError(f"{err}:\n{procs.log_tail(log)}") from err


class Client:
    """Prometheus' HTTP API on 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; the whole answer (status, data or errorType and error)."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as err:  # 400/422: a bad query, with its error
            return dict(json.loads(err.read()))

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def series_count(self, expr: str) -> int:
        answer = self.query(expr)
        return len(answer["data"]["result"]) if answer.get("status") == "success" else 0

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets")["data"]["activeTargets"]
        return targets

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["data"]["groups"]
        return groups


class PrometheusProcess(Client):
    """Prometheus as a child process of the tests (dies with the test run)."""

    def __init__(
        self, workdir: Path, targets: Sequence[str], rules: Sequence[Path] | None = None
    ) -> None:
        (port,) = procs.free_ports(1)
        super().__init__(port)
        self.workdir = workdir
        self.rules = default_rules() if rules is None else list(rules)
        self.config = write_config(workdir, targets, self.rules)
        self.log_path = workdir / "prometheus.log"
        self._rec: procs.ProcRecord | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> PrometheusProcess:
        self._rec, self._popen = procs.start(
            NAME,
            argv(self.config, self.workdir / "data", self.port),
            self.log_path,
            die_with_parent=True,
        )
        popen = self._popen
        try:
            wait_ready(self.port, lambda: popen.poll() is None, self.log_path, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 10) -> None:
        if self._rec is not None:
            procs.stop(self._rec, self._popen, grace=grace)

    def log_tail(self, lines: int = 30) -> str:
        return procs.log_tail(self.log_path, lines)
