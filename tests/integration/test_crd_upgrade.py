"""TrainingJobs stored under an older, looser CRD, then the CRD tightened (an upgrade).

An API server validates an object when it is written, not when the schema changes: after
an upgrade, etcd still holds what the old schema let through. Here the TrainingJob CRD is
replaced by a loose one (spec: any object, `x-kubernetes-preserve-unknown-fields`, no CEL
rules), objects the real schema rejects are created, the real CRD is installed again, and
only then the operator starts. It must stay alive and keep admitting: a healthy job that
needs the whole quota is admitted (the broken ones hold none), and each broken one is
reported (an Admitted=False condition with reason InvalidSpec, or FlavourRequired).

The CRD is always put back (the API server is shared by the whole session) and the broken
objects deleted.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from cadre_process import OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from trainingjobs import BUDGETS, TJS, condition, get, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration

REAL_CRD: Final = Path(__file__).resolve().parents[2] / "crds" / "cadre.dev_trainingjobs.yaml"
CRDS: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TIMEOUT: Final = 30


def _broken(name: str, change: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    doc = trainingjob(name, workers=2, gpus=2)
    doc["spec"].update(change)
    for key in drop:
        del doc["spec"][key]
    return doc


BROKEN: Final[dict[str, dict[str, Any]]] = {
    d["metadata"]["name"]: d
    for d in (
        _broken("workers-negative", {"workers": -3}),
        _broken("workers-words", {"workers": "four"}),
        _broken("no-resources", {}, drop=("resources",)),
        _broken("no-image", {}, drop=("image",)),
        _broken("empty-image", {"image": ""}),
        _broken("cpu-words", {"resources": {"flavor": "t4", "gpus": 2, "cpu": "lots"}}),
        _broken("gpus-too-many", {"resources": {"flavor": "t4", "gpus": 1000}}),
        _broken("distribution-horovod", {"distribution": "Horovod"}),
        _broken("priority-shouting", {"priority": "URGENT!"}),
        _broken("maxruntime-forever", {"maxRuntime": "forever"}),
        _broken("command-too-long", {"command": ["x" * 5000]}),
        _broken("retries-negative", {"retries": -1}),
        _broken("env-not-a-list", {"env": {"A": "b"}}),
        _broken("checkpoint-no-claim", {"checkpoint": {"mountPath": "/ckpt"}}),
    )
}
"""Each breaks one rule of the real schema that the operator's model also has; each asks
for 2 workers x 2 t4 GPUs = the whole team quota of 4, should it be counted."""
FLAVOURLESS: Final = _broken("gpus-no-flavor", {"resources": {"gpus": 2}})
"""Breaks a CEL rule of the CRD the model does not repeat; the builder says FlavourRequired."""
EXPECTED_REASONS: Final = {name: {"InvalidSpec"} for name in BROKEN} | {
    "gpus-no-flavor": {"InvalidSpec", "FlavourRequired"}
}


def loose_crd() -> dict[str, Any]:
    """The real CRD with a spec of any shape: no types, bounds, patterns or CEL rules."""
    crd = yaml.safe_load(REAL_CRD.read_text())
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.pop("x-kubernetes-validations", None)  # its rules name spec fields
    return dict(crd)


def install(cluster: LocalCluster, crd: dict[str, Any], tmp: Path) -> None:
    path = tmp / f"crd-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(crd))
    cluster.install_crds([path])


def schema_in_force(cluster: LocalCluster, namespace: str, *, loose: bool) -> None:
    """Wait until the API server validates with the schema just installed (Established
    comes before the new schema serves): a dry run of a broken object tells."""
    probe = copy.deepcopy(BROKEN["workers-negative"])
    probe["metadata"]["name"] = "probe"
    path = TJS.format(ns=namespace) + "?dryRun=All"
    want = 201 if loose else 422
    eventually(
        f"the {'loose' if loose else 'real'} schema in force",
        lambda: cluster.api.request("POST", path, probe)[0] == want,
        timeout=TIMEOUT,
    )


@dataclass
class Upgraded:
    namespace: str
    team: str
    operator: OperatorProcess


@pytest.fixture(scope="module")
def upgraded(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Upgraded]:
    workdir = tmp_path_factory.mktemp("crd-upgrade")
    namespace = apiserver.create_namespace(f"crd-upgrade-{uuid.uuid4().hex[:6]}")
    team = f"team-{uuid.uuid4().hex[:6]}"
    node = f"t4-{uuid.uuid4().hex[:6]}"
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": team},
            "spec": {"namespaces": [namespace], "quota": [{"flavor": "t4", "gpus": 4}]},
        },
    )
    apiserver.api.create("/api/v1/nodes", _t4_node(node))
    op: OperatorProcess | None = None
    try:
        install(apiserver, loose_crd(), workdir)
        schema_in_force(apiserver, namespace, loose=True)
        for doc in (*BROKEN.values(), FLAVOURLESS):
            apiserver.api.create(TJS.format(ns=namespace), doc)
        install(apiserver, yaml.safe_load(REAL_CRD.read_text()), workdir)
        schema_in_force(apiserver, namespace, loose=False)
        kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
        op = OperatorProcess(kubeconfig, workdir).start()
        yield Upgraded(namespace, team, op)
    finally:
        if op is not None:
            op.stop()
        apiserver.install_crds([REAL_CRD])
        schema_in_force(apiserver, namespace, loose=False)
        for name in [*EXPECTED_REASONS, "healthy", "was-valid", "whole-quota"]:
            apiserver.api.call("DELETE", f"{TJS.format(ns=namespace)}/{name}", ok=(404,))
            apiserver.api.call(
                "DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", ok=(404,)
            )
        apiserver.api.call("DELETE", f"{BUDGETS}/{team}", ok=(404,))
        apiserver.api.call("DELETE", f"/api/v1/nodes/{node}", ok=(404,))
        apiserver.delete_namespace(namespace)


def _t4_node(name: str) -> dict[str, Any]:
    resources = {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "8", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"cadre.dev/flavor": "t4"}},
        "status": {"capacity": resources, "allocatable": resources},
    }


def phase(apiserver: LocalCluster, namespace: str, name: str) -> str | None:
    obj = get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}
    return (obj.get("status") or {}).get("phase")


def test_broken_objects_hold_no_quota_and_stop_nothing(
    upgraded: Upgraded, apiserver: LocalCluster
) -> None:
    namespace, op = upgraded.namespace, upgraded.operator
    # Stored as they were: the tightened schema did not touch etcd.
    stored = apiserver.api.get(f"{TJS.format(ns=namespace)}/workers-negative")
    assert stored["spec"]["workers"] == -3
    # 2 workers x 2 GPUs: the whole quota of 4, admitted only if no broken one holds any.
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("healthy", workers=2, gpus=2))
    eventually(
        "healthy admitted",
        lambda: phase(apiserver, namespace, "healthy") == "Admitted",
        timeout=TIMEOUT,
    )
    for name in EXPECTED_REASONS:
        assert phase(apiserver, namespace, name) != "Admitted", name
        job = get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
        assert job is None or job["spec"]["suspend"] is True, name
    assert op.alive(), op.log_tail()
    assert op.healthy(), op.log_tail()
    bad = [r for r in op.log_records() if "admission pass failed" in str(r.get("event"))]
    assert bad == [], bad[:1]
    apiserver.api.call("DELETE", f"{TJS.format(ns=namespace)}/healthy")


def test_each_broken_object_is_reported_invalid(
    upgraded: Upgraded, apiserver: LocalCluster
) -> None:
    namespace = upgraded.namespace
    reasons: dict[str, str | None] = {}

    def all_reported() -> bool:
        for name in EXPECTED_REASONS:
            obj = get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}
            admitted = condition(obj, "Admitted")
            reasons[name] = None if admitted is None else admitted.get("reason")
        return all(reasons[n] in wanted for n, wanted in EXPECTED_REASONS.items())

    try:
        eventually("each broken object reported", all_reported, timeout=TIMEOUT)
    except AssertionError as err:
        raise AssertionError(f"{err}: reasons {reasons}") from None


def test_a_running_job_made_invalid_keeps_its_quota_or_is_stopped(
    upgraded: Upgraded,
    apiserver: LocalCluster,
    tmp_path: Path,
    without_shape_policy: None,  # after `upgraded`: an operator's start applies the policies
) -> None:
    namespace = upgraded.namespace
    tjs = TJS.format(ns=namespace)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/was-valid"
    apiserver.api.create(tjs, trainingjob("was-valid", workers=2, gpus=2))
    eventually(
        "was-valid admitted",
        lambda: phase(apiserver, namespace, "was-valid") == "Admitted",
        timeout=TIMEOUT,
    )
    try:
        install(apiserver, loose_crd(), tmp_path)
        schema_in_force(apiserver, namespace, loose=True)
        eventually(  # (the loose schema, too, takes effect asynchronously)
            "workers -1 stored",
            lambda: (
                apiserver.api.request(
                    "PATCH",
                    f"{tjs}/was-valid",
                    {"spec": {"workers": -1}},
                    content_type="application/merge-patch+json",
                )[0]
                == 200
            ),
            timeout=TIMEOUT,
        )
    finally:
        install(apiserver, yaml.safe_load(REAL_CRD.read_text()), tmp_path)
        schema_in_force(apiserver, namespace, loose=False)
    apiserver.api.create(tjs, trainingjob("whole-quota", workers=2, gpus=2))
    eventually(
        "whole-quota has a status",
        lambda: phase(apiserver, namespace, "whole-quota") is not None,
        timeout=TIMEOUT,
    )
    old_job = get(apiserver, job_path)  # stopped: deleted
    both_running = (
        phase(apiserver, namespace, "whole-quota") == "Admitted"
        and old_job is not None
        and old_job["spec"]["suspend"] is False
    )
    assert not both_running, "4 + 4 GPUs running in a team quota of 4"
