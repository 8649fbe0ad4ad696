"""The data scientist's path on the whole local cluster: `cadre run` as a subprocess, the
examples' ResourceBudgets, TrainingJobs whose pods really get scheduled onto fake GPU
nodes by kube-scheduler and finish as KWOK scripts them (spec.podMetadata annotations).

Jobs run in the examples' namespace vision-research (team vision: t4 4 GPUs nominal plus
what nlp lends, i.e. all 8 t4 GPUs of the cluster; a100 16 nominal + 8 borrowable)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre_process import OperatorProcess, operator_kubeconfig, running_operator
from localcluster import AuditEvent, LocalCluster
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "vision-research"
TJS = f"/apis/cadre.dev/v1alpha1/namespaces/{NAMESPACE}/trainingjobs"


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator under its least-privilege ClusterRole (manifests/rbac.yaml)."""
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "budgets.yaml"))
    cluster.wait_default_service_account(NAMESPACE)
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(cluster, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir) as op:
        yield op
        assert op.alive(), op.log_tail()
        problems = [
            r for r in op.log_records() if r.get("level") in ("warning", "error", "critical")
        ]
        assert not problems, problems[:3]


@pytest.fixture
def jobs(cluster: LocalCluster) -> Iterator[list[str]]:
    """Names of the TrainingJobs a test creates; deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        cluster.api.call("DELETE", f"{TJS}/{name}", ok=(404,))


def example(file: str, name: str, delay: str, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / file).read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name, "namespace": NAMESPACE}
    doc["spec"].update(spec)
    doc["spec"]["podMetadata"] = {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": delay}}
    return doc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create(cluster: LocalCluster, jobs: list[str], doc: dict[str, Any]) -> dict[str, Any]:
    jobs.append(doc["metadata"]["name"])
    created: dict[str, Any] = cluster.api.create(TJS, doc)
    return created


def status_of(cluster: LocalCluster, name: str) -> dict[str, Any]:
    status, body = cluster.api.request("GET", f"{TJS}/{name}")
    return (body.get("status") or {}) if status == 200 else {}


def phase_is(cluster: LocalCluster, name: str, *phases: str) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        status = status_of(cluster, name)
        return status if status.get("phase") in phases else {}

    return check


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def pods_of(cluster: LocalCluster, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=cadre.dev%2Ftrainingjob%3D{name}"
    )["items"]
    return items


def job_of(cluster: LocalCluster, name: str) -> dict[str, Any]:
    job: dict[str, Any] = cluster.api.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}")
    return job


def job_or_none(cluster: LocalCluster, name: str) -> dict[str, Any] | None:
    """The TrainingJob's Job, None when it has none (Cadre creates it at admission)."""
    path = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}"
    status, body = cluster.api.request("GET", path)
    if status == 404:
        return None
    assert status == 200, body
    job: dict[str, Any] = body
    return job


def expected_figures(pods: list[dict[str, Any]], flavor: str) -> tuple[Decimal, Decimal]:
    """(GPU-hours, cost) recomputed here from the pods' container timestamps and the
    example config's prices, exactly (Decimal), independently of the operator's code."""
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    prices = next(f["prices"] for f in config["flavors"] if f["name"] == flavor)
    gpu_hour, cpu_hour, gib_hour = (
        Decimal(prices.get(k, "0")) for k in ("gpuHour", "cpuCoreHour", "memoryGiBHour")
    )
    gpu_seconds = cost_seconds = Decimal(0)
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        requests = container["resources"]["requests"]
        gpus = Decimal(container["resources"]["limits"].get("nvidia.com/gpu", "0"))
        cpu = Decimal(requests["cpu"])
        assert requests["memory"].endswith("Gi")
        gib = Decimal(requests["memory"].removesuffix("Gi"))
        (state,) = [c["state"]["terminated"] for c in pod["status"]["containerStatuses"]]
        started = datetime.fromisoformat(state["startedAt"].replace("Z", "+00:00"))
        finished = datetime.fromisoformat(state["finishedAt"].replace("Z", "+00:00"))
        seconds = Decimal((finished - started).total_seconds())
        gpu_seconds += seconds * gpus
        cost_seconds += seconds * (gpus * gpu_hour + cpu * cpu_hour + gib * gib_hour)
    return gpu_seconds / 3600, cost_seconds / 3600


def assert_figures(status: dict[str, Any], pods: list[dict[str, Any]], flavor: str) -> None:
    gpu_hours, cost = expected_figures(pods, flavor)
    print(
        f"\ngpuHours {status['gpuHours']} (computed {gpu_hours:.6f}), "
        f"cost {status['cost']} (computed {cost:.6f})"
    )
    assert Decimal(status["gpuHours"]) > 0
    assert Decimal(status["gpuHours"]) == gpu_hours.quantize(Decimal("0.0001"))
    assert Decimal(status["cost"]) == cost.quantize(Decimal("0.01"))


def test_single_gpu_example_runs_to_succeeded_on_a_t4(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    name = unique("mnist")
    writes_before = operator.quiet_writes(quiet=1.5)
    window_start = datetime.now(UTC)
    create(cluster, jobs, example("trainingjob-single-gpu.yaml", name, "2s"))
    status = eventually("Succeeded", phase_is(cluster, name, "Succeeded", "Failed"), timeout=60)
    assert status["phase"] == "Succeeded", status
    writes = operator.quiet_writes(quiet=1.5) - writes_before
    window_end = datetime.now(UTC)
    server_side = operator_writes_in_audit_log(cluster, window_start, window_end)
    for_this_job = operator_writes_in_audit_log(cluster, window_start, window_end, name)
    print(f"\nsingle worker: API writes for the whole lifecycle: {for_this_job}")
    # Status Admitted, the Job (created running at admission), Running, Succeeded and
    # an Event for each transition: 7. A single worker needs no Service. (Earlier tests'
    # clean-up may write meanwhile: the count is of this job's objects; the operator's
    # own counter agrees with the server on every write of the window.)
    assert len(for_this_job) == 7, for_this_job
    assert len(server_side) == writes, (server_side, operator.api_requests(ok_only=True))
    assert condition(status, "Finished")["reason"] == "Succeeded"
    assert condition(status, "Admitted")["status"] == "True"
    assert status["team"] == "vision"
    assert status["gpus"] == 1
    assert status["workers"]["succeeded"] == 1
    assert status["admittedAt"] <= status["startTime"] <= status["completionTime"]
    (pod,) = pods_of(cluster, name)
    assert pod["spec"]["nodeName"].startswith("kwok-t4-"), pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Succeeded"
    assert_figures(status, [pod], "t4")
    out = cluster.kubectl("get", "tj", "-n", NAMESPACE, name, "--no-headers")
    assert "Succeeded" in out.stdout


def test_the_two_training_examples_run_to_succeeded(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    """examples/ as a user applies them (plus the checkpoint volume and a KWOK run time)."""
    cluster.kubectl("apply", "-f", str(REPO / "e2e" / "cluster" / "demo-volumes.yaml"))
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "checkpoint-volume.yaml"))
    expected_nodes = {
        "trainingjob-single-gpu.yaml": "kwok-t4-",
        "trainingjob-pytorch.yaml": "kwok-a100-",
    }
    names = {}
    for file in expected_nodes:
        doc = yaml.safe_load((REPO / "examples" / file).read_text())
        doc["spec"]["podMetadata"] = {
            "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "3s"}
        }
        names[file] = doc["metadata"]["name"]
        create(cluster, jobs, doc)
    for file, node_prefix in expected_nodes.items():
        name = names[file]
        status = eventually(f"{name} Succeeded", phase_is(cluster, name, "Succeeded"), timeout=90)
        pods = pods_of(cluster, name)
        assert len(pods) == status["workers"]["succeeded"] == (4 if "pytorch" in file else 1)
        assert all(p["spec"]["nodeName"].startswith(node_prefix) for p in pods), pods
    # The gang of 4 workers x 8 GPUs spread over the four 8-GPU a100 nodes.
    nodes = {p["spec"]["nodeName"] for p in pods_of(cluster, names["trainingjob-pytorch.yaml"])}
    assert len(nodes) == 4


def test_gang_bigger_than_the_team_quota_stays_queued_with_the_reason(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    # 2 x 24 CPU = 48 of cpu-only: the cluster has 64, team vision's quota is 32 and
    # nlp has no cpu-only quota to lend.
    name = unique("too-big")
    create(
        cluster,
        jobs,
        example(
            "trainingjob-single-gpu.yaml",
            name,
            "2s",
            workers=2,
            resources={"flavor": "cpu-only", "cpu": "24", "memory": "8Gi"},
        ),
    )
    status = eventually("Queued", phase_is(cluster, name, "Queued"))
    assert condition(status, "Admitted")["reason"] == "ExceedsQuota"
    assert "vision" in status["queue"]["reason"], status["queue"]
    assert status["queue"]["position"] == 1
    # Two more admission passes (a node label changes twice): still queued, never started.
    for tick in ("1", "2"):
        cluster.api.patch("/api/v1/nodes/kwok-cpu-0", {"metadata": {"labels": {"tick": tick}}})
        operator.wait_metric_increase("cadre_admission_passes_total")
    assert status_of(cluster, name)["phase"] == "Queued"
    assert job_or_none(cluster, name) is None  # a waiting job has no Job
    assert pods_of(cluster, name) == []


def test_deleting_a_running_job_admits_a_queued_one_within_seconds(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    # The first takes all 8 t4 GPUs (4 of them borrowed from nlp) for a minute.
    first, second = unique("hog"), unique("next")
    create(
        cluster,
        jobs,
        example(
            "trainingjob-single-gpu.yaml",
            first,
            "60s",
            workers=2,
            resources={"flavor": "t4", "gpus": 4},
        ),
    )
    eventually("first Running", phase_is(cluster, first, "Running"))
    create(
        cluster,
        jobs,
        example("trainingjob-single-gpu.yaml", second, "2s", resources={"flavor": "t4", "gpus": 4}),
    )
    queued = eventually("second Queued", phase_is(cluster, second, "Queued"))
    assert condition(queued, "Admitted")["reason"] in ("QuotaExhausted", "CapacityExhausted")

    deleted_at = datetime.now(UTC)
    cluster.api.call("DELETE", f"{TJS}/{first}")
    deleted = time.monotonic()
    eventually("second Admitted", phase_is(cluster, second, "Admitted", "Running", "Succeeded"))
    waited = time.monotonic() - deleted
    eventually("second Running", phase_is(cluster, second, "Running", "Succeeded"))
    running = time.monotonic() - deleted
    print(f"\ndelete of a running job -> queued job admitted {waited:.2f}s, running {running:.2f}s")
    # Its quota was free at once, and its pods were stopped by the operator (the deleted
    # TrainingJob's Job suspended), not left to the garbage collector's round.
    stopped = cluster.audit_events(
        deleted_at, user=OPERATOR_USER, verbs=("patch",), resource="jobs", name=first
    )
    assert stopped, "the deleted TrainingJob's Job was not suspended by the operator"
    status = eventually("second Succeeded", phase_is(cluster, second, "Succeeded"), timeout=60)
    assert all(p["spec"]["nodeName"].startswith("kwok-t4-") for p in pods_of(cluster, second))
    assert status["workers"]["succeeded"] == 1


def test_high_priority_preempts_low_which_resumes_and_succeeds(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    low, high = unique("low"), unique("high")
    spec = example("trainingjob-single-gpu.yaml", low, "5s", workers=2, priority="low")
    spec["spec"]["resources"] = {"flavor": "t4", "gpus": 4}
    create(cluster, jobs, spec)
    eventually("low Running", phase_is(cluster, low, "Running"))
    first_uid = job_uid(cluster, low)
    spec = example("trainingjob-single-gpu.yaml", high, "2s", priority="high")
    spec["spec"]["resources"] = {"flavor": "t4", "gpus": 4}
    create(cluster, jobs, spec)

    preempted = eventually("low Preempted", phase_is(cluster, low, "Preempted"))
    admitted = condition(preempted, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Preempted")
    assert high in admitted["message"], admitted
    # The admission is revoked first (the status), then the Job is deleted; admitted
    # again, low gets a new one.
    eventually(
        "low's Job deleted",
        lambda: (job_or_none(cluster, low) or {}).get("metadata", {}).get("uid") != first_uid,
    )
    eventually("high Succeeded", phase_is(cluster, high, "Succeeded"), timeout=60)
    status = eventually("low Succeeded", phase_is(cluster, low, "Succeeded"), timeout=60)
    assert status["workers"]["succeeded"] == 2


def test_suspend_releases_the_gang_and_resume_runs_it_again(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    name = unique("pausable")
    create(cluster, jobs, example("trainingjob-single-gpu.yaml", name, "60s"))
    eventually("Running", phase_is(cluster, name, "Running"))
    patch = {"spec": {"suspend": True}}
    status_code, body = cluster.api.request(
        "PATCH", f"{TJS}/{name}", patch, content_type="application/merge-patch+json"
    )
    assert status_code == 200, body
    status = eventually("Suspended", phase_is(cluster, name, "Suspended"))
    assert condition(status, "Admitted")["reason"] == "Suspended"
    assert status["observedGeneration"] == 2
    eventually("Job deleted", lambda: job_or_none(cluster, name) is None)
    eventually("pods gone", lambda: pods_of(cluster, name) == [] or None, timeout=30)

    patch = {"spec": {"suspend": False}}
    status_code, body = cluster.api.request(
        "PATCH", f"{TJS}/{name}", patch, content_type="application/merge-patch+json"
    )
    assert status_code == 200, body
    status = eventually("Running again", phase_is(cluster, name, "Running"))
    assert status["observedGeneration"] == 3
    assert job_of(cluster, name)["spec"]["suspend"] is False


def test_failing_worker_restarts_the_gang_then_fails_with_its_exit_code(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    # A worker pod deleted by hand is reported Failed with exit code 137 (as a kubelet
    # reports a killed container).
    name = unique("crashy")
    create(cluster, jobs, example("trainingjob-single-gpu.yaml", name, "60s", workers=2, retries=1))
    eventually("Running", phase_is(cluster, name, "Running"))
    first_uid = job_uid(cluster, name)
    kill_a_worker(cluster, name)
    restarted = eventually(
        "a restart", lambda: (s := status_of(cluster, name)).get("restarts") == 1 and s
    )
    assert "code 137" in condition(restarted, "Running")["message"], restarted
    eventually("Running again", phase_is(cluster, name, "Running"))
    assert job_uid(cluster, name) not in (None, first_uid)  # a new Job runs the new gang

    kill_a_worker(cluster, name)
    status = eventually("Failed", phase_is(cluster, name, "Failed"), timeout=30)
    assert status["restarts"] == 1
    finished = condition(status, "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "WorkerFailed")
    assert "exited with code 137" in finished["message"]
    assert "after 1 restart" in finished["message"]


def test_scripted_exit_code_is_the_failure_reason(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    # KWOK's pod-fail stage ends the worker with the exit code the annotation asks for.
    name = unique("exit3")
    doc = example("trainingjob-single-gpu.yaml", name, "1s")
    doc["spec"]["podMetadata"]["annotations"]["kwok.cadre.dev/exit-code"] = "3"
    create(cluster, jobs, doc)
    status = eventually("Failed", phase_is(cluster, name, "Failed"), timeout=30)
    finished = condition(status, "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "WorkerFailed")
    assert "exited with code 3" in finished["message"], finished
    assert not status.get("restarts")


def test_max_runtime_fails_the_job_without_a_retry(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    name = unique("slow")
    create(
        cluster,
        jobs,
        example("trainingjob-single-gpu.yaml", name, "60s", maxRuntime="2s", retries=3),
    )
    status = eventually("Failed", phase_is(cluster, name, "Failed"), timeout=30)
    assert condition(status, "Finished")["reason"] == "DeadlineExceeded"
    assert not status.get("restarts")


def test_ttl_after_finished_deletes_the_finished_job(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    name = unique("short-lived")
    create(cluster, jobs, example("trainingjob-single-gpu.yaml", name, "1s", ttlAfterFinished="2s"))
    status = eventually("Succeeded", phase_is(cluster, name, "Succeeded"), timeout=30)
    assert status["completionTime"]
    eventually(
        "deleted after its ttl",
        lambda: cluster.api.request("GET", f"{TJS}/{name}")[0] == 404,
        timeout=15,
    )


OPERATOR_USER = "system:serviceaccount:cadre-system:cadre-operator"


def operator_writes_in_audit_log(
    cluster: LocalCluster, start: datetime, end: datetime, name: str | None = None
) -> list[str]:
    """The operator's successful mutating requests the API server logged in [start, end),
    without those writes() leaves out too: budget status (per team), pod finalizers (at
    deletion) and the leader's Lease renewals. With `name`: those about that TrainingJob,
    its children (its PodGroups are named `<name>-<admission>`) and its status, plus the
    Events about it (an Event is created under a generated name the audit entry does not
    know: they are read from the Events API)."""

    def wanted(e: AuditEvent) -> bool:
        if not e.ok or e.stage != "ResponseComplete":
            return False
        if e.resource in ("resourcebudgets", "pods", "leases"):
            return False
        if name is not None and e.resource == "podgroups":  # one per admission
            return (e.name or "").startswith(f"{name}-")
        return name is None or e.name == name

    entries = cluster.audit_events(start, end, user=OPERATOR_USER, where=wanted)
    writes = [f"{e.verb} {e.resource}/{e.subresource or ''}" for e in entries]
    if name is not None:
        events = cluster.api.get(
            f"/api/v1/namespaces/{NAMESPACE}/events?fieldSelector=involvedObject.name%3D{name}"
        )["items"]
        writes += [
            "create events/" for e in events if e.get("reportingComponent") == "cadre.dev/operator"
        ]
    return writes


def kill_a_worker(cluster: LocalCluster, name: str) -> None:
    running = [p for p in pods_of(cluster, name) if p["status"].get("phase") == "Running"]
    assert running, "no running worker"
    pod = running[0]["metadata"]["name"]
    cluster.api.call("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")


def job_uid(cluster: LocalCluster, name: str) -> str | None:
    status, body = cluster.api.request("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}")
    return str(body["metadata"]["uid"]) if status == 200 else None


def test_four_worker_gang_on_an_idle_cluster_timing_and_api_writes(
    operator: OperatorProcess, cluster: LocalCluster, jobs: list[str]
) -> None:
    name = unique("resnet")
    doc = example(
        "trainingjob-pytorch.yaml",
        name,
        "3s",
        resources={"flavor": "a100", "gpus": 4, "cpu": "8", "memory": "64Gi"},
    )
    doc["spec"].pop("checkpoint")  # no PVC provisioner on the local cluster
    doc["spec"]["env"] = [e for e in doc["spec"]["env"] if "valueFrom" not in e]
    writes_before = operator.quiet_writes(quiet=1.5)
    window_start = datetime.now(UTC)
    t0 = time.monotonic()
    create(cluster, jobs, doc)
    eventually(
        "Admitted", phase_is(cluster, name, "Admitted", "Running", "Succeeded"), interval=0.02
    )
    t_admitted = time.monotonic() - t0
    eventually("Running", phase_is(cluster, name, "Running", "Succeeded"), interval=0.02)
    t_running = time.monotonic() - t0
    status = eventually("Succeeded", phase_is(cluster, name, "Succeeded"), timeout=60)
    writes = operator.quiet_writes(quiet=1.5) - writes_before
    window_end = datetime.now(UTC)
    server_side = operator_writes_in_audit_log(cluster, window_start, window_end)
    for_this_job = operator_writes_in_audit_log(cluster, window_start, window_end, name)
    print(
        f"\n4-worker gang, idle cluster: create -> Admitted {t_admitted:.2f}s, "
        f"-> Running {t_running:.2f}s; API writes for the whole lifecycle: "
        f"{len(for_this_job)}\naudit log of the API server: {for_this_job}"
    )
    pods = pods_of(cluster, name)
    assert len(pods) == 4
    assert all(p["spec"]["nodeName"].startswith("kwok-a100-") for p in pods)
    assert status["workers"]["succeeded"] == 4
    assert_figures(status, pods, "a100")
    # Status Admitted, then Service + Job (created running) + the gang's PodGroup
    # (native gang scheduling, on in the local cluster), Running, Succeeded, and an Event
    # for each transition: 9. The admission part (status, events) is 6, against Kueue's
    # ~8 per workload, which counts neither the Job nor a Service (its users create
    # them). (The times printed above are figures, not assertions: see bench/.)
    assert "create podgroups/" in for_this_job
    assert len(for_this_job) <= 9, for_this_job
    # The API server's own record (its audit log) agrees with the operator's count.
    assert len(server_side) == writes, (server_side, operator.api_requests(ok_only=True))
    out = cluster.kubectl("describe", "tj", "-n", NAMESPACE, name)
    events = out.stdout[out.stdout.index("Events:") :]
    for reason in ("Admitted", "Running", "Succeeded"):
        assert reason in events, out.stdout
