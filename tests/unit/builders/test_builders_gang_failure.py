"""The gang's request for admission, and reading back why a gang's Job failed."""

from __future__ import annotations

import pytest
from builders_fixtures import example, minimal

from cadre.core.training import (
    GangRequest,
    JobFailure,
    as_spec,
    completion_index,
    gang_request,
    parse_job_failure,
)


def test_gang_request_of_the_pytorch_example() -> None:
    request = gang_request(as_spec(example("trainingjob-pytorch.yaml")))
    assert request == GangRequest("a100", 4, 8, 32_000, 200 * 2**30)
    flavor, pods, gpus, cpu, memory = request
    assert (flavor, pods, gpus, cpu, memory) == ("a100", 4, 8, 32_000, 200 * 2**30)
    assert (request.gpus, request.cpu_milli, request.memory_bytes) == (32, 128_000, 800 * 2**30)


def test_gang_request_rounds_up_and_treats_absent_as_zero() -> None:
    spec = as_spec(minimal(workers=3, resources={"flavor": "cpu-only", "cpu": "1500m"}))
    assert gang_request(spec) == GangRequest("cpu-only", 3, 0, 1500, 0)
    spec = as_spec(minimal(resources={"cpu": "0.0001", "memory": "1.5"}))
    assert gang_request(spec) == GangRequest(None, 1, 0, 1, 2)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {
                "type": "Failed",
                "reason": "PodFailurePolicy",
                "message": "Container worker for pod ns/tj-2-abcde failed with exit code 137 "
                "matching FailJob rule at index 1",
            },
            JobFailure(
                "ExitCode",
                "PodFailurePolicy",
                "Container worker for pod ns/tj-2-abcde failed with exit code 137 "
                "matching FailJob rule at index 1",
                pod="ns/tj-2-abcde",
                exit_code=137,
            ),
        ),
        (
            {
                "type": "Failed",
                "reason": "PodFailurePolicy",
                "message": "Pod ns/tj-0-xyz12 has condition DisruptionTarget matching FailJob "
                "rule at index 0",
            },
            JobFailure(
                "Disruption",
                "PodFailurePolicy",
                "Pod ns/tj-0-xyz12 has condition DisruptionTarget matching FailJob rule at index 0",
                pod="ns/tj-0-xyz12",
            ),
        ),
        (
            {
                "type": "Failed",
                "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
            },
            JobFailure(
                "DeadlineExceeded",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ),
        ),
        (
            {
                "type": "Failed",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
            JobFailure(
                "Other", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            ),
        ),
        ({"type": "Failed"}, JobFailure("Other", "", "")),
    ],
)
def test_parse_job_failure(condition: dict[str, str], expected: JobFailure) -> None:
    assert parse_job_failure(condition) == expected


def test_completion_index_of_a_pod() -> None:
    pod = {"metadata": {"annotations": {"batch.kubernetes.io/job-completion-index": "3"}}}
    assert completion_index(pod) == 3
    assert completion_index({"metadata": {}}) is None
    assert completion_index({}) is None
