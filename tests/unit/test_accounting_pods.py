"""GPU-hours and cost from pod dicts (cadre.core.accounting.pods) and their place in status
(cadre.core.training.lifecycle.with_usage): pure, exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cadre.core.accounting import Rates, container_usages, format_figures, usage_and_cost
from cadre.core.training.lifecycle import admitted, with_usage

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
GPU = ("nvidia.com/gpu",)
RATES = Rates(Decimal("0.35"), Decimal("0.031"), Decimal("0.004"))


def admission(gpus: int, uid: str = "u") -> dict[str, Any]:
    """The admission record of the Job `uid` (the tests' Jobs are "u")."""
    return {"jobUID": uid, "team": "t", "flavor": "a100", "gpus": gpus}


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    state: dict[str, Any],
    *,
    gpus: int = 1,
    cpu: str = "4",
    memory: str = "16Gi",
    last: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "uid": "u"},
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "resources": {
                        "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)},
                        "limits": {"memory": memory, "nvidia.com/gpu": str(gpus)},
                    },
                }
            ]
        },
        "status": {
            "containerStatuses": [{"name": "worker", "state": state, "lastState": last or {}}]
        },
    }


def test_terminated_container_is_charged_its_interval_exactly() -> None:
    p = pod({"terminated": {"startedAt": ts(0), "finishedAt": ts(1800)}}, gpus=2)
    (usage,) = container_usages(p, GPU)
    assert (usage.gpus, usage.cpu_milli, usage.memory_bytes) == (2, 4000, 16 * 2**30)
    gpu_hours, amount = usage_and_cost([usage], RATES, T0 + timedelta(hours=5))
    assert gpu_hours == Decimal(1)
    # half an hour of 2 GPUs, 4 cores, 16 GiB
    assert amount == Decimal("0.35") + Decimal("0.062") + Decimal("0.032")
    assert format_figures(gpu_hours, amount) == {"gpuHours": "1.0000", "cost": "0.44"}


def test_running_container_counts_up_to_now_and_deleted_pods_are_closed() -> None:
    p = pod({"running": {"startedAt": ts(0)}})
    usages = container_usages(p, GPU)
    assert usage_and_cost(usages, RATES, T0 + timedelta(seconds=36))[0] == Decimal("0.01")
    closed = container_usages(p, GPU, deleted_at=T0 + timedelta(seconds=72))
    assert usage_and_cost(closed, RATES, T0 + timedelta(hours=1))[0] == Decimal("0.02")


def test_a_restarted_container_is_charged_both_runs_and_waiting_is_free() -> None:
    p = pod(
        {"running": {"startedAt": ts(100)}},
        last={"terminated": {"startedAt": ts(0), "finishedAt": ts(50)}},
    )
    gpu_hours, _ = usage_and_cost(container_usages(p, GPU), RATES, T0 + timedelta(seconds=110))
    assert gpu_hours == Decimal(60) / 3600
    waiting = pod({"waiting": {"reason": "ContainerCreating"}})
    assert container_usages(waiting, GPU) == ()
    assert container_usages({"metadata": {}}, GPU) == ()


def test_cpu_only_pod_and_other_gpu_resources() -> None:
    p = pod({"terminated": {"startedAt": ts(0), "finishedAt": ts(3600)}}, gpus=0, cpu="500m")
    gpu_hours, amount = usage_and_cost(container_usages(p, GPU), RATES, T0 + timedelta(hours=2))
    assert gpu_hours == 0
    assert amount == Decimal("0.0155") + Decimal("0.064")
    assert format_figures(gpu_hours, amount) == {"gpuHours": "0.0000", "cost": "0.08"}
    assert container_usages(p, ("amd.com/gpu",))[0].gpus == 0


def test_figures_ride_on_phase_transitions_and_freeze_when_finished() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(1), team="t", gpus=1)
    usages = container_usages(pod({"running": {"startedAt": ts(0)}}), GPU)
    later = T0 + timedelta(seconds=3600)
    # No pods ran yet: no figures.
    assert "gpuHours" not in with_usage(None, a, (), RATES, T0)
    running = with_usage(a, {**a, "phase": "Running"}, usages, RATES, later)
    assert running["gpuHours"] == "1.0000"
    # Same phase: not refreshed (no write of its own).
    much_later = later + timedelta(hours=1)
    assert with_usage(running, dict(running), usages, RATES, much_later) == running
    done = with_usage(running, {**running, "phase": "Succeeded"}, usages, RATES, later)
    assert done["cost"] == "0.54"  # 0.35 + 4 x 0.031 + 16 x 0.004 = 0.538
    # Finished: frozen, whatever comes later.
    assert with_usage(done, {**done, "phase": "Failed"}, usages, RATES, much_later) == {
        **done,
        "phase": "Failed",
    }
