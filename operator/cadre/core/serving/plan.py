"""How many replicas each track runs, within what the team's quota admits. Pure.

Admission gives a ModelDeployment a number of replicas: its gang (replicas.min, admitted
at once) plus extra replicas admitted one at a time. The plan spreads what is admitted
over the stable and canary Deployments (`split_replicas`), and moves between two layouts
without ever running more pods than admitted and without the ready count dropping:

- **Growth or shrink of both tracks** is set at once (a shrink gives quota back promptly).
- **A rolling update** (a new model or image) needs room for the Deployment's one surge
  pod (maxSurge 1, maxUnavailable 0). That room is one admitted replica kept aside (the
  `surge`): the wish asks for one more replica while a change is pending, and the new
  template is applied only once it is admitted. One Deployment rolls at a time.
- **A shift** between tracks (a canary added, promoted or aborted, or a new split) grows
  the track that gains into the surge room first, and shrinks the other only as the
  gaining track's pods become ready: `ready(stable) + ready(canary)` never drops below
  what was serving, so never below replicas.min.

Promotion (the canary's model moved to spec.model, canary removed) is a rolling update of
stable followed by a shift of the canary's replicas to stable; abort (canary removed) is
the shift alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadre.core.api.modeldeployment import ModelDeploymentSpec
from cadre.core.serving.canary import split_replicas
from cadre.core.serving.observed import AutoscalerRecord, DeploymentRecord

__all__ = ["Observed", "ReplicaPlan", "plan_replicas", "serving_wish", "wanted_replicas"]


@dataclass(frozen=True, slots=True)
class Observed:
    """A ModelDeployment's children as the cache holds them."""

    stable: DeploymentRecord | None = None
    canary: DeploymentRecord | None = None
    autoscaler: AutoscalerRecord | None = None
    stable_current: bool = True
    """The stable Deployment's template is what the spec builds now."""
    canary_current: bool = True


@dataclass(frozen=True, slots=True)
class ReplicaPlan:
    """What to set now. `stable` / `canary`: the Deployments' spec.replicas."""

    wish: int
    """Replicas that should serve (`serving_wish`), whatever is admitted."""
    serving: int
    """Replicas that serve once every step is done (admitted, minus the surge)."""
    surge: int
    """0 or 1: an admitted replica kept for a rolling update or a shift."""
    stable: int
    canary: int
    target: tuple[int, int]
    """(stable, canary) once every step is done."""
    roll_stable: bool
    """Apply the spec's template to the stable Deployment now."""
    roll_canary: bool
    delete_canary: bool
    """The canary Deployment is no longer wanted and has no replica left to move."""
    autoscaler: tuple[int, int] | None
    """(minReplicas, maxReplicas) of the stable Deployment's autoscaler; None: none."""
    waiting_for_surge: bool
    """A rolling update or a shift waits for one more admitted replica."""

    @property
    def busy(self) -> bool:
        """A rolling update or a shift is pending or under way."""
        return self.surge > 0 or self.waiting_for_surge


def _target(spec: ModelDeploymentSpec, total: int) -> tuple[int, int]:
    if spec.canary is None or total < 2:
        return total, 0
    return split_replicas(total, spec.canary.traffic_percent)


def _ready_current(record: DeploymentRecord | None) -> int:
    """Ready pods of the current template (all ready pods once rolled out)."""
    if record is None:
        return 0
    return record.ready if record.rolled_out else min(record.ready, record.updated)


def serving_wish(spec: ModelDeploymentSpec, admitted: int, observed: Observed) -> int:
    """Replicas that should serve, within [min, max]: replicas.min, or what the autoscaler
    recommends for stable plus the canary's replicas (one more than it may have when it is
    held at its maximum: extras are admitted one at a time). 0 when stopped."""
    if spec.stopped:
        return 0
    low, high = spec.replicas.min, spec.replicas.max
    wanted = low
    hpa = observed.autoscaler
    canary_now = observed.canary.replicas if observed.canary is not None else 0
    if spec.autoscaling is not None and admitted > 0:
        if hpa is None or hpa.desired <= 0:
            wanted = admitted  # no recommendation yet: keep what is admitted
        elif hpa.wants_more:
            wanted = hpa.max_replicas + canary_now + 1
        else:
            wanted = hpa.desired + canary_now
    return min(max(wanted, low), high)


def plan_replicas(
    spec: ModelDeploymentSpec, admitted: int, gang: int, observed: Observed
) -> ReplicaPlan:
    """The plan for `admitted` replicas in all (0: not admitted, or stopped), of which
    `gang` were admitted as the gang. Replicas admitted beyond what should serve are not
    used, except one as the surge of a pending rolling update or shift."""
    stable, canary = observed.stable, observed.canary
    stable_now = stable.replicas if stable is not None else 0
    canary_now = canary.replicas if canary is not None else 0
    wish = serving_wish(spec, admitted, observed)
    if admitted <= 0 or wish <= 0:
        return ReplicaPlan(
            wish=wish,
            serving=0,
            surge=0,
            stable=0,
            canary=0,
            target=(0, 0),
            roll_stable=True,
            roll_canary=True,
            delete_canary=canary is not None and spec.canary is None,
            autoscaler=None,
            waiting_for_surge=False,
        )
    # A rolling update is pending while the template is not the spec's, and under way
    # until the Deployment has no pod of an older template left.
    roll_stable = (
        stable is not None
        and stable.pods > 0
        and (not observed.stable_current or not stable.rolled_out)
    )
    roll_canary = (
        spec.canary is not None
        and canary is not None
        and canary.pods > 0
        and (not observed.canary_current or not canary.rolled_out)
    )
    serving = min(admitted, wish)
    target = _target(spec, serving)
    shifting = (target[0] < stable_now and target[1] > canary_now) or (
        target[1] < canary_now and target[0] > stable_now
    )
    busy = roll_stable or roll_canary or shifting
    surge = 1 if busy and admitted > serving else 0
    stable_to, canary_to = target
    rolling = roll_stable or roll_canary
    if shifting and rolling:
        # The shift waits for the rolling update: the surge room is the Deployment's
        # meanwhile. Only a shrink of what is admitted (a preemption) goes through.
        stable_to, canary_to = stable_now, canary_now
        excess = stable_to + canary_to - serving
        if excess > 0:
            cut = min(excess, canary_to)
            canary_to -= cut
            stable_to -= excess - cut
    elif stable_now + canary_now <= serving + surge:
        # Not forced (what is admitted still covers what runs): a track shrinks only as
        # far as the other's ready pods make up for, and a track grows into the room
        # left, surge included. (Over the admission, both go to the target at once.)
        room = serving + surge
        if canary_to < canary_now:
            canary_to = min(canary_now, max(canary_to, serving - _ready_current(stable)))
        if stable_to < stable_now:
            stable_to = min(stable_now, max(stable_to, serving - _ready_current(canary)))
        if canary_to > canary_now:
            canary_to = max(canary_now, min(canary_to, room - stable_to))
        if stable_to > stable_now:
            stable_to = max(stable_now, min(stable_to, room - canary_to))
    do_roll_stable = roll_stable and surge > 0
    do_roll_canary = roll_canary and surge > 0 and not roll_stable
    # A Deployment without pods has nothing to roll: its template is simply replaced.
    if stable is None or stable.pods == 0:
        do_roll_stable = True
    if canary is None or canary.pods == 0:
        do_roll_canary = True
    autoscaler = None
    if spec.autoscaling is not None:
        # While a rolling update or a shift runs, the autoscaler is pinned to the plan's
        # count for stable; otherwise it moves between stable's share of the floor and
        # what is admitted for stable.
        floor = stable_to if busy else max(1, min(stable_to, gang - canary_to))
        autoscaler = (max(1, floor), max(1, floor, stable_to))
    return ReplicaPlan(
        wish=wish,
        serving=serving,
        surge=surge,
        stable=stable_to,
        canary=canary_to,
        target=target,
        roll_stable=do_roll_stable,
        roll_canary=do_roll_canary,
        delete_canary=spec.canary is None and canary is not None and canary_to == 0,
        autoscaler=autoscaler,
        waiting_for_surge=busy and surge == 0,
    )


def wanted_replicas(spec: ModelDeploymentSpec, admitted: int, plan: ReplicaPlan) -> int:
    """Replicas the ModelDeployment wants admitted in all: what should serve
    (`ReplicaPlan.wish`), plus one while a rolling update or a shift is pending (the
    surge). 0 when stopped; replicas.min while not admitted. `plan` is the plan for
    `admitted` (`plan_replicas`)."""
    if spec.stopped:
        return 0
    if admitted <= 0:
        return spec.replicas.min
    return plan.wish + (1 if plan.busy else 0)
