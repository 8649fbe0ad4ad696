"""Cadre's local Kubernetes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok (fake GPU nodes), started as plain processes on 127.0.0.1 and tracked by PID.

    cluster = LocalCluster(mode="cluster").up()     # or: with LocalCluster() as cluster:
    cluster.kubeconfig                               # admin kubeconfig (system:masters)
    cluster.create_namespace("demo")                 # waits for its default ServiceAccount
    cluster.down()                                   # TERM then KILL, by PID; nothing left

Modes: "apiserver" (etcd + kube-apiserver, for the integration tests) and "cluster"
(everything plus the node pool, for e2e and the benchmarks). See docs/local-cluster.md.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from . import audit, binaries, nodepool, pki, procs
from .api import DEFAULT_USER_AGENT, Api, ApiError, client_tls, unverified_tls, wait_for

Mode = Literal["apiserver", "cluster"]
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
KWOK_CONFIG = REPO_ROOT / "e2e" / "cluster" / "kwok" / "kwok.yaml"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTEXT = "cadre-local"
APISERVER = "kube-apiserver"  # the process record's name
ETCD_DIR_PREFIX = "cadre-etcd-"

# kube-controller-manager runs only what Cadre's workloads and tests touch. The
# node-lifecycle controller is left out on purpose: fake nodes send no heartbeats, so
# nothing marks them NotReady and 1,000 idle nodes cost no writes (see the docs).
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "replicaset-controller",
    "deployment-controller",
    "statefulset-controller",
    "daemonset-controller",
    "horizontal-pod-autoscaler-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "pod-garbage-collector-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    # Removes the finalizer every PodGroup gets (scheduling.k8s.io/podgroup-protection) once
    # no pod of the group is left: without it a PodGroup, and its namespace, never go.
    "podgroup-protection-controller",
)
# Workload-aware (gang) scheduling, alpha in 1.36: the scheduling.k8s.io/v1alpha2 API
# (Workload, PodGroup) and pods' spec.schedulingGroup; kube-scheduler's GangScheduling
# plugin binds all pods of a PodGroup or none. The same gates on every component.
FEATURE_GATES = "GenericWorkload=true,GangScheduling=true"
RUNTIME_CONFIG = "scheduling.k8s.io/v1alpha2=true"
API_QPS, API_BURST = 200, 400  # controller-manager, scheduler (defaults: 20/30, 50/100)


class ClusterError(RuntimeError):
    """The cluster could not be started (or is in a state that forbids the request)."""


def default_state_dir() -> Path:
    return Path(os.environ.get("CADRE_CLUSTER_DIR") or REPO_ROOT / ".cluster")


class LocalCluster:
    """One local cluster, owned through its state dir (state.json lists its processes)."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        mode: Mode = "cluster",
        *,
        nodepool_file: Path | str = nodepool.DEFAULT_NODEPOOL,
        scale: int = 1,
        build: bool = True,
        die_with_parent: bool = False,
        build_log: Any = None,
        audit_log_maxsize_mb: int = 500,
        audit: bool = True,
    ) -> None:
        if mode not in ("apiserver", "cluster"):
            raise ValueError(f"mode is 'apiserver' or 'cluster', not {mode!r}")
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.mode: Mode = mode
        self.nodepool_file = Path(nodepool_file)
        self.scale = scale
        self.build = build
        self.die_with_parent = die_with_parent
        self.build_log = build_log
        self.audit_log_maxsize_mb = audit_log_maxsize_mb
        self.audit = audit
        """Write the audit log (fault tests read it). Benchmarks set False: it is a test
        instrument, written in blocking mode on every mutating request, and Kueue's
        harness (envtest) runs its API server without one."""
        self.bins: dict[str, binaries.Binary] = {}
        self.records: list[procs.ProcRecord] = []
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.etcd_data_dir: Path | None = None
        self.timings: dict[str, float] = {}
        self.node_count = 0
        self._api: Api | None = None
        self._apiserver_base_argv: dict[str, list[str]] = {}
        self._stopped: set[str] = set()  # stopped on purpose (stop_apiserver)

    # ---- paths ---------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON line per mutating request (who, what)."""
        return self.logs_dir / "audit.log"

    @property
    def pki_paths(self) -> pki.Pki:
        return pki.Pki(self.state_dir / "pki")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def __fspath__(self) -> str:  # a cluster can be passed where a kubeconfig path is wanted
        return str(self.kubeconfig)

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = self.admin_api()
        return self._api

    def admin_api(self, user_agent: str = DEFAULT_USER_AGENT) -> Api:
        """A new admin client whose requests carry `user_agent` (how the audit log tells
        clients with one identity apart, e.g. `cadre-operator/0.1.0 (replica-a)`)."""
        p = self.pki_paths
        tls = client_tls(p.ca_cert, p.client_cert("admin"), p.client_key("admin"))
        return Api("127.0.0.1", self.ports["apiserver"], tls, user_agent=user_agent)

    # ---- state ---------------------------------------------------------------------
    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "mode": self.mode,
            "ports": self.ports,
            "server": self.server if "apiserver" in self.ports else None,
            "kubeconfig": str(self.kubeconfig),
            "etcd_data_dir": str(self.etcd_data_dir) if self.etcd_data_dir else None,
            "binaries": {n: str(b.path) for n, b in self.bins.items()},
            "binary_sources": {n: b.source for n, b in self.bins.items()},
            "processes": [r.to_json() for r in self.records],
            "node_count": self.node_count,
            "timings": self.timings,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    @classmethod
    def attach(cls, state_dir: Path | str | None = None) -> LocalCluster:
        """The cluster recorded in state_dir (for status/down from another process)."""
        c = cls(state_dir)
        if not c.state_file.exists():
            raise ClusterError(f"no cluster recorded in {c.state_dir}")
        data = json.loads(c.state_file.read_text())
        c.mode = data["mode"]
        c.ports = data["ports"]
        c.etcd_data_dir = Path(data["etcd_data_dir"]) if data.get("etcd_data_dir") else None
        c.records = [procs.ProcRecord.from_json(r) for r in data["processes"]]
        c.bins = {
            n: binaries.Binary(n, Path(p), data.get("binary_sources", {}).get(n, "?"))
            for n, p in data.get("binaries", {}).items()
        }
        c.node_count = data.get("node_count", 0)
        c.timings = data.get("timings", {})
        return c

    def alive(self) -> dict[str, bool]:
        return {r.name: procs.is_alive(r) for r in self.records}

    def pids(self) -> dict[str, int]:
        return {r.name: r.pid for r in self.records}

    def rss_kib(self) -> dict[str, int]:
        return {r.name: procs.rss_kib(r) for r in self.records}

    def status(self) -> dict[str, Any]:
        alive = self.alive()
        rss = self.rss_kib()
        return {
            "state_dir": str(self.state_dir),
            "mode": self.mode,
            "running": bool(alive) and all(alive.values()),
            "server": self.server if "apiserver" in self.ports else None,
            "kubeconfig": str(self.kubeconfig),
            "processes": {
                r.name: {"pid": r.pid, "alive": alive[r.name], "rss_mib": round(rss[r.name] / 1024)}
                for r in self.records
            },
            "rss_total_mib": round(sum(rss.values()) / 1024),
            "nodes": self.node_count,
            "timings_s": self.timings,
        }

    # ---- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> LocalCluster:
        """Starts the cluster; on any failure (or Ctrl-C) stops what it started, then raises."""
        if self.state_file.exists():
            previous = LocalCluster.attach(self.state_dir)
            if any(previous.alive().values()):
                raise ClusterError(
                    f"a cluster is already running from {self.state_dir} "
                    f"(pids {previous.pids()}); run `down` first or use another CADRE_CLUSTER_DIR"
                )
            previous.down()  # stale record: clean its etcd data dir
        needed = (
            binaries.APISERVER_BINARIES if self.mode == "apiserver" else binaries.CLUSTER_BINARIES
        )
        try:
            self.bins = binaries.ensure(needed, build=self.build, log=self.build_log)
        except binaries.MissingBinariesError as exc:
            raise ClusterError(str(exc)) from exc
        for extra in ("kubectl",):
            self.bins.update(binaries.find((extra,)))
        t_start = time.monotonic()
        try:
            self._start(t_start)
        except BaseException:
            self.down()
            raise
        self.timings["total"] = round(time.monotonic() - t_start, 2)
        self._save()
        return self

    def _mark(self, what: str, since: float) -> None:
        self.timings[what] = round(time.monotonic() - since, 2)

    def _start(self, t_start: float) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.logs_dir, ignore_errors=True)
        self.logs_dir.mkdir()
        p = pki.generate(self.state_dir / "pki")
        names = ["etcd", "etcd-peer", "apiserver"]
        if self.mode == "cluster":
            names += ["kube-controller-manager", "kube-scheduler"]
        self.ports = dict(zip(names, procs.free_ports(len(names)), strict=True))
        shm = Path("/dev/shm")
        if shm.is_dir():
            sweep_orphan_etcd_dirs(shm)
        self.etcd_data_dir = Path(
            tempfile.mkdtemp(prefix=ETCD_DIR_PREFIX, dir=shm if shm.is_dir() else self.state_dir)
        )
        self._save()
        self._mark("pki", t_start)

        # etcd, on tmpfs, without fsync: a test cluster needs no durability.
        t = time.monotonic()
        ep, pp = self.ports["etcd"], self.ports["etcd-peer"]
        self._spawn(
            "etcd",
            [
                str(self.bins["etcd"].path),
                "--name=cadre",
                f"--data-dir={self.etcd_data_dir / 'data'}",
                f"--listen-client-urls=http://127.0.0.1:{ep}",
                f"--advertise-client-urls=http://127.0.0.1:{ep}",
                f"--listen-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-cluster=cadre=http://127.0.0.1:{pp}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        wait_for("etcd /health", lambda: _etcd_healthy(ep), 30, on_wait=self._check_alive)
        self._mark("etcd", t)

        t = time.monotonic()
        self._spawn(
            APISERVER,
            [
                str(self.bins["kube-apiserver"].path),
                f"--etcd-servers=http://127.0.0.1:{ep}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                "--advertise-address=127.0.0.1",
                # The `kubernetes` Service gets no endpoints: 127.0.0.1 is not a valid
                # endpoint address, and nothing in the fake cluster could dial it anyway.
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={p.serving_cert}",
                f"--tls-private-key-file={p.serving_key}",
                f"--client-ca-file={p.ca_cert}",
                "--authorization-mode=Node,RBAC",
                *self._audit_flags(),
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
                "--allow-privileged=true",
                # Nodes are born without the not-ready taint: no node-lifecycle controller
                # runs to lift it (kwok marks them Ready at once).
                "--disable-admission-plugins=TaintNodesByCondition",
                f"--requestheader-client-ca-file={p.front_proxy_ca}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={p.front_proxy_cert}",
                f"--proxy-client-key-file={p.front_proxy_key}",
                f"--cert-dir={self.state_dir / 'apiserver-certs'}",
                # On SIGTERM: answer 429 Retry-After until in-flight requests drain, then
                # close the connections (watches too) within 2 s. The default waits up to
                # --request-timeout (60 s) for open watches: with a controller or an
                # operator connected, a SIGTERM then always ran into the SIGKILL.
                "--shutdown-send-retry-after=true",
                f"--feature-gates={FEATURE_GATES}",
                f"--runtime-config={RUNTIME_CONFIG}",
            ],
        )
        wait_for("kube-apiserver /readyz", self._apiserver_ready, 90, on_wait=self._check_alive)
        self._mark("kube-apiserver", t)
        pki.write_kubeconfig(self.kubeconfig, self.server, p, "admin", CONTEXT)
        if self.mode == "cluster":
            self._start_rest(p)

    def _start_rest(self, p: pki.Pki) -> None:
        t = time.monotonic()
        kcm_kc = pki.write_kubeconfig(
            self.state_dir / "kube-controller-manager.kubeconfig",
            self.server,
            p,
            "kube-controller-manager",
            CONTEXT,
        )
        sched_kc = pki.write_kubeconfig(
            self.state_dir / "kube-scheduler.kubeconfig", self.server, p, "kube-scheduler", CONTEXT
        )
        kwok_kc = pki.write_kubeconfig(
            self.state_dir / "kwok.kubeconfig", self.server, p, "kwok", CONTEXT
        )
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bins["kube-controller-manager"].path),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['kube-controller-manager']}",
                f"--cert-dir={self.state_dir / 'kcm-certs'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_cert}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--kube-api-qps={API_QPS}",
                f"--kube-api-burst={API_BURST}",
                "--cluster-name=cadre-local",
                f"--feature-gates={FEATURE_GATES}",
            ],
        )
        sched_cfg = self.state_dir / "kube-scheduler.yaml"
        sched_cfg.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(sched_kc),
                        "qps": API_QPS,
                        "burst": API_BURST,
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bins["kube-scheduler"].path),
                f"--config={sched_cfg}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['kube-scheduler']}",
                f"--cert-dir={self.state_dir / 'scheduler-certs'}",
                f"--feature-gates={FEATURE_GATES}",
            ],
        )
        kwok_home = self.state_dir / "kwok-home"  # so ~/.kwok/kwok.yaml is never read
        kwok_home.mkdir(exist_ok=True)
        self._spawn(
            "kwok",
            [
                str(self.bins["kwok"].path),
                f"--kubeconfig={kwok_kc}",
                f"--config={KWOK_CONFIG}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1",
            ],
            env={**os.environ, "KWOK_WORKDIR": str(kwok_home)},
        )
        self._mark("start-components", t)

        t = time.monotonic()
        nodes = nodepool.node_manifests(nodepool.load(self.nodepool_file), self.scale)
        nodepool.create_nodes(self.api, nodes)
        self.node_count = len(nodes)
        self._save()
        self._mark("create-nodes", t)

        t = time.monotonic()
        for comp in ("kube-controller-manager", "kube-scheduler"):
            port = self.ports[comp]
            wait_for(
                f"{comp} /healthz",
                lambda port=port: _healthz(port),  # type: ignore[misc]
                60,
                on_wait=self._check_alive,
            )
        self.wait_default_service_account("default", timeout=60)
        wait_for(
            f"{len(nodes)} fake nodes Ready",
            lambda: self.ready_node_count() >= len(nodes),
            60 + len(nodes) / 20,
            interval=0.25,
            on_wait=self._check_alive,
        )
        self._mark("controllers-and-nodes-ready", t)

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        return [
            f"--audit-policy-file={self._write_audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            # Written while the request is answered, not batched later (the default
            # for the log backend, spelled out: audit.py relies on it).
            "--audit-log-mode=blocking",
            f"--audit-log-maxsize={self.audit_log_maxsize_mb}",
            "--audit-log-maxbackup=1",
        ]

    def _write_audit_policy(self) -> Path:
        # Mutating requests only, at Metadata level: enough to count each client's writes
        # (the operator's API economy is measured here, on the server's side) and to tell
        # which client wrote what and when (fault tests); see audit.POLICY.
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(audit.POLICY)
        return path

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start one more process owned by this cluster: `down` stops it by PID too."""
        self._spawn(name, argv, env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        rec, popen = procs.start(
            name, argv, self.logs_dir / f"{name}.log", env=env, die_with_parent=self.die_with_parent
        )
        self.records.append(rec)
        self._popens[rec.pid] = popen
        self._save()

    def _check_alive(self) -> None:
        for rec in self.records:
            if rec.name not in self._stopped and not procs.is_alive(rec):
                raise ClusterError(
                    f"{rec.name} (pid {rec.pid}) exited during start-up; last lines of {rec.log}:\n"
                    + procs.log_tail(rec.log)
                )

    def _apiserver_ready(self) -> bool:
        status, _ = self.api.request("GET", "/readyz")
        return status == 200

    def down(self) -> None:
        """Stops every recorded process (reverse start order), by PID; removes etcd's data."""
        for rec in reversed(self.records):
            procs.stop(rec, self._popens.get(rec.pid))
        left = [r for r in self.records if procs.is_alive(r)]
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.etcd_data_dir is not None and self.etcd_data_dir.exists():
            shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
        if left:
            raise ClusterError(f"still alive after SIGKILL: {[(r.name, r.pid) for r in left]}")
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    # ---- faults: the API server goes away and comes back ---------------------------
    def _apiserver_record(self) -> procs.ProcRecord:
        for rec in self.records:
            if rec.name == APISERVER:
                return rec
        raise ClusterError(f"no {APISERVER} recorded in {self.state_dir}: is the cluster up?")

    def stop_apiserver(self, grace: float = 10) -> None:
        """Stops kube-apiserver alone: SIGTERM (its graceful shutdown), SIGKILL after
        `grace` s; grace=0 is SIGKILL at once, a crash. etcd keeps running, and so keeps
        the data; the controllers, scheduler and kwok keep retrying. Returns once the
        process is gone, so its port refuses connections until start_apiserver()."""
        rec = self._apiserver_record()
        self._stopped.add(APISERVER)  # _check_alive must not take it for a crash
        procs.stop(rec, self._popens.pop(rec.pid, None), grace=grace)
        if procs.is_alive(rec):
            raise ClusterError(f"{APISERVER} (pid {rec.pid}) still alive after SIGKILL")
        if self._api is not None:
            self._api.close()  # its keep-alive connection is dead; the next call redials
        self._save()

    def start_apiserver(self, timeout: float = 90, extra_args: Sequence[str] = ()) -> float:
        """Starts kube-apiserver again with the argv it was first started with (same
        port, certificates, etcd, audit log, which it appends to), waits for /readyz and
        records the new PID in state.json. Returns the seconds it took to be ready.
        `extra_args` are added for this start only (a later restart drops them): for
        example `--etcd-compaction-interval=1s`, so that clients that come back with an
        old resourceVersion get "410 Gone" and must relist."""
        rec = self._apiserver_record()
        if procs.is_alive(rec):
            raise ClusterError(f"{APISERVER} is running (pid {rec.pid}): stop it first")
        t = time.monotonic()
        base = self._apiserver_base_argv.setdefault(rec.name, list(rec.argv))
        new, popen = procs.start(
            rec.name, [*base, *extra_args], Path(rec.log), die_with_parent=self.die_with_parent
        )
        self.records[self.records.index(rec)] = new  # keeps the order `down` stops them in
        self._popens[new.pid] = popen
        self._stopped.discard(APISERVER)
        self._save()
        wait_for(
            f"{APISERVER} /readyz after a restart",
            self._apiserver_ready,
            timeout,
            on_wait=self._check_alive,
        )
        self._mark("apiserver-start", t)
        self._save()
        return time.monotonic() - t

    def restart_apiserver(
        self,
        down_seconds: float = 0,
        grace: float = 10,
        timeout: float = 90,
        extra_args: Sequence[str] = (),
    ) -> float:
        """stop_apiserver(grace), stays down `down_seconds` (the fault's length, a
        deliberate sleep), start_apiserver(). Returns the seconds from the stop until
        /readyz, also kept in timings["apiserver-restart"]."""
        t = time.monotonic()
        self.stop_apiserver(grace)
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start_apiserver(timeout, extra_args)
        self._mark("apiserver-restart", t)
        self._save()
        return time.monotonic() - t

    def wait_components_reconnected(self, timeout: float = 90) -> float:
        """Cluster mode: waits until kube-controller-manager, kube-scheduler and kwok work
        with the API server again (after start_apiserver): a throwaway namespace gets its
        `default` ServiceAccount and a pod in it is bound and reported Running; the
        namespace is then deleted (not waited for). Returns the seconds it took (0 in
        apiserver mode). client-go backs off per informer after failed lists and watches
        (0.8 s doubling to 30 s, reset after 2 min without one), and a restarting API
        server answers 403 until its RBAC cache is filled: a first restart is caught up
        in ~2 s, a third within a minute took 25 s here."""
        if self.mode != "cluster":
            return 0.0
        t = time.monotonic()
        ns = self.create_namespace(f"reconnect-{uuid.uuid4().hex[:8]}", timeout=timeout)
        pods = f"/api/v1/namespaces/{ns}/pods"
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe"},
            "spec": {
                "tolerations": [{"operator": "Exists"}],  # any fake node will do
                "containers": [
                    {
                        "name": "probe",
                        "image": "registry.invalid/probe",  # never pulled: no kubelet
                        "resources": {"requests": {"cpu": "1m"}},
                    }
                ],
            },
        }
        self.api.create(pods, probe)

        def running() -> bool:
            pod = self.api.get(f"{pods}/probe")
            return bool(pod["spec"].get("nodeName")) and pod["status"].get("phase") == "Running"

        left = max(1.0, timeout - (time.monotonic() - t))
        wait_for("a new pod bound and Running", running, left, on_wait=self._check_alive)
        self.delete_namespace(ns)
        return time.monotonic() - t

    # ---- the audit log: who wrote what, when ----------------------------------------
    def audit_events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        user: str | None = None,
        user_agent_prefix: str | None = None,
        verbs: Iterable[str] | None = audit.MUTATING_VERBS,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        where: Callable[[audit.AuditEvent], bool] | None = None,
    ) -> list[audit.AuditEvent]:
        """The API server's audit entries (mutating requests, rotated backup included)
        matching every filter given; since/until bound the time the request was received
        (aware datetimes). See audit.read_events."""
        return audit.read_events(
            self.audit_log,
            since,
            until,
            user=user,
            user_agent_prefix=user_agent_prefix,
            verbs=verbs,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
            where=where,
        )

    def wait_audit_events(
        self, count: int = 1, timeout: float = 10, **filters: Any
    ) -> list[audit.AuditEvent]:
        """audit_events(**filters) once it has at least `count` entries (an entry is
        written as its request is answered: usually there already, not guaranteed)."""
        found: list[audit.AuditEvent] = []

        def enough() -> bool:
            found[:] = self.audit_events(**filters)
            return len(found) >= count

        wait_for(f"{count} audit entries matching {filters}", enough, timeout)
        return found

    # ---- helpers for tests and tools -----------------------------------------------
    def ready_node_count(self) -> int:
        data = self.api.get("/api/v1/nodes?labelSelector=type%3Dkwok")
        n = 0
        for node in data.get("items", []):
            for cond in node.get("status", {}).get("conditions", []) or []:
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    n += 1
        return n

    def wait_default_service_account(self, namespace: str, timeout: float = 60) -> None:
        """Pods are refused in a namespace until the SA controller has made `default`."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
        checks = self._check_alive if self.records else None
        wait_for(
            f"ServiceAccount {namespace}/default",
            lambda: self.api.exists(path),
            timeout,
            on_wait=checks,
        )

    def create_namespace(
        self,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        wait_for_default_sa: bool | None = None,
        timeout: float = 60,
    ) -> str:
        """Creates a namespace (a random name if None). In "cluster" mode waits, by
        default, until its `default` ServiceAccount exists so pods can be created; in
        "apiserver" mode there is no controller to make it, so it does not wait."""
        name = name or f"test-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        self.api.create("/api/v1/namespaces", body)
        if wait_for_default_sa is None:
            wait_for_default_sa = self.mode == "cluster"
        if wait_for_default_sa:
            self.wait_default_service_account(name, timeout)
        return name

    def delete_namespace(self, name: str, wait: float = 0) -> None:
        """Asks for deletion; waits up to `wait` seconds until it is gone (0: does not
        wait, the namespace controller finishes it)."""
        with contextlib.suppress(ApiError):
            self.api.call("DELETE", f"/api/v1/namespaces/{name}", ok=(404,))
        if wait:
            wait_for(
                f"namespace {name} deleted",
                lambda: not self.api.exists(f"/api/v1/namespaces/{name}"),
                timeout=wait,
            )

    def install_crds(self, paths: list[Path], timeout: float = 60) -> list[str]:
        """Creates (or replaces) the CRDs in the YAML files; waits until Established."""
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        names = []
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                status, _ = self.api.request("POST", base, doc)
                if status == 409:
                    current = self.api.get(f"{base}/{name}")
                    doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    self.api.call("PUT", f"{base}/{name}", doc)
                elif not 200 <= status < 300:
                    self.api.call("POST", base, doc)  # raises with the server's message
                names.append(name)

        def established(name: str) -> bool:
            crd = self.api.get(f"{base}/{name}")
            return any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions", [])
            )

        for name in names:
            wait_for(f"CRD {name} Established", lambda name=name: established(name), timeout)  # type: ignore[misc]
        return names

    def kubectl_path(self) -> str:
        if "kubectl" in self.bins:
            return str(self.bins["kubectl"].path)
        found = binaries.find(("kubectl",))
        if "kubectl" in found:
            return str(found["kubectl"].path)
        on_path = shutil.which("kubectl")
        if on_path:
            return on_path
        raise ClusterError("no kubectl: build it with e2e/cluster/build-binaries.sh kubectl")

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster (never logs/exec/port-forward on fake pods)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run(
            [self.kubectl_path(), *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc


def sweep_orphan_etcd_dirs(parent: Path) -> list[Path]:
    """Removes etcd data folders (tmpfs memory) that no running process names on its
    command line: what a test run killed with SIGKILL leaves behind. A folder younger
    than a minute may be one being set up by a start in progress: left alone."""
    candidates = [d for d in parent.glob(f"{ETCD_DIR_PREFIX}*") if d.is_dir()]
    if not candidates:
        return []
    in_use = procs.all_cmdlines()
    removed = []
    for d in candidates:
        try:
            young = time.time() - d.stat().st_mtime < 60
        except OSError:
            continue
        if young or any(str(d) in cmd for cmd in in_use):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and b'"true"' in resp.read()
    finally:
        conn.close()


def _healthz(port: int) -> bool:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=unverified_tls(), timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()
