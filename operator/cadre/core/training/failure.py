"""How a gang's Job fails, and how to read back why it failed.

Cadre restarts the whole gang itself (spec.retries), so the Job never retries a pod:
backoffLimit is 0 and the podFailurePolicy below fails the Job at the first failed
worker, with a message that names the pod and either its exit code or its disruption.
`parse_job_failure` turns the Job's Failed condition back into those facts, so the
lifecycle code can say "worker 2 exited with 137" and not charge a retry for a node drain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cadre.core.api.names import COMPLETION_INDEX_ANNOTATION

WORKER_CONTAINER: Final = "worker"

# Rule order matters: the first matching rule decides, so a disrupted pod (whose container
# was killed and may also have a non-zero exit code) is reported as disrupted.
DISRUPTION_RULE: Final = 0
EXIT_CODE_RULE: Final = 1


def pod_failure_policy() -> dict[str, Any]:
    """FailJob on a disruption (rule 0) or on the worker's non-zero exit (rule 1).

    A disrupted worker (preempted by the kube-scheduler, evicted, node drained or gone) is
    not replaced in place: a static torchrun rendezvous cannot take a new member, so the
    other workers would only hang until their collective timeout. Failing the Job at once
    frees the gang's GPUs and lets Cadre restart the gang, knowing it was a disruption.
    """
    return {
        "rules": [
            {
                "action": "FailJob",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": WORKER_CONTAINER,
                    "operator": "NotIn",
                    "values": [0],
                },
            },
        ]
    }


FailureKind = Literal["ExitCode", "Disruption", "DeadlineExceeded", "Other"]


@dataclass(frozen=True, slots=True)
class JobFailure:
    """Why a gang's Job failed, read from its Failed condition."""

    kind: FailureKind
    reason: str
    """The Job condition's reason: PodFailurePolicy, DeadlineExceeded, BackoffLimitExceeded..."""
    message: str
    pod: str | None = None
    """namespace/name of the worker pod that failed first, when the message names it."""
    exit_code: int | None = None


# The job controller's messages (pkg/controller/job/pod_failure_policy.go).
_EXIT_RE: Final = re.compile(
    r"^Container (?P<container>\S+) for pod (?P<pod>\S+/\S+) failed with exit code "
    r"(?P<code>-?\d+) matching FailJob rule at index (?P<rule>\d+)$"
)
_CONDITION_RE: Final = re.compile(
    r"^Pod (?P<pod>\S+/\S+) has condition (?P<condition>\S+) matching FailJob rule "
    r"at index (?P<rule>\d+)$"
)


def parse_job_failure(condition: Mapping[str, Any]) -> JobFailure:
    """Classify the Job's `Failed` (or `FailureTarget`) condition built by this module."""
    reason = str(condition.get("reason") or "")
    message = str(condition.get("message") or "")
    if reason == "DeadlineExceeded":
        return JobFailure("DeadlineExceeded", reason, message)
    if reason == "PodFailurePolicy":
        if match := _EXIT_RE.match(message):
            return JobFailure(
                "ExitCode", reason, message, pod=match["pod"], exit_code=int(match["code"])
            )
        if (match := _CONDITION_RE.match(message)) and match["condition"] == "DisruptionTarget":
            return JobFailure("Disruption", reason, message, pod=match["pod"])
    return JobFailure("Other", reason, message)


def completion_index(pod: Mapping[str, Any]) -> int | None:
    """The worker index of a pod of an Indexed Job (from its annotation), if it has one."""
    metadata = pod.get("metadata") or {}
    value = (metadata.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    return int(value) if isinstance(value, str) and value.isdigit() else None
