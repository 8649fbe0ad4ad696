"""`cadre run` as a subprocess for the integration and e2e tests.

It runs `python -m cadre.tools.cli run` against a test cluster's kubeconfig with the example
operator config, metrics and health on free 127.0.0.1 ports, logs (JSON) to a file.
It dies with the test run (PR_SET_PDEATHSIG) and `stop()` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from localcluster import LocalCluster, procs

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = REPO / "examples" / "operator-config.yaml"
RBAC = REPO / "manifests" / "rbac.yaml"
ROLES = REPO / "manifests" / "roles.yaml"
POLICIES = REPO / "manifests" / "admission-policies.yaml"
DEFAULT_IDENTITY = "cadre-operator-0"
"""As a pod's name: a process started again after a kill takes its lease back at once,
as a container restarted in its pod does. Replicas of one test get names of their own."""


def operator_kubeconfig(cluster: LocalCluster, path: Path) -> Path:
    """A kubeconfig for the ServiceAccount of manifests/rbac.yaml (namespace cadre-system),
    so the operator runs with exactly the permissions the ClusterRole grants, and under
    the admission policies of the install (manifests/admission-policies.yaml)."""
    cluster.kubectl("create", "namespace", "cadre-system", check=False)
    for manifest in (RBAC, ROLES, POLICIES):
        cluster.kubectl("apply", "-f", str(manifest))
    return service_account_kubeconfig(cluster, "cadre-system", "cadre-operator", path)


def service_account_kubeconfig(
    cluster: LocalCluster,
    namespace: str,
    account: str,
    path: Path,
    *,
    context_namespace: str | None = None,
) -> Path:
    """The credentials a pod of ServiceAccount `namespace/account` would have (a
    TokenRequest's token, valid an hour), as a kubeconfig for the cluster at `path`."""
    token = cluster.api.call(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context: dict[str, str] = {"cluster": admin["clusters"][0]["name"], "user": account}
    if context_namespace is not None:
        context["namespace"] = context_namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": context}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    return path


class OperatorProcess:
    """`kubeconfig=None` runs without `--kubeconfig` (in-cluster when `env` sets
    KUBERNETES_SERVICE_HOST); `env` is added to this process's environment."""

    def __init__(
        self,
        kubeconfig: Path | str | None,
        workdir: Path,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        identity: str | None = None,
        fault_injection: bool = False,
    ) -> None:
        self.kubeconfig = None if kubeconfig is None else str(kubeconfig)
        self.config = config or EXAMPLE_CONFIG
        self.env = None if env is None else {**os.environ, **env}
        self.identity = identity or DEFAULT_IDENTITY
        self.fault_injection = fault_injection
        self.log_path = workdir / f"cadre-operator{'-' + identity if identity else ''}.log"
        self.metrics_port, self.health_port = procs.free_ports(2)
        self._rec: procs.ProcRecord | None = None
        self._popen: Any = None

    def start(
        self,
        timeout: float = 60,
        *,
        die_with_parent: bool = True,
        on_spawn: Callable[[procs.ProcRecord], None] | None = None,
    ) -> OperatorProcess:
        """Start `cadre run` and wait until it is healthy. `on_spawn` gets the process
        record at once (a caller that lets the process outlive it records it)."""
        argv = [
            sys.executable,
            "-m",
            "cadre.tools.cli",
            "run",
            "--config",
            str(self.config),
            *(["--kubeconfig", self.kubeconfig] if self.kubeconfig is not None else []),
            "--bind-address",
            "127.0.0.1",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--log-format",
            "json",
            *(["--identity", self.identity] if self.identity else []),
            *(["--enable-fault-injection"] if self.fault_injection else []),
        ]
        self._rec, self._popen = procs.start(
            "cadre-operator", argv, self.log_path, env=self.env, die_with_parent=die_with_parent
        )
        if on_spawn is not None:
            on_spawn(self._rec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"cadre run exited:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"cadre run not healthy in {timeout}s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        """Ready: the cache is filled (a standby is ready too)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def readiness(self) -> dict[str, Any]:
        """/readyz's answer: ready, leader, identity, holder, cache sizes."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
            ) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))

    def leading(self) -> bool:
        try:
            return bool(self.readiness().get("leader"))
        except OSError:
            return False

    def inject(self, **rule: Any) -> dict[str, Any]:
        """Make the next `times` API calls matching verb/resource fail with `fault`
        (needs fault_injection=True); see cadre.controller.faults."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.health_port}/debug/faults",
            data=json.dumps(rule).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return dict(json.loads(resp.read()))

    def faults(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.health_port}/debug/faults", timeout=5
        ) as resp:
            return dict(json.loads(resp.read()))

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one series of the operator's metrics (None when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if labels and line.startswith(f"{name}{{"):
                label_text, value = line[len(name) + 1 :].rsplit("} ", 1)
                if ",".join(sorted(label_text.split(","))) == wanted:
                    return float(value)
            elif not labels and line.startswith(f"{name} "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_metric_increase(self, name: str, by: float = 1, timeout: float = 30) -> None:
        """Wait until counter `name` (no labels) grew by `by`: that many more rounds of
        whatever it counts happened."""
        start = self.metric(name) or 0.0
        deadline = time.monotonic() + timeout
        while (self.metric(name) or 0.0) < start + by:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not grow by {by} in {timeout}s")
            time.sleep(0.1)

    def api_requests(self, ok_only: bool = False) -> dict[tuple[str, str], float]:
        """cadre_api_requests_total summed by (verb, resource); 2xx answers only if asked."""
        out: dict[tuple[str, str], float] = {}
        for line in self.metrics().splitlines():
            if not line.startswith("cadre_api_requests_total{"):
                continue
            labels_text, value = line[len("cadre_api_requests_total{") :].rsplit("} ", 1)
            labels = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
            if ok_only and not labels["code"].strip('"').startswith("2"):
                continue
            key = (labels["verb"].strip('"'), labels["resource"].strip('"'))
            out[key] = out.get(key, 0.0) + float(value)
        return out

    def writes(self, *, accounting: bool = False) -> float:
        """Successful mutating requests (POST, PUT, PATCH, DELETE) so far. Unless
        `accounting`, without the ResourceBudget status writes (per team, not per
        workload) and the pods' finalizer removals (when pods are deleted, which earlier
        tests' clean-up does in the background). Never the Lease's renewals."""
        return sum(
            n
            for (verb, resource), n in self.api_requests(ok_only=True).items()
            if verb in ("POST", "PUT", "PATCH", "DELETE")
            and resource != "leases"  # the leader's renewals, every retryPeriodSeconds
            and (accounting or resource not in ("resourcebudgets/status", "pods"))
        )

    def quiet_writes(self, quiet: float = 2.0, timeout: float = 30) -> float:
        """Wait until no write happened for `quiet` seconds (earlier tests' objects settle);
        returns the write count then."""
        deadline = time.monotonic() + timeout
        last, since = self.writes(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.writes()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int:
        return int(self._popen.pid)

    def pause(self) -> None:
        """SIGSTOP: the process stops answering and writing, as a partitioned replica."""
        self._popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._popen.send_signal(signal.SIGCONT)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit status."""
        return int(self._popen.wait(timeout=timeout))

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would; nothing runs the cleanup."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(signal.SIGKILL)
            self._popen.wait(timeout=10)

    def stop(self, grace: float = 15) -> int | None:
        """SIGTERM (graceful), SIGKILL after `grace` s; returns the exit status."""
        if self._rec is not None:
            procs.stop(self._rec, self._popen, grace=grace)
        return None if self._popen is None else self._popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        return procs.log_tail(self.log_path, lines)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


@contextmanager
def running_operator(
    kubeconfig: Path | str, workdir: Path, config: Path | None = None
) -> Iterator[OperatorProcess]:
    """The operator for the duration of the block; always stopped afterwards."""
    op = OperatorProcess(kubeconfig, workdir, config)
    try:
        yield op.start()
    finally:
        op.stop()
