"""python -m localcluster up|down|status|env|build|restart-apiserver  (PYTHONPATH=e2e)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import urllib.request
from pathlib import Path

from . import binaries, procs
from . import prometheus as prom
from .cluster import REPO_ROOT, ClusterError, LocalCluster, default_state_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where PIDs, PKI, kubeconfig and logs live"
        f" (env CADRE_CLUSTER_DIR; default {default_state_dir()})",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the cluster (builds the binaries if missing)")
    up.add_argument("--mode", choices=("cluster", "apiserver"), default="cluster")
    up.add_argument("--scale", type=int, default=1, help="multiplies every pool's node count")
    up.add_argument("--nodepool", type=Path, default=None, help="node pool YAML")
    up.add_argument("--crds", type=Path, default=None, help="install the CRDs in this folder")
    up.add_argument(
        "--with-examples",
        action="store_true",
        help="install crds/*.yaml, apply examples/budgets.yaml (teams' namespaces, budgets) "
        "and the checkpoint volume of the PyTorch example",
    )
    up.add_argument(
        "--with-operator",
        action="store_true",
        help="also run the Cadre operator (`cadre run`) against the cluster, owned by it, "
        "and a Prometheus scraping it with the alert rules loaded (if /usr/bin/prometheus "
        "exists; --no-prometheus: not)",
    )
    up.add_argument(
        "--no-prometheus",
        action="store_true",
        help="with --with-operator: do not start Prometheus",
    )
    up.add_argument(
        "--operator-config",
        type=Path,
        default=REPO_ROOT / "examples" / "operator-config.yaml",
        help="OperatorConfig for --with-operator (default: examples/operator-config.yaml)",
    )
    up.add_argument("--no-build", action="store_true", help="fail instead of building binaries")
    sub.add_parser("down", help="stop every process of the cluster, by PID")
    st = sub.add_parser("status", help="processes, memory, kubeconfig; exit 1 if not running")
    st.add_argument("--json", action="store_true")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH (kubectl)")
    sub.add_parser("build", help="build or reuse the binaries; print where they are")
    ra = sub.add_parser(
        "restart-apiserver",
        help="stop kube-apiserver (etcd and the rest keep running) and start it again",
    )
    ra.add_argument("--down", type=float, default=0, help="seconds to stay down")
    ra.add_argument(
        "--grace", type=float, default=10, help="SIGTERM, SIGKILL after this; 0: SIGKILL at once"
    )
    args = parser.parse_args(argv)

    try:
        if args.cmd == "up":
            return _up(args)
        if args.cmd == "down":
            try:
                cluster = LocalCluster.attach(args.state_dir)
            except ClusterError as exc:
                print(f"nothing to stop: {exc}")
                return 0
            pids = cluster.pids()
            cluster.down()
            print(f"stopped {', '.join(f'{n} ({p})' for n, p in pids.items())}")
            return 0
        if args.cmd == "status":
            try:
                cluster = LocalCluster.attach(args.state_dir)
            except ClusterError as exc:
                print(f"not running: {exc}")
                return 1
            info = cluster.status()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                print(f"{'running' if info['running'] else 'NOT running'} ({info['mode']})")
                print(f"  server      {info['server']}")
                print(f"  kubeconfig  {info['kubeconfig']}")
                print(f"  nodes       {info['nodes']}")
                for name, p in info["processes"].items():
                    state = "alive" if p["alive"] else "DEAD"
                    print(f"  {name:<24} pid {p['pid']:<8} {state:<6} {p['rss_mib']} MiB")
                print(f"  total RSS   {info['rss_total_mib']} MiB")
            return 0 if info["running"] else 1
        if args.cmd == "env":
            cluster = LocalCluster.attach(args.state_dir)
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"export PATH={Path(cluster.kubectl_path()).parent}:$PATH")
            return 0
        if args.cmd == "restart-apiserver":
            cluster = LocalCluster.attach(args.state_dir)
            old = cluster.pids()["kube-apiserver"]
            took = cluster.restart_apiserver(args.down, grace=args.grace)
            new = cluster.pids()["kube-apiserver"]
            print(f"kube-apiserver restarted (pid {old} -> {new}): ready again after {took:.1f}s")
            return 0
        if args.cmd == "build":
            found = binaries.ensure()
            for name, b in found.items():
                print(f"{name:<24} {b.path} ({b.source})")
            return 0
    except (ClusterError, binaries.MissingBinariesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


OPERATOR = "cadre-operator"
OPERATOR_METRICS = "cadre-operator-metrics"


def _start_operator(cluster: LocalCluster, config: Path, timeout: float = 60) -> None:
    """Runs `cadre run` as a process of the cluster (metrics and health on loopback)."""
    if cluster.alive().get(OPERATOR):
        print(f"{OPERATOR} already running (pid {cluster.pids()[OPERATOR]})")
        return
    cluster.records = [r for r in cluster.records if r.name != OPERATOR]  # a dead one
    # The namespace of the leader's Lease (an install creates it; here there is none).
    cluster.kubectl("create", "namespace", "cadre-system", check=False)
    metrics_port, health_port = procs.free_ports(2)
    # Recorded (state.json, with the process) so Prometheus can be pointed at it later.
    cluster.ports[OPERATOR_METRICS] = metrics_port
    cluster.spawn(
        OPERATOR,
        [
            sys.executable,
            "-m",
            "cadre.tools.cli",
            "run",
            "--config",
            str(config),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--bind-address",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            str(health_port),
            "--log-format",
            "json",
        ],
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.alive()[OPERATOR]:
            log = cluster.logs_dir / f"{OPERATOR}.log"
            raise ClusterError(f"{OPERATOR} exited; last lines of {log}:\n{procs.log_tail(log)}")
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    print(
                        f"{OPERATOR} running (pid {cluster.pids()[OPERATOR]}): metrics on "
                        f"http://127.0.0.1:{metrics_port}/metrics, logs in "
                        f"{cluster.logs_dir / (OPERATOR + '.log')}"
                    )
                    return
        time.sleep(0.2)
    raise ClusterError(f"{OPERATOR} not healthy after {timeout:.0f}s")


def _start_prometheus(cluster: LocalCluster, timeout: float = 60) -> None:
    """Prometheus as a process of the cluster, scraping the operator's metrics port every
    second with the alert rules loaded; `down` stops it with the rest."""
    metrics_port = cluster.ports.get(OPERATOR_METRICS)
    if metrics_port is None:
        print(f"{prom.NAME}: not started (no {OPERATOR} metrics port recorded)")
        return
    if not prom.available():
        print(f"{prom.NAME}: not started ({prom.binary()} missing: apt-get install prometheus)")
        return
    if cluster.alive().get(prom.NAME):
        print(f"{prom.NAME} already running: {prom.Client(cluster.ports[prom.NAME]).url}")
        return
    cluster.records = [r for r in cluster.records if r.name != prom.NAME]  # a dead one
    folder = cluster.state_dir / prom.NAME
    rules = prom.default_rules()
    config = prom.write_config(folder, [f"127.0.0.1:{metrics_port}"], rules)
    (port,) = procs.free_ports(1)
    cluster.ports[prom.NAME] = port
    cluster.spawn(prom.NAME, prom.argv(config, folder / "data", port))
    log = cluster.logs_dir / f"{prom.NAME}.log"
    try:
        prom.wait_ready(port, lambda: cluster.alive()[prom.NAME], log, timeout)
    except prom.PrometheusError as exc:
        raise ClusterError(str(exc)) from exc
    loaded = ", ".join(str(r.relative_to(REPO_ROOT)) for r in rules) or "none yet"
    print(
        f"{prom.NAME} running (pid {cluster.pids()[prom.NAME]}): "
        f"{prom.Client(port).url} scraping {OPERATOR} every {prom.SCRAPE_INTERVAL} "
        f"(job {prom.JOB}); rules: {loaded}"
    )


def _up(args: argparse.Namespace) -> int:
    crds_dir = args.crds or (REPO_ROOT / "crds" if args.with_examples else None)
    running = _running(args.state_dir)
    if running is not None:
        print(f"already running ({running.mode}) from {running.state_dir}: {running.server}")
        _install(running, crds_dir, args.with_examples)
        if args.with_operator:
            _start_operator(running, args.operator_config)
            if not args.no_prometheus:
                _start_prometheus(running)
        print(f"export KUBECONFIG={running.kubeconfig}")
        return 0
    kwargs = {}
    if args.nodepool:
        kwargs["nodepool_file"] = args.nodepool
    cluster = LocalCluster(
        args.state_dir, mode=args.mode, scale=args.scale, build=not args.no_build, **kwargs
    )
    t0 = time.monotonic()
    cluster.up()
    try:
        _install(cluster, crds_dir, args.with_examples)
        if args.with_operator:
            _start_operator(cluster, args.operator_config)
            if not args.no_prometheus:
                _start_prometheus(cluster)
    except BaseException:
        cluster.down()
        raise
    elapsed = time.monotonic() - t0
    info = cluster.status()
    print(f"local cluster up ({cluster.mode}) in {elapsed:.1f}s: {cluster.server}")
    print(f"  phases (s): {json.dumps(cluster.timings)}")
    if cluster.mode == "cluster":
        print(f"  fake nodes: {cluster.node_count}")
    print(f"  processes:  {', '.join(f'{n}={p}' for n, p in cluster.pids().items())}")
    print(f"  memory:     {info['rss_total_mib']} MiB RSS in total")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print('next: eval "$(PYTHONPATH=e2e .venv/bin/python -m localcluster env)"')
    print("      kubectl get nodes -L cadre.dev/flavor,nvidia.com/gpu.product")
    if args.with_examples:
        print("      kubectl get resourcebudgets")
    if args.with_operator:
        print("      kubectl apply -f examples/trainingjob-single-gpu.yaml")
        print("      kubectl get tj -A -w")
        print("      kubectl apply -f examples/modeldeployment-canary.yaml")
        print("      kubectl get md -A")
        if prom.NAME in cluster.ports and cluster.alive().get(prom.NAME):
            url = prom.Client(cluster.ports[prom.NAME]).url
            print(f"prometheus: {url} (alerts: {url}/alerts; dashboards: docs/monitoring.md)")
    rel = cluster.state_dir
    with contextlib.suppress(ValueError):
        rel = cluster.state_dir.relative_to(REPO_ROOT)
    print(f"logs in {rel}/logs; stop with: PYTHONPATH=e2e python -m localcluster down")
    return 0


def _running(state_dir: Path | None) -> LocalCluster | None:
    """The cluster recorded in state_dir if all its processes run (`up` is idempotent)."""
    try:
        cluster = LocalCluster.attach(state_dir)
    except ClusterError:
        return None
    alive = cluster.alive()
    if alive and all(alive.values()):
        return cluster
    return None  # stale or half dead: LocalCluster.up() cleans it or refuses


def _install(cluster: LocalCluster, crds_dir: Path | None, examples: bool) -> None:
    if crds_dir is not None:
        files = sorted(crds_dir.glob("*_*.yaml"))  # the CRDs, not kustomization.yaml
        names = cluster.install_crds(files)
        print(f"installed {len(names)} CRDs from {crds_dir}")
    if examples:
        # The install's roles and admission policies first (after the CRDs: one policy
        # takes ResourceBudgets as parameters), as a platform would have them.
        cluster.kubectl("create", "namespace", "cadre-system", check=False)
        for manifest in (
            REPO_ROOT / "manifests" / "rbac.yaml",
            REPO_ROOT / "manifests" / "roles.yaml",
            REPO_ROOT / "manifests" / "admission-policies.yaml",
            REPO_ROOT / "examples" / "budgets.yaml",
            REPO_ROOT / "e2e" / "cluster" / "demo-volumes.yaml",
            REPO_ROOT / "examples" / "checkpoint-volume.yaml",
        ):
            out = cluster.kubectl("apply", "-f", str(manifest))
            print(f"applied {manifest.relative_to(REPO_ROOT)}:")
            print("  " + out.stdout.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    sys.exit(main())
