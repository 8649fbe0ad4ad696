"""A ModelDeployment's children as observed: slim records the store keeps and the serving
lifecycle reads. Pure: wire dicts in, frozen values out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cadre.core.api.names import ANNOTATION_SPEC_HASH, LABEL_MODELDEPLOYMENT, LABEL_TRACK
from cadre.core.objects import find_condition

__all__ = [
    "AutoscalerRecord",
    "DeploymentRecord",
    "ServingPod",
    "autoscaler_record",
    "deployment_record",
    "serving_pod",
]

INIT_CONTAINER: Final = "storage-initializer"
SERVER_CONTAINER: Final = "server"

# Waiting reasons of a container that will not get better by waiting.
_STUCK_REASONS: Final = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _controller_uid(metadata: Mapping[str, Any]) -> str:
    for ref in metadata.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A stable or canary Deployment of a ModelDeployment."""

    namespace: str
    name: str
    uid: str
    owner_uid: str
    """The ModelDeployment that controls it (its UID), '' if none."""
    track: str
    spec_hash: str | None
    replicas: int
    """spec.replicas: what Cadre (or the autoscaler) asked for."""
    pods: int
    """status.replicas: pods of every revision that exist, surge included."""
    updated: int
    ready: int
    available: int
    generation: int
    observed_generation: int
    progress_deadline_exceeded: bool

    @property
    def rolled_out(self) -> bool:
        """Every pod runs the current template, and no pod of an older one is left."""
        return (
            self.observed_generation >= self.generation
            and self.updated >= self.replicas
            and self.pods <= self.replicas
        )


def deployment_record(obj: Mapping[str, Any]) -> DeploymentRecord:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    stuck = (find_condition(status, "Progressing") or {}).get(
        "reason"
    ) == "ProgressDeadlineExceeded"
    replicas = spec.get("replicas")
    return DeploymentRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        owner_uid=_controller_uid(metadata),
        track=str(labels.get(LABEL_TRACK, "")),
        spec_hash=(metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
        replicas=1 if replicas is None else _int(replicas),
        pods=_int(status.get("replicas")),
        updated=_int(status.get("updatedReplicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        progress_deadline_exceeded=stuck,
    )


@dataclass(frozen=True, slots=True)
class AutoscalerRecord:
    """A ModelDeployment's HorizontalPodAutoscaler: what it wants."""

    namespace: str
    name: str
    uid: str
    owner_uid: str
    spec_hash: str | None
    min_replicas: int
    max_replicas: int
    desired: int
    """status.desiredReplicas: its recommendation, already clamped to [min, max]."""
    wants_more: bool
    """ScalingLimited is True with reason TooManyReplicas: it would go above max."""


def autoscaler_record(obj: Mapping[str, Any]) -> AutoscalerRecord:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scaling = find_condition(status, "ScalingLimited") or {}
    limited = scaling.get("status") == "True" and scaling.get("reason") == "TooManyReplicas"
    return AutoscalerRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        owner_uid=_controller_uid(metadata),
        spec_hash=(metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
        min_replicas=_int(spec.get("minReplicas")) or 1,
        max_replicas=_int(spec.get("maxReplicas")),
        desired=_int(status.get("desiredReplicas")),
        wants_more=limited,
    )


@dataclass(frozen=True, slots=True)
class ServingPod:
    """What a serving pod says about loading its model."""

    uid: str
    name: str
    track: str
    ready: bool
    gone: bool
    """Being deleted (or deleted): it no longer serves."""
    loading: bool
    """The model download (init container) or the server's start is under way."""
    failure: str | None
    """Why the model failed to load: the downloader's or the server's reason and message."""
    scheduled: bool = False
    """Bound to a node (what admission.waitForPodsReady waits for)."""


def _container_failure(status: Mapping[str, Any], what: str) -> str | None:
    state = status.get("state") or {}
    last = status.get("lastState") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    if terminated and _int(terminated.get("exitCode")) != 0:
        return _terminated_text(what, terminated)
    if waiting.get("reason") in _STUCK_REASONS:
        text = f"{what}: {waiting['reason']}"
        earlier = last.get("terminated") or {}
        if earlier and _int(earlier.get("exitCode")) != 0:
            return _terminated_text(what, earlier) + f" ({waiting['reason']})"
        message = str(waiting.get("message") or "").strip()
        return f"{text}: {message}" if message else text
    return None


def _terminated_text(what: str, terminated: Mapping[str, Any]) -> str:
    reason = str(terminated.get("reason") or "Error")
    code = _int(terminated.get("exitCode"))
    message = str(terminated.get("message") or "").strip()
    # The termination message is the tail of the log (FallbackToLogsOnError): its last
    # lines say why; a status condition has room for a few hundred characters.
    tail = message[-400:]
    text = f"{what} failed ({reason}, exit code {code})"
    return f"{text}: {tail}" if tail else text


def serving_pod(obj: Mapping[str, Any]) -> ServingPod:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    ready = (find_condition(status, "Ready") or {}).get("status") == "True"
    failure: str | None = None
    loading = False
    for each in status.get("initContainerStatuses") or ():
        if not isinstance(each, Mapping) or each.get("name") != INIT_CONTAINER:
            continue
        failure = _container_failure(each, "model download")
        terminated = (each.get("state") or {}).get("terminated") or {}
        loading = not terminated
    for each in status.get("containerStatuses") or ():
        if not isinstance(each, Mapping) or each.get("name") != SERVER_CONTAINER:
            continue
        failure = failure or _container_failure(each, "model server")
        loading = loading or not each.get("ready")
    if status.get("phase") == "Failed" and failure is None:
        failure = str(status.get("message") or status.get("reason") or "the pod failed")
    return ServingPod(
        uid=str(metadata.get("uid", "")),
        name=str(metadata.get("name", "")),
        track=str(labels.get(LABEL_TRACK, "")),
        ready=ready and not metadata.get("deletionTimestamp"),
        gone=bool(metadata.get("deletionTimestamp")),
        loading=loading and not ready,
        failure=failure,
        scheduled=bool((obj.get("spec") or {}).get("nodeName")),
    )


def modeldeployment_of(labels: Mapping[str, Any]) -> str | None:
    """The ModelDeployment a child or pod belongs to, by its label."""
    name = labels.get(LABEL_MODELDEPLOYMENT)
    return str(name) if name else None
