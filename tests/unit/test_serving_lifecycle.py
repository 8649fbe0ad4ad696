"""ModelDeployment status (cadre.core.serving.lifecycle) and what pods say of the model
(cadre.core.serving.observed): phases, the load state with the downloader's reason,
QuotaLimited with its numbers and its one Event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cadre.core.api.modeldeployment import ModelDeploymentSpec
from cadre.core.serving.lifecycle import (
    ServingFacts,
    serving_admitted,
    serving_status,
    serving_transition_events,
)
from cadre.core.serving.observed import DeploymentRecord, ServingPod, serving_pod
from cadre.core.serving.plan import Observed, plan_replicas

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MD = {"metadata": {"name": "fraud", "namespace": "risk", "uid": "u1"}}


def spec(**extra: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/fraud/v7"},
        "runtime": {"image": "serve:1", "port": 9000},
        "replicas": {"min": 2, "max": 2},
        "resources": {"flavor": "t4", "gpus": 1},
    }
    body.update(extra)
    return ModelDeploymentSpec.model_validate(body)


def stable(replicas: int, ready: int) -> DeploymentRecord:
    return DeploymentRecord(
        "risk",
        "fraud",
        "d1",
        "u1",
        "stable",
        "h",
        replicas,
        replicas,
        replicas,
        ready,
        ready,
        1,
        1,
        False,
    )


def status_for(
    ready: int,
    *,
    pods: tuple[ServingPod, ...] = (),
    wanted: int = 2,
    waiting: str | None = None,
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    s = spec()
    observed = Observed(stable=stable(2, ready))
    facts = ServingFacts(
        name="fraud",
        namespace="risk",
        spec=s,
        plan=plan_replicas(s, 2, 2, observed),
        observed=observed,
        pods=pods,
        wanted=wanted,
        waiting=waiting,
    )
    admitted = serving_admitted(
        before, generation=1, now=NOW, admission={"uid": "u1", "replicas": 2}, team="risk"
    )
    return serving_status(admitted, generation=1, now=NOW, facts=facts)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def pod(name: str, **status: Any) -> ServingPod:
    return serving_pod(
        {
            "metadata": {"name": name, "uid": name, "labels": {"cadre.dev/track": "stable"}},
            "status": status,
        }
    )


def test_loading_until_min_replicas_are_ready_then_ready_with_url() -> None:
    loading = status_for(
        1,
        pods=(
            pod(
                "a",
                initContainerStatuses=[{"name": "storage-initializer", "state": {"running": {}}}],
            ),
        ),
    )
    assert loading["phase"] == "Loading"
    assert loading["model"] == {"state": "Loading"}
    ready = status_for(2)
    assert ready["phase"] == "Ready"
    assert ready["url"] == "http://fraud.risk.svc:9000"
    assert ready["ready"] == "2/2"
    assert conditions(ready)["Ready"]["status"] == "True"


def test_a_failed_download_is_failed_to_load_with_the_downloaders_reason() -> None:
    failed = pod(
        "a",
        initContainerStatuses=[
            {
                "name": "storage-initializer",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "message": "botocore.exceptions.NoCredentialsError: Unable to locate "
                        "credentials",
                    }
                },
            }
        ],
    )
    assert failed.failure is not None and "NoCredentialsError" in failed.failure
    status = status_for(0, pods=(failed,))
    assert status["phase"] == "Degraded"
    assert status["model"]["state"] == "FailedToLoad"
    assert "model download failed (Error, exit code 1)" in status["model"]["message"]
    assert conditions(status)["Ready"]["reason"] == "ModelFailedToLoad"


def test_quota_limited_says_the_numbers_and_is_announced_once() -> None:
    before = status_for(2)
    limited = status_for(
        2, wanted=3, waiting="waiting for 1 t4 GPU: team risk uses 4/4", before=before
    )
    assert limited["phase"] == "QuotaLimited"
    message = conditions(limited)["QuotaLimited"]["message"]
    assert message == "3 replicas wanted, 2 admitted: waiting for 1 t4 GPU: team risk uses 4/4"
    events = serving_transition_events(MD, before, limited, NOW)
    assert [(e["reason"], e["type"]) for e in events] == [("QuotaLimited", "Warning")]
    again = status_for(2, wanted=3, waiting="waiting...", before=limited)
    assert serving_transition_events(MD, limited, again, NOW) == []
    freed = status_for(2, before=again)
    assert freed["phase"] == "Ready"
    assert conditions(freed)["QuotaLimited"]["status"] == "False"


def test_degraded_after_it_served_and_lost_replicas() -> None:
    ready = status_for(2)
    lost = status_for(1, before=ready)
    assert lost["phase"] == "Degraded"
