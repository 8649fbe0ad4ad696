"""The admission pass: one queue for the cluster, decided in one pure function.

`schedule(snapshot)` is the whole contract. The snapshot becomes mutable integer state
(state.py) so that a fit check is a dozen integer comparisons, then:

1. setup: what admitted work holds is counted; workloads that can never fit get their
   reason at once and are not queued; teams Exceeded+Suspend lose their admitted work
   (victims); Exceeded+Queue and Exceeded+Suspend teams admit nothing;
2. the main loop pops the globally next unit of work from a heap of team heads keyed by
   (-priority, zero weight?, share/weight, creation, key); each team's own queue is a heap
   ordered by (-priority, extra?, creation, key). A unit is a whole gang, or one extra
   replica of an admitted ModelDeployment. It is admitted if it fits, else (if allowed) by
   preemption (preemption.py); shares are updated and the team re-enters the heap with its
   new key. A request at least as large as one that failed, with nothing released since,
   fails at once (the fail-fast shapes); a team whose every unit left would fail so is
   parked out of the heap until a preemption releases something, and then comes back
   where its queue would have got to (a pass over a long queue costs per team, not per
   waiting unit, once the quotas are full);
3. if evictions released resources after some units had failed, or another team of their
   cohort borrowed since (its work became reclaimable), the units that may fit now (or
   reclaim, their team being within nominal) go round again, with preemption at most
   PREEMPT_ROUNDS times, then once without, so that no fitting workload is left waiting
   and the next pass on the result has nothing new to do;
4. a workload admitted by preempting others and then taken back in the same pass (a team
   of its cohort reclaimed its quota) stopped its victims for nothing: they keep running
   where they still fit (`keep_needless_victims`);
5. every pending workload gets its position and a reason computed from the final state
   (results.py).
"""

from __future__ import annotations

import heapq

from cadre.core.scheduling.explain import budget_message
from cadre.core.scheduling.placement import Plan
from cadre.core.scheduling.preemption import choose_victims, take_victims
from cadre.core.scheduling.quantities import Amount, Vector, covers
from cadre.core.scheduling.reasons import never_fits, never_placed
from cadre.core.scheduling.results import build_result
from cadre.core.scheduling.state import (
    ADMITTED,
    ADMITTED_NOW,
    PENDING,
    PassState,
    TeamQuota,
    TeamState,
    WorkloadState,
    timestamp,
)
from cadre.core.scheduling.types import PassResult, Reason, Snapshot, SpendPolicy, WorkloadKind

__all__ = ["MAX_SHAPES", "PREEMPT_ROUNDS", "AdmissionPass", "schedule"]

MAX_SHAPES = 8
"""Failed request shapes kept per quota (for fail-fast, and for the next round)."""
PREEMPT_ROUNDS = 4
"""Rounds after the first that may preempt; one more round follows without."""
PARK_SHAPES = 16
"""Kinds of request (quota and amount) a team's queue may hold and still be parked."""

HeapEntry = tuple[int, int, float, float, str, int, int]
"""A team in the heap of team heads: (-priority of its head, 1 for a team of weight 0,
share/weight, creation and key of its head, team version, team index)."""


def schedule(snapshot: Snapshot) -> PassResult:
    """Run one admission pass over the snapshot; pure and deterministic.

    The result does not depend on the order of flavours, teams or workloads in the
    snapshot: everything is sorted, and every tie is broken on the workload key.
    """
    return AdmissionPass(snapshot).run()


class AdmissionPass(PassState):
    """The pass's state (PassState) plus its loop and the heap of team heads: `run()` once,
    then discard."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self.heap: list[HeapEntry] = []
        self.parked: list[TeamState] = []
        """Teams out of the heap because every unit left in their queue fails fast."""
        self.trail: list[HeapEntry] = []
        """The heap entries popped or processed since the round's first team parked, in
        order: where a parked team's queue would have got to (`_unpark`)."""

    def run(self) -> PassResult:
        self._setup()
        self._fill_queues(again=False)
        self._run_round(allow_preemption=True)
        # Evictions released resources after some units had failed, or a team borrowed after
        # a unit of another team of its cohort had failed: go round again over the units that
        # may fit (or reclaim) now, a bounded number of times, then once without preemption
        # so that nothing that fits waits.
        rounds = 0
        while self.released or self.borrowed_after_failure:
            rounds += 1
            self.released = self.borrowed_after_failure = False
            allow_preemption = rounds <= PREEMPT_ROUNDS
            self._fill_queues(again=True)
            self._run_round(allow_preemption=allow_preemption)
            if not allow_preemption:
                break
        self.keep_needless_victims()
        return build_result(self)

    # ---- setup -------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Link workloads to their team and quota, count what admitted work holds, give the
        workloads that can never fit their reason, and apply the money policy."""
        admitted: list[WorkloadState] = []
        for work in self.works:
            spec = work.spec
            team = self.teams.get(spec.team)
            flavour = self.flavours.get(spec.flavour)
            quota = team.quotas.get(spec.flavour) if team is not None else None
            work.team = team
            work.quota = quota
            if work.status == ADMITTED:
                admitted.append(work)
                self.hold(work)
                continue
            if team is None:
                work.fixed_reason = (Reason.UNKNOWN_TEAM, f"no ResourceBudget for team {spec.team}")
            elif flavour is None:
                work.fixed_reason = (
                    Reason.UNKNOWN_FLAVOUR,
                    f"no flavour {spec.flavour} in the cluster",
                )
            elif quota is None:
                work.fixed_reason = (
                    Reason.FLAVOUR_NOT_IN_QUOTA,
                    f"team {team.name} has no quota for flavour {spec.flavour}",
                )
            elif not quota.fit_max.covers(work.gang):
                work.fixed_reason = never_fits(work, quota)
            elif flavour.nodes is not None:
                work.fixed_reason = never_placed(work, flavour.nodes)
        self._bind(admitted)
        # admit order: the snapshot's admitted, oldest first; then this pass's admissions
        admitted.sort(key=lambda w: (timestamp(w.spec.admitted_at), w.spec.key))
        for work in admitted:
            if work.quota is not None:
                self.index_admitted(work, work.quota)
        for team in self.teams.values():
            team.update_share()
        # money: Exceeded + Suspend returns the team's running work
        for work in admitted:
            team = work.team
            if team is not None and team.budget_blocked:
                spend = team.spec.spend
                if spend.policy == SpendPolicy.SUSPEND:
                    message = "suspended: " + budget_message(spend)
                    if work.spec.kind != WorkloadKind.MODEL_DEPLOYMENT:
                        self.evict(work, Reason.BUDGET_EXCEEDED, message, None)
                    elif work.extras_admitted:  # serving keeps its floor (replicas.min)
                        self.evict_extras(
                            work, work.extras_admitted, message, None, Reason.BUDGET_EXCEEDED
                        )
        for team in self.teams.values():
            team.update_share()
        self._reserve(admitted)
        self.released = False

    def _bind(self, admitted: list[WorkloadState]) -> None:
        """Where the pods of admitted work are bound (already in their nodes' use)."""
        for work in admitted:
            flavour = self.flavours.get(work.spec.flavour)
            nodes = flavour.nodes if flavour is not None else None
            if nodes is None or not work.spec.bound:
                continue
            bound: dict[int, int] = {}
            for name, pods in work.spec.bound:
                node = nodes.index.get(name)
                if node is not None and pods > 0:
                    bound[node] = bound.get(node, 0) + pods
            # by node, not in the snapshot's order: giving pods back in that order decides
            # which of two equally free nodes a later plan tries first
            work.bound_at = dict(sorted(bound.items())) or None

    def _reserve(self, admitted: list[WorkloadState]) -> None:
        """Plan nodes for the pods of admitted work that are not bound yet, largest pods
        first (first-fit decreasing); what finds no node stays `unplaced`: it is admitted
        and waits for the scheduler (the pods-ready timeout gives it back)."""
        waiting = []
        for work in admitted:
            if work.status != ADMITTED:
                continue
            flavour = self.flavours.get(work.spec.flavour)
            if flavour is None or flavour.nodes is None:
                continue
            bound = sum(work.bound_at.values()) if work.bound_at else 0
            unbound = work.pods + work.extras_admitted - bound
            if unbound > 0:
                waiting.append((work, flavour.nodes, unbound))
        waiting.sort(key=lambda entry: (_descending(entry[0].per_pod), entry[0].spec.key))
        for work, nodes, unbound in waiting:
            plan = nodes.plan(work.per_pod, unbound, partial=True)
            assert plan is not None
            nodes.take(work.per_pod, plan)
            work.reserve(plan)
            work.unplaced = unbound - sum(pods for _, pods in plan)

    # ---- rounds ------------------------------------------------------------------------------

    def _fill_queues(self, again: bool) -> None:
        """Queue the pending units; `again`: only those that may fit now (a failed shape of
        their quota fits, or the team is back within nominal and may reclaim), workloads taken
        back from this pass's admissions, and StrictFIFO teams with any of those."""
        teams = self.teams.values()
        for each in teams:
            each.queue = []
            each.blocked = False
        # indices of the quotas whose failed units may fit now
        dirty = (
            {quota.index for quota in self.quotas if self._may_fit_now(quota)} if again else set()
        )
        strict_dirty: set[int] = set()  # indices of StrictFIFO teams queued again whole
        if again:
            for strict_team in teams:
                if strict_team.strict and any(
                    quota.index in dirty for quota in strict_team.quotas.values()
                ):
                    strict_dirty.add(strict_team.index)
            for work in self.works:
                if work.requeue and work.team is not None and work.team.strict:
                    strict_dirty.add(work.team.index)
        # The requests queued, per quota, in the first round: what a team's queue holds in a
        # later round is among them (or an extra replica added since, see `_step`).
        queued: list[set[Amount]] | None = None if again else [set() for _ in self.quotas]
        for work in self.works:
            team = work.team
            if team is None or work.fixed_reason is not None or team.budget_blocked:
                continue
            if work.status == PENDING:
                is_extra = 0
            elif work.status in (ADMITTED, ADMITTED_NOW) and (
                work.extras_admitted < work.extras_wanted
            ):
                is_extra = 1
            else:
                continue
            if again and not work.requeue:
                if team.strict:
                    if team.index not in strict_dirty:
                        continue
                else:
                    quota = work.quota
                    assert quota is not None
                    if quota.index not in dirty:
                        continue
            team.queue.append((-work.priority, is_extra, work.created, work.spec.key, work.index))
            if queued is not None:
                quota = work.quota
                assert quota is not None
                queued[quota.index].add(work.per_pod if is_extra else work.gang)
            elif work.requeue:  # taken back, or replicas stopped: maybe a new kind of request
                quota = work.quota
                assert quota is not None
                _add_kind(team, quota, work.per_pod if is_extra else work.gang)
        for work in self.works:
            work.requeue = False
        for quota in self.quotas:
            # units not queued again keep their failures on record for the next round
            if not again or quota.index in dirty or quota.team.index in strict_dirty:
                quota.round_failures = []
                quota.usage_at_failure = Vector()
                quota.pool.failed.pop(quota.index, None)
            quota.skip_shapes = []
        for each in teams:
            heapq.heapify(each.queue)
            each.parked_share = None
            if queued is not None:
                each.park_shapes = None if each.strict else self._smallest(each, queued)
        self.parked = []
        self.trail = []

    def _smallest(
        self, team: TeamState, queued: list[set[Amount]]
    ) -> list[tuple[TeamQuota, Amount]] | None:
        """The requests in the team's queue that no other of their quota is below (None: more
        than PARK_SHAPES kinds)."""
        quotas = team.quotas.values()
        if sum(len(queued[quota.index]) for quota in quotas) > PARK_SHAPES:
            return None
        smallest: list[tuple[TeamQuota, Amount]] = []
        for quota in quotas:
            kept: list[Amount] = []
            for request in sorted(queued[quota.index], key=sum):  # one below another sums less
                if not _covers_any(request, kept):
                    kept.append(request)
                    smallest.append((quota, request))
        return smallest

    def _may_fit_now(self, quota: TeamQuota) -> bool:
        """Could a unit of the quota that failed this round fit if tried again?"""
        shapes = quota.round_failures
        if shapes is None:
            return True
        if any(quota.fits(shape) for shape in shapes):
            return True
        if quota.others_borrow() and (
            quota.usage.any_below(quota.usage_at_failure)
            or quota.pool.failed.get(quota.index) != quota.pool.borrow_epoch
        ):
            # The team released something (back within nominal), or another team borrowed
            # since (more of its work to reclaim): a unit within nominal may reclaim now.
            return any(quota.within_nominal_with(shape) for shape in shapes)
        return False

    def _run_round(self, allow_preemption: bool) -> None:
        heap = self.heap = []
        teams = list(self.teams.values())
        for team in teams:
            self._push(team)
        step = self._step
        heappop, heappush = heapq.heappop, heapq.heappush
        parked, trail = self.parked, self.trail
        while heap:
            entry = heappop(heap)
            if parked:
                trail.append(entry)
            _, _, _, _, _, version, team_index = entry
            team = teams[team_index]
            if version != team.version:
                continue  # stale: the team was pushed again since
            while True:  # the same team again while its next unit is still the first
                if parked:
                    self._step_beside_parked(team, allow_preemption)
                else:
                    step(team, allow_preemption)
                team.version += 1
                if team.blocked or not team.queue:
                    break
                if team.parked_share is not None:
                    team.park_mark = len(trail)
                    parked.append(team)
                    break
                neg_priority, _, created, key, _ = team.queue[0]
                following = (
                    neg_priority,
                    team.zero_weight,
                    team.share,
                    created,
                    key,
                    team.version,
                    team.index,
                )
                if heap and heap[0] < following:
                    heappush(heap, following)
                    break
                if parked:
                    trail.append(following)

    def _step_beside_parked(self, team: TeamState, allow_preemption: bool) -> None:
        """A step while some teams are parked: whatever it releases (a preemption) may let
        their units fit, so they go back into the heap where their queues would have got
        to."""
        released_before = self.released
        self.released = False
        self._step(team, allow_preemption)
        if self.released:
            for each in self.parked:
                if each.parked_share is not None:
                    self._push(each)
            self.parked.clear()
            self.trail.clear()
        self.released = self.released or released_before

    def _unpark(self, team: TeamState) -> None:
        """Drop the units the parked team's queue would have failed fast while parked: in
        the heap, each head is taken as soon as some entry taken after it would have been
        larger, so every head below the largest entry taken since the team parked (and the
        first head not below it stops the run)."""
        share = team.parked_share
        assert share is not None
        team.parked_share = None
        since = self.trail[team.park_mark :]
        if not since:
            return
        neg_priority, zero_weight, high_share, created, key, _, _ = max(since)
        highest = (neg_priority, zero_weight, high_share, created, key)
        queue, weightless = team.queue, team.zero_weight
        while queue:
            neg_priority, _, created, key, _ = queue[0]
            if (neg_priority, weightless, share, created, key) >= highest:
                break
            heapq.heappop(queue)

    def _push(self, team: TeamState) -> None:
        """(Re-)enter the team in the heap under its head and share; older entries go stale.
        A parked team comes back (it was a victim, or something was released)."""
        if team.parked_share is not None:
            self._unpark(team)
        team.version += 1
        if team.blocked or team.budget_blocked or not team.queue:
            return
        neg_priority, _, created, key, _ = team.queue[0]
        entry = (neg_priority, team.zero_weight, team.share, created, key, team.version, team.index)
        heapq.heappush(self.heap, entry)

    # ---- one unit ----------------------------------------------------------------------------

    def _step(self, team: TeamState, allow_preemption: bool) -> None:
        """Try the team's first unit: admit it, by preemption if need be, or drop it from
        this round's queue."""
        queue = team.queue
        _, is_extra, _, _, index = queue[0]
        work = self.works[index]
        request: Amount
        if is_extra:
            if (
                work.status not in (ADMITTED, ADMITTED_NOW)
                or work.extras_admitted >= work.extras_wanted
            ):  # stopped, or it got all its replicas since it was queued
                heapq.heappop(queue)
                return
            request = work.per_pod
        else:
            if work.status != PENDING:
                heapq.heappop(queue)
                return
            request = work.gang
        quota = work.quota
        assert quota is not None
        flavour, pool = quota.flavour, quota.pool
        nodes = flavour.nodes
        count = 1 if is_extra else work.pods
        plan: Plan | None = None
        # A replica this pass stopped comes back where it was, or not in this pass: its
        # Deployment only has a replica count, and its pod never left that node.
        comeback: tuple[int, bool] | None = None
        returning = bool(is_extra and work.extras_stopped and nodes is not None)
        admitted = preempted = quota_fits = False
        if _fails_fast(quota, request):
            pass  # a smaller request of this team and flavour failed, nothing released since
        else:
            quota_fits = quota.fits(request)
            if quota_fits and nodes is not None:
                if returning:
                    comeback = work.come_back(nodes.free)
                    plan = None if comeback is None or comeback[0] < 0 else [(comeback[0], 1)]
                else:
                    plan = nodes.plan(work.per_pod, count)
            admitted = quota_fits and (nodes is None or plan is not None or comeback is not None)
            if not admitted and allow_preemption and not returning:
                used_before = flavour.used.copy()
                available_before = pool.available.copy()
                usage_before = quota.usage.copy()
                victims = choose_victims(self, work, quota, request, count)
                if victims is not None:
                    take_victims(self, work, quota, victims, self._push)
                    admitted = preempted = True
            if not admitted:
                self._record_failure(quota, request)
                if not quota_fits:  # a placement failure is the node pool's to remember
                    skip_shapes = quota.skip_shapes
                    stamp = (flavour.release_epoch, pool.release_epoch, quota.release_epoch)
                    if quota.skip_stamp != stamp:
                        quota.skip_shapes = skip_shapes = []
                        quota.skip_stamp = stamp
                    if len(skip_shapes) < MAX_SHAPES:
                        skip_shapes.append(request)
                        if (
                            len(queue) > 1  # more than this unit left
                            and team.park_shapes is not None
                            and _all_fail_fast(team.park_shapes)
                        ):
                            team.parked_share = team.share
        if not admitted:
            heapq.heappop(queue)
            if team.strict and not is_extra:
                team.blocked = True
            return
        if nodes is not None:
            if comeback is not None:  # back where it was (on no node: still unplaced)
                if plan:
                    nodes.take(work.per_pod, plan)
                work.restore_pod(*comeback)
            else:
                if plan is None:  # the victims' nodes are free now: the plan preemption proved
                    plan = nodes.plan(work.per_pod, count)
                    assert plan is not None, "preemption chose victims that do not make it fit"
                nodes.take(work.per_pod, plan)
                work.reserve(plan)
        self.admit(work, quota, request)
        if preempted:  # what the victims freed beyond the request makes failed shapes stale
            if flavour.used.any_below(used_before):
                flavour.release_epoch += 1
                self.released = True
            if available_before.any_below(pool.available):
                pool.release_epoch += 1
                self.released = True
            if quota.usage.any_below(usage_before):
                quota.release_epoch += 1
                self.released = True
        if is_extra:
            work.extras_admitted += 1
            if work.extras_stopped:  # a replica stopped earlier in this pass comes back
                work.extras_stopped -= 1
            else:
                work.extras_admitted_now += 1
            self.index_extras(work, quota)
            if work.extras_admitted >= work.extras_wanted:
                heapq.heappop(queue)
        else:
            heapq.heappop(queue)
            work.status = ADMITTED_NOW
            self.index_admitted(work, quota)
            if work.extras_wanted > work.extras_admitted:
                heapq.heappush(queue, (-work.priority, 1, work.created, work.spec.key, work.index))
                _add_kind(team, quota, work.per_pod)  # the team parks once this fails fast too
        team.update_share()

    @staticmethod
    def _record_failure(quota: TeamQuota, request: Amount) -> None:
        """Keep the smallest failed shapes of the round (an antichain), the usage then and
        the pool's borrow epoch at the first failure."""
        quota.usage_at_failure.raise_to(quota.usage)
        quota.pool.failed.setdefault(quota.index, quota.pool.borrow_epoch)
        shapes = quota.round_failures
        if shapes is None:
            return
        if any(covers(request, shape) for shape in shapes):
            return  # a smaller shape is on record already
        kept = [shape for shape in shapes if not covers(shape, request)]
        kept.append(request)
        quota.round_failures = kept if len(kept) <= MAX_SHAPES else None


def _descending(per_pod: Amount) -> tuple[int, int, int]:
    gpus, cpu, memory = per_pod
    return (-gpus, -cpu, -memory)


def _add_kind(team: TeamState, quota: TeamQuota, request: Amount) -> None:
    """A unit queued after the team's kinds of request were listed: list its kind too."""
    kinds = team.park_shapes
    if kinds is not None and (quota, request) not in kinds:
        if len(kinds) < PARK_SHAPES:
            kinds.append((quota, request))
        else:
            team.park_shapes = None


def _fails_fast(quota: TeamQuota, request: Amount) -> bool:
    """Does the request cover a shape of the quota that failed, with nothing released on
    its flavour, in its pool or by its team since?"""
    skip_shapes = quota.skip_shapes
    return (
        bool(skip_shapes)
        and quota.skip_stamp
        == (quota.flavour.release_epoch, quota.pool.release_epoch, quota.release_epoch)
        and _covers_any(request, skip_shapes)
    )


def _all_fail_fast(smallest: list[tuple[TeamQuota, Amount]]) -> bool:
    """Would each of these requests fail fast (and so everything larger of its quota)?"""
    return all(_fails_fast(quota, request) for quota, request in smallest)


def _covers_any(request: Amount, shapes: list[Amount]) -> bool:
    """Is the request at least as large as one of the shapes in every resource?"""
    gpus, cpu, memory = request
    return any(
        gpus >= shape_gpus and cpu >= shape_cpu and memory >= shape_memory
        for shape_gpus, shape_cpu, shape_memory in shapes
    )
