"""apply_result refuses a result that contradicts itself instead of keeping one decision per
key; the scheduler never returns one (test_sched_properties checks that on random input)."""

from __future__ import annotations

import re

import pytest

from cadre.core.scheduling import (
    Admission,
    Flavour,
    FlavourQuota,
    Limits,
    PassResult,
    Reason,
    Resources,
    Snapshot,
    Team,
    Victim,
    Workload,
    WorkloadKind,
    apply_result,
    schedule,
)

GANG = Resources(gpus=8)


def snapshot() -> Snapshot:
    return Snapshot(
        flavours=(Flavour("a100", Resources(gpus=64)),),
        teams=(Team("vision", (FlavourQuota("a100", Limits(gpus=32)),)),),
        workloads=(
            Workload("ns/train", "vision", "a100", Resources(gpus=8)),
            Workload("ns/old", "vision", "a100", Resources(gpus=8), admitted=True, admitted_at=1.0),
            Workload(
                "ns/serve",
                "vision",
                "a100",
                Resources(gpus=1),
                kind=WorkloadKind.MODEL_DEPLOYMENT,
                extra_replicas=2,
                admitted=True,
                admitted_extra=2,
                admitted_at=2.0,
            ),
        ),
    )


def admission(key: str, *, gang: bool = True, extra: int = 0, total: int = 0) -> Admission:
    return Admission(key, "vision", "a100", gang, extra, total, GANG, Resources())


def victim(key: str, replicas: int = 0, left: int = 0) -> Victim:
    return Victim(
        key, "vision", "a100", Reason.PREEMPTED, "preempted by ns/x", "ns/x", replicas, left
    )


def result(admitted: tuple[Admission, ...] = (), victims: tuple[Victim, ...] = ()) -> PassResult:
    return PassResult(admitted, victims, (), ())


def test_applies_a_consistent_result() -> None:
    snap = snapshot()
    after = apply_result(
        snap, result((admission("ns/train"),), (victim("ns/old"), victim("ns/serve", 1, 1))), 9.0
    )
    by_key = {w.key: w for w in after.workloads}
    assert by_key["ns/train"].admitted and by_key["ns/train"].admitted_at == 9.0
    assert not by_key["ns/old"].admitted and by_key["ns/old"].admitted_at is None
    assert by_key["ns/serve"].admitted and by_key["ns/serve"].admitted_extra == 1


def test_a_gang_admitted_twice_is_refused() -> None:
    bad = result((admission("ns/train"), admission("ns/train")))
    with pytest.raises(ValueError, match="names ns/train twice among those it admitted"):
        apply_result(snapshot(), bad, 9.0)


def test_a_gang_and_its_extras_as_two_admissions_are_refused() -> None:
    bad = result((admission("ns/train"), admission("ns/train", gang=False, extra=1, total=1)))
    with pytest.raises(ValueError, match="ns/train twice"):
        apply_result(snapshot(), bad, 9.0)


def test_a_workload_admitted_and_preempted_whole_is_refused() -> None:
    bad = result((admission("ns/old"),), (victim("ns/old"),))
    with pytest.raises(ValueError, match=re.escape("both admits and stops (preempts) ns/old")):
        apply_result(snapshot(), bad, 9.0)


def test_extras_admitted_and_preempted_are_refused() -> None:
    bad = result(
        (admission("ns/serve", gang=False, extra=1, total=2),), (victim("ns/serve", 1, 1),)
    )
    with pytest.raises(ValueError, match=re.escape("both admits and stops (preempts) ns/serve")):
        apply_result(snapshot(), bad, 9.0)


def test_a_workload_stopped_twice_is_refused() -> None:
    bad = result((), (victim("ns/old"), victim("ns/old")))
    with pytest.raises(ValueError, match="names ns/old twice among those it stopped"):
        apply_result(snapshot(), bad, 9.0)


def test_the_scheduler_s_own_result_applies() -> None:
    snap = snapshot()
    first = schedule(snap)
    assert [a.key for a in first.admitted] == ["ns/train"]
    apply_result(snap, first, 9.0)
