"""The replica plan of a ModelDeployment, driven against a small model of the Deployment
controller (maxSurge 1, maxUnavailable 0) and an admission that gives what is wished up
to a quota: never more pods than admitted, never fewer ready than were serving, and
every change (canary added, promoted, aborted, new model) completes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cadre.core.api.modeldeployment import ModelDeploymentSpec
from cadre.core.serving.observed import DeploymentRecord
from cadre.core.serving.plan import Observed, plan_replicas, wanted_replicas


def spec(minimum: int = 2, maximum: int | None = None, **extra: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/fraud/v7"},
        "runtime": {"image": "ghcr.io/acme/serve:2.1"},
        "replicas": {"min": minimum, "max": maximum or minimum},
        "resources": {"flavor": "t4", "gpus": 1},
    }
    body.update(extra)
    return ModelDeploymentSpec.model_validate(body)


@dataclass
class FakeDeployment:
    """The Deployment controller, one pod step per tick: new pods become ready a tick
    after they are created; an old-template pod goes only when enough are ready."""

    replicas: int = 0
    template: str = ""
    pods: list[tuple[str, bool]] = field(default_factory=list)  # (template, ready)
    generation: int = 1

    def set(self, replicas: int, template: str | None) -> None:
        if template is not None and template != self.template:
            self.template = template
            self.generation += 1
        self.replicas = replicas

    def tick(self) -> None:
        self.pods = [(t, True) for t, _ in self.pods]  # last tick's pods are ready
        new = [p for p in self.pods if p[0] == self.template]
        old = [p for p in self.pods if p[0] != self.template]
        ready = sum(1 for _, r in self.pods if r)
        if old:
            if len(new) < self.replicas and len(self.pods) < self.replicas + 1:
                self.pods.append((self.template, False))
            elif ready - 1 >= self.replicas or len(self.pods) > self.replicas + 1:
                self.pods.remove(old[0])  # maxUnavailable 0: only while enough are ready
        elif len(self.pods) < self.replicas:
            self.pods.append((self.template, False))
        elif len(self.pods) > self.replicas:
            self.pods.pop()

    def record(self, track: str) -> DeploymentRecord:
        updated = sum(1 for t, _ in self.pods if t == self.template)
        return DeploymentRecord(
            namespace="ns",
            name=track,
            uid=track,
            owner_uid="md",
            track=track,
            spec_hash=self.template,
            replicas=self.replicas,
            pods=len(self.pods),
            updated=updated,
            ready=sum(1 for _, r in self.pods if r),
            available=sum(1 for _, r in self.pods if r),
            generation=self.generation,
            observed_generation=self.generation,
            progress_deadline_exceeded=False,
        )

    @property
    def ready(self) -> int:
        return sum(1 for _, r in self.pods if r)


@dataclass
class World:
    spec: ModelDeploymentSpec
    quota: int
    stable: FakeDeployment = field(default_factory=FakeDeployment)
    canary: FakeDeployment | None = None
    admitted: int = 0

    def templates(self) -> tuple[str, str | None]:
        stable = f"{self.spec.model.uri}"
        canary = None if self.spec.canary is None else self.spec.canary.model.uri
        return stable, canary

    def observed(self) -> Observed:
        stable_t, canary_t = self.templates()
        return Observed(
            stable=self.stable.record("stable") if self.stable.generation > 1 else None,
            canary=self.canary.record("canary") if self.canary is not None else None,
            stable_current=self.stable.template == stable_t,
            canary_current=self.canary is None or self.canary.template == canary_t,
        )

    def step(self) -> None:
        gang = self.spec.replicas.min
        wish = wanted_replicas(
            self.spec, self.admitted, plan_replicas(self.spec, self.admitted, gang, self.observed())
        )
        # the admission: what is wished, within the quota; a shrink only once the pods
        # above it are gone (what runs stays held)
        running = len(self.stable.pods) + (len(self.canary.pods) if self.canary else 0)
        self.admitted = max(min(wish, self.quota), min(running, self.admitted))
        if self.admitted < gang:
            self.admitted = 0
        plan = plan_replicas(self.spec, self.admitted, gang, self.observed())
        stable_t, canary_t = self.templates()
        self.stable.set(plan.stable, stable_t if plan.roll_stable else None)
        if canary_t is not None or (self.canary is not None and not plan.delete_canary):
            if self.canary is None:
                self.canary = FakeDeployment()
            self.canary.set(plan.canary, canary_t if plan.roll_canary and canary_t else None)
        elif plan.delete_canary:
            self.canary = None
        self.stable.tick()
        if self.canary is not None:
            self.canary.tick()

    def pods(self) -> int:
        return len(self.stable.pods) + (len(self.canary.pods) if self.canary else 0)

    def ready(self) -> int:
        return self.stable.ready + (self.canary.ready if self.canary else 0)


def settle(world: World, floor: int, ticks: int = 60) -> None:
    """Run until nothing changes, checking the two invariants on every tick."""
    for _ in range(ticks):
        before = world.pods(), world.ready(), world.admitted
        world.step()
        assert world.pods() <= max(world.admitted, before[0]), (world, before)
        assert world.ready() >= min(floor, before[1]), (world, before)


def converged(world: World) -> tuple[int, int]:
    canary = world.canary
    return (world.stable.ready, canary.ready if canary is not None else 0)


CANARY_V8 = {"model": {"uri": "s3://models/fraud/v8"}, "trafficPercent": 25}


def test_a_canary_at_25_percent_of_4_replicas_runs_one_pod() -> None:
    world = World(spec(4, canary=CANARY_V8), quota=10)
    settle(world, floor=0)
    assert converged(world) == (3, 1)
    assert world.admitted == 4  # the surge went back once the layout was reached


def test_promotion_rolls_stable_without_dropping_below_min() -> None:
    world = World(spec(4, canary=CANARY_V8), quota=10)
    settle(world, floor=0)
    world.spec = spec(4, model={"uri": "s3://models/fraud/v8"})
    settle(world, floor=4)
    assert converged(world) == (4, 0) and world.canary is None
    assert all(t == "s3://models/fraud/v8" for t, _ in world.stable.pods)
    assert world.admitted == 4


def test_a_rolling_update_waits_for_room_for_its_surge() -> None:
    world = World(spec(3), quota=3)
    settle(world, floor=0)
    world.spec = spec(3, model={"uri": "s3://models/fraud/v9"})
    settle(world, floor=3)
    assert all(t == "s3://models/fraud/v7" for t, _ in world.stable.pods)  # no room
    plan = plan_replicas(world.spec, world.admitted, 3, world.observed())
    assert plan.waiting_for_surge
    world.quota = 4
    settle(world, floor=3)
    assert all(t == "s3://models/fraud/v9" for t, _ in world.stable.pods)
    assert world.admitted == 3


@settings(max_examples=300, deadline=None)
@given(
    minimum=st.integers(2, 8),
    room=st.integers(0, 3),
    first=st.integers(5, 95),
    second=st.one_of(st.none(), st.integers(5, 95)),
    promote=st.booleans(),
)
def test_any_change_keeps_pods_within_admission_and_ready_at_least_serving(
    minimum: int, room: int, first: int, second: int | None, promote: bool
) -> None:
    canary = {"model": {"uri": "s3://models/fraud/v8"}, "trafficPercent": first}
    world = World(spec(minimum), quota=minimum + room)
    settle(world, floor=0)
    world.spec = spec(minimum, canary=canary)
    settle(world, floor=minimum)
    if second is not None:
        world.spec = spec(minimum, canary={**canary, "trafficPercent": second})
        settle(world, floor=minimum)
    model = {"uri": "s3://models/fraud/v8" if promote else "s3://models/fraud/v7"}
    world.spec = spec(minimum, model=model)
    settle(world, floor=minimum)
    if room > 0:
        assert converged(world) == (minimum, 0) and world.canary is None
        assert all(t == model["uri"] for t, _ in world.stable.pods)
    assert world.admitted <= minimum + room
