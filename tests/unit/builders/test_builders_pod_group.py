"""Native gang scheduling (issue #14 item 2): with PodGroups served, a multi-worker Job's
pods name the PodGroup of its admission, whose gang policy asks for all workers at once;
a single worker, or the feature off, builds the Job as before."""

from __future__ import annotations

import asyncio
from typing import Any

from builders_fixtures import UID, config, minimal

from cadre.controller.discovery import resolve_native_gangs
from cadre.core.api.config import OperatorConfig
from cadre.core.training import build_job, build_pod_group, pod_group_name, uses_pod_group
from cadre.core.training.children import as_spec
from cadre.core.training.job import job_record


def native(mode: str = "Native") -> OperatorConfig:
    base = config()
    admission = base.admission.model_copy(update={"native_gang_scheduling": mode})
    return base.model_copy(update={"admission": admission})


def job(body: dict[str, Any], cfg: OperatorConfig, admission: str | None = None) -> dict[str, Any]:
    return build_job(
        body,
        name="tj",
        namespace="ns",
        uid=UID,
        team="vision",
        config=cfg,
        admission_id=admission,
    )


def test_a_gang_names_its_pod_group_and_the_group_asks_for_every_worker() -> None:
    body = minimal(workers=3)
    built = job(body, native(), admission="0123456789abcdef")
    assert built["spec"]["template"]["spec"]["schedulingGroup"] == {"podGroupName": "tj-01234567"}
    # The reconciler makes the group the Job's pods name.
    assert job_record(built).pod_group == "tj-01234567"
    group = build_pod_group(
        body, group="tj-01234567", name="tj", namespace="ns", team="vision", job_uid="job-1"
    )
    assert group["apiVersion"] == "scheduling.k8s.io/v1alpha2"
    assert group["kind"] == "PodGroup"
    assert group["metadata"]["name"] == "tj-01234567"
    assert group["spec"] == {"schedulingPolicy": {"gang": {"minCount": 3}}}
    (owner,) = group["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", "tj", "job-1")


def test_each_admission_names_its_own_pod_group_a_dns_label() -> None:
    """A requeued or restarted gang's new Job must not name the earlier Job's group: the
    garbage collector deletes that one, and its protection finalizer waits for every pod
    naming it, the new ones included (S3: 248 gangs whose new group was refused for up
    to 27 minutes)."""
    first, second = (
        job(minimal(workers=2), native(), admission=a)["spec"]["template"]["spec"][
            "schedulingGroup"
        ]["podGroupName"]
        for a in ("aaaaaaaa00000000", "bbbbbbbb00000000")
    )
    assert first != second
    long_name = "x" * 60 + "-y"
    named = pod_group_name(long_name, "cccccccc00000000")
    assert len(named) <= 63 and named.endswith("x-cccccccc")
    assert pod_group_name("tj", None) == "tj"  # built without an admission: nothing runs


def test_one_worker_or_the_feature_off_builds_the_job_as_before() -> None:
    assert not uses_pod_group(as_spec(minimal(workers=1)), native())
    assert "schedulingGroup" not in job(minimal(workers=1), native())["spec"]["template"]["spec"]
    for mode in ("Off", "Auto"):  # Auto is resolved at start; unresolved, it builds none
        assert not uses_pod_group(as_spec(minimal(workers=4)), native(mode))
    # the Job differs (its spec hash too): a Job of the other kind is rebuilt while it waits
    assert (
        job(minimal(workers=4), native())["metadata"]["annotations"]
        != (job(minimal(workers=4), native("Off"))["metadata"]["annotations"])
    )


class Discovery:
    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.paths: list[str] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        self.paths.append(path)
        return self.answer


def test_auto_becomes_native_only_when_the_api_server_serves_pod_groups() -> None:
    served = {"resources": [{"name": "podgroups"}, {"name": "workloads"}]}
    for answer, expected in ((served, "Native"), (None, "Off"), ({"resources": []}, "Off")):
        cfg = native("Auto")
        client = Discovery(answer)
        asyncio.run(resolve_native_gangs(client, cfg))  # type: ignore[arg-type]
        assert cfg.admission.native_gang_scheduling == expected
        assert client.paths == ["/apis/scheduling.k8s.io/v1alpha2"]
    forced = native("Off")
    asyncio.run(resolve_native_gangs(Discovery(served), forced))  # type: ignore[arg-type]
    assert forced.admission.native_gang_scheduling == "Off"
