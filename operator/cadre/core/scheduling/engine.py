"""The admission pass: one queue for the cluster, decided in one pure function.

`schedule(snapshot)` is the whole contract. Internally the snapshot is turned into mutable
integer state (per flavour, per team-and-flavour "quota", per cohort-and-flavour pool) so
that a fit check is a dozen integer comparisons, then:

1. budget: teams Exceeded+Suspend lose their admitted work (victims); Exceeded+Queue and
   Exceeded+Suspend teams admit nothing;
2. the main loop pops the globally next unit of work from a heap of team heads keyed by
   (-priority, share/weight, creation, key); each team's own queue is a heap ordered by
   (-priority, extra?, creation, key). A unit is a whole gang, or one extra replica of an
   admitted ModelDeployment. It is admitted if it fits, else (if allowed) by preemption;
   shares are updated and the team re-enters the heap with its new key;
3. if evictions released resources after some units had failed, the units that may fit
   now (or reclaim, their team being back within nominal) go round again, with preemption
   at most _PREEMPT_ROUNDS times, then once without, so that no fitting workload is left
   waiting;
4. every pending workload gets its position and a reason computed from the final state.

The cohort arithmetic follows Kueue. For a team t on a flavour, per resource, with usage
U, nominal N and lendable L = min(lendingLimit, N) (N when unset), t contributes
min(L, N - U) to its cohort's pool: its idle lendable quota when under nominal, minus what
it borrows when over. A state is valid when, per cohort and resource, the contributions sum
to >= 0 (what is borrowed is covered by what lenders may lend), each team stays within
N + borrowingLimit, and each flavour within its capacity. A team without a cohort is a
cohort of one with nothing to lend, so it is held to N.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Iterator
from datetime import datetime
from itertools import islice

from cadre.core.scheduling.explain import (
    CPU,
    GPU,
    budget_message,
    format_amount,
    need_phrase,
    usage_phrase,
)
from cadre.core.scheduling.types import (
    ZERO,
    Admission,
    FlavourUsage,
    PassResult,
    Pending,
    QueueingStrategy,
    Reason,
    Resources,
    Snapshot,
    SpendPolicy,
    SpendState,
    Team,
    TeamUsage,
    Victim,
    Workload,
)

__all__ = ["schedule"]

INF = 1 << 62
"""Stands for "unlimited" in integer arithmetic; far above any real quantity."""

_PENDING, _ADMITTED, _ADMITTED_NOW, _EVICTED = 0, 1, 2, 3
_EXTRAS, _GANG = 0, 1
_Entry = tuple[int, int, int, str, int]
_SINGLE_VICTIM_SCAN = 256
_MAX_SHAPES = 8
_PREEMPT_ROUNDS = 4

Vec = list[int]


def _ts(value: float | datetime | None) -> float:
    if value is None:
        return float("-inf")
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class _Flavour:
    __slots__ = ("cap", "epoch", "name", "used")

    def __init__(self, name: str, cap: Resources) -> None:
        self.name = name
        self.epoch = 0
        self.cap: Vec = [cap.gpus, cap.cpu, cap.memory]
        self.used: Vec = [0, 0, 0]


class _Pool:
    """One cohort on one flavour: the net idle quota its members may lend."""

    __slots__ = ("avail", "borrowers", "epoch", "members", "name", "private")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.epoch = 0
        self.private = name is None
        self.avail: Vec = [0, 0, 0]
        self.borrowers: set[int] = set()
        self.members: list[_Quota] = []


class _Quota:
    """One team on one flavour."""

    __slots__ = (
        "adm",
        "dead",
        "epoch",
        "failed",
        "failed_u",
        "fitmax",
        "fl",
        "id",
        "inv",
        "lim",
        "ll",
        "max",
        "n",
        "pool",
        "shapes",
        "stamp",
        "team",
        "u",
    )

    def __init__(self, qid: int, team: _Team, fl: _Flavour, pool: _Pool) -> None:
        self.id = qid
        self.team = team
        self.fl = fl
        self.pool = pool
        self.n: Vec = [0, 0, 0]
        self.lim: Vec = [0, 0, 0]
        self.ll: Vec = [0, 0, 0]
        self.u: Vec = [0, 0, 0]
        self.max: Vec = [0, 0, 0]
        self.fitmax: Vec = [0, 0, 0]
        self.inv: list[float] = [0.0, 0.0, 0.0]
        # admitted, preemptible workloads: (priority, extras/gang, -admit order, key, wid),
        # sorted; entries of evicted workloads stay until compaction (checked by admit order)
        self.adm: list[_Entry] = []
        self.dead = 0
        self.epoch = 0
        # request shapes that failed (fit and preemption) since resources were last released
        # on this flavour, in this pool or by this team: (flavour, pool, quota) epochs
        self.shapes: list[tuple[int, int, int]] = []
        self.stamp = (-1, -1, -1)
        # the smallest request shapes that failed in the current round (an antichain; None
        # once too many to keep) and the highest own usage at a failure: if none of the
        # shapes fits at the end of the round and the team's usage did not drop, none of its
        # failed units would fit if tried again
        self.failed: list[tuple[int, int, int]] | None = []
        self.failed_u: Vec = [0, 0, 0]


class _Team:
    __slots__ = (
        "blocked",
        "budget_blocked",
        "idx",
        "name",
        "queue",
        "quotas",
        "share",
        "spec",
        "strict",
        "version",
        "w0",
        "weight",
    )

    def __init__(self, idx: int, spec: Team) -> None:
        self.idx = idx
        self.spec = spec
        self.name = spec.name
        self.quotas: dict[str, _Quota] = {}
        self.queue: list[tuple[int, int, float, str, int]] = []
        self.strict = spec.queueing == QueueingStrategy.STRICT_FIFO
        exceeded = spec.spend.state == SpendState.EXCEEDED
        self.budget_blocked = exceeded and spec.spend.policy != SpendPolicy.WARN
        self.blocked = False
        self.version = 0
        self.weight = float(spec.fair_share_weight)
        self.w0 = 0 if self.weight > 0 else 1
        self.share = 0.0


class _Work:
    __slots__ = (
        "created",
        "ext_entry",
        "ext_now",
        "ext_total",
        "extra",
        "gang",
        "idx",
        "lost_extra",
        "order",
        "per",
        "pods",
        "prio",
        "quota",
        "requeue",
        "spec",
        "state",
        "static",
        "team",
        "victim",
    )

    def __init__(self, idx: int, spec: Workload) -> None:
        self.idx = idx
        self.spec = spec
        self.prio = spec.priority
        created = spec.created
        self.created = created if created.__class__ is float else _ts(created)
        p = spec.per_pod
        g, c, m = p.gpus, p.cpu, p.memory
        self.per = (g, c, m)
        self.pods = pods = spec.pods
        self.gang = (g * pods, c * pods, m * pods)
        self.extra = extra = spec.extra_replicas if spec.extra_replicas > 0 else 0
        if spec.admitted:
            self.state = _ADMITTED
            self.ext_total = min(spec.admitted_extra, extra)
        else:
            self.state = _PENDING
            self.ext_total = 0
        self.ext_now = 0
        self.ext_entry = False
        self.lost_extra = 0
        self.victim: tuple[Reason, str, str | None] | None = None
        self.order = 0
        self.requeue = False
        self.team: _Team | None = None
        self.quota: _Quota | None = None
        self.static: tuple[Reason, str] | None = None

    def usage(self) -> tuple[int, int, int]:
        k = self.pods + self.ext_total
        p = self.per
        return (p[0] * k, p[1] * k, p[2] * k)


def _contrib(ll: int, n: int, u: int) -> int:
    return ll if n - u > ll else n - u


class _Pass:
    def __init__(self, snap: Snapshot) -> None:
        self.flavours: dict[str, _Flavour] = {}
        for f in sorted(snap.flavours, key=lambda f: f.name):
            if f.name in self.flavours:
                raise ValueError(f"duplicate flavour {f.name!r}")
            self.flavours[f.name] = _Flavour(f.name, f.capacity)
        self.teams: dict[str, _Team] = {}
        self.quotas: list[_Quota] = []
        pools: dict[tuple[str, str], _Pool] = {}
        for t in sorted(snap.teams, key=lambda t: t.name):
            if t.name in self.teams:
                raise ValueError(f"duplicate team {t.name!r}")
            team = _Team(len(self.teams), t)
            self.teams[t.name] = team
            for fq in t.quotas:
                fl = self.flavours.get(fq.flavour)
                if fl is None or fq.flavour in team.quotas:
                    continue
                if t.cohort is None:
                    pool = _Pool(None)
                else:
                    pool = pools.setdefault((t.cohort, fq.flavour), _Pool(t.cohort))
                qa = _Quota(len(self.quotas), team, fl, pool)
                nominal = fq.nominal.as_tuple()
                borrow = fq.borrowing_limit.as_tuple() if fq.borrowing_limit else (None,) * 3
                lend = fq.lending_limit.as_tuple() if fq.lending_limit else (None,) * 3
                for r in range(3):
                    nr = nominal[r]
                    if nr is None:  # not governed by quota: only capacity limits it
                        qa.n[r], qa.lim[r], qa.ll[r] = INF, INF, 0
                        continue
                    nr = max(0, nr)
                    qa.n[r] = nr
                    qa.inv[r] = 1.0 / nr if nr > 0 else 1.0
                    if pool.private:
                        qa.lim[r], qa.ll[r] = nr, 0
                    else:
                        br, lr = borrow[r], lend[r]
                        qa.lim[r] = INF if br is None else nr + max(0, br)
                        qa.ll[r] = nr if lr is None else min(nr, max(0, lr))
                pool.members.append(qa)
                team.quotas[fq.flavour] = qa
                self.quotas.append(qa)
        for pool in pools.values():
            for r in range(3):
                pool.avail[r] = sum(q.ll[r] for q in pool.members)
        for qa in self.quotas:
            for r in range(3):
                if qa.n[r] == INF:
                    qa.max[r] = INF
                elif qa.pool.private:
                    qa.max[r] = qa.n[r]
                else:
                    others = sum(o.ll[r] for o in qa.pool.members if o is not qa)
                    qa.max[r] = min(qa.lim[r], qa.n[r] + others)
                qa.fitmax[r] = min(qa.max[r], qa.fl.cap[r])

        specs = sorted(snap.workloads, key=lambda w: w.key)
        self.works: list[_Work] = []
        for i, spec in enumerate(specs):
            if i and specs[i - 1].key == spec.key:
                raise ValueError(f"duplicate workload key {spec.key!r}")
            self.works.append(_Work(i, spec))
        self.victim_log: list[int] = []
        self.admit_log: list[int] = []
        self.freed = False
        self.order = 0
        self.heap: list[tuple[int, int, float, float, str, int, int]] = []

    # ---- state changes -------------------------------------------------------------------

    def _change(self, qa: _Quota, d: tuple[int, int, int], sign: int) -> None:
        used = qa.fl.used
        u, n, ll = qa.u, qa.n, qa.ll
        avail = qa.pool.avail
        borrowing = False
        for r in range(3):
            dr = d[r] * sign
            if not dr:
                borrowing = borrowing or u[r] > n[r]
                continue
            used[r] += dr
            u0 = u[r]
            u1 = u0 + dr
            avail[r] += _contrib(ll[r], n[r], u1) - _contrib(ll[r], n[r], u0)
            u[r] = u1
            borrowing = borrowing or u1 > n[r]
        if borrowing:
            qa.pool.borrowers.add(qa.id)
        else:
            qa.pool.borrowers.discard(qa.id)

    def _update_share(self, team: _Team) -> None:
        share = 0.0
        for qa in team.quotas.values():
            u, inv = qa.u, qa.inv
            s = max(u[0] * inv[0], u[1] * inv[1], u[2] * inv[2])
            share = max(share, s)
        team.share = share / team.weight if team.w0 == 0 else share

    def _push(self, team: _Team) -> None:
        team.version += 1
        if team.blocked or team.budget_blocked or not team.queue:
            return
        h = team.queue[0]
        heapq.heappush(self.heap, (h[0], team.w0, team.share, h[2], h[3], team.version, team.idx))

    def _insert_admitted(self, w: _Work, qa: _Quota) -> None:
        self.order += 1
        w.order = self.order
        if w.spec.preemptible:
            insort(qa.adm, (w.prio, _GANG, -w.order, w.spec.key, w.idx))
            if w.ext_total:
                self._insert_extras(w, qa)

    @staticmethod
    def _insert_extras(w: _Work, qa: _Quota) -> None:
        if not w.ext_entry and w.spec.preemptible:
            w.ext_entry = True
            insort(qa.adm, (w.prio, _EXTRAS, -w.order, w.spec.key, w.idx))

    def _live(self, qa: _Quota) -> Iterator[_Entry]:
        works = self.works
        for e in qa.adm:
            w = works[e[4]]
            if (
                w.order == -e[2]
                and w.state in (_ADMITTED, _ADMITTED_NOW)
                and (e[1] == _GANG or w.ext_total)
            ):
                yield e

    def _evict(self, w: _Work, reason: Reason, message: str, preemptor: str | None) -> None:
        qa = w.quota
        if qa is not None:
            self._change(qa, w.usage(), -1)
        else:
            fl = self.flavours.get(w.spec.flavour)
            if fl is not None:
                us = w.usage()
                for r in range(3):
                    fl.used[r] -= us[r]
        if w.state == _ADMITTED:
            w.state = _EVICTED
            if w.victim is None:
                self.victim_log.append(w.idx)
            w.victim = (reason, message, preemptor)
        else:  # admitted earlier in this pass: simply not admitted after all
            w.state = _PENDING
            w.requeue = True  # and it goes round again (it may reclaim, or fit elsewhere)
            self.freed = True
        w.ext_total = 0
        w.ext_now = 0
        w.ext_entry = False
        w.order = 0
        if qa is not None:  # drop the dead entries of qa's admitted index now and then
            qa.dead += 1
            if qa.dead > 32 and qa.dead * 2 > len(qa.adm):
                works = self.works
                qa.adm = [
                    e
                    for e in qa.adm
                    if works[e[4]].order == -e[2]
                    and works[e[4]].state in (_ADMITTED, _ADMITTED_NOW)
                ]
                qa.dead = 0

    def _evict_extras(self, w: _Work, k: int, message: str, preemptor: str) -> None:
        """Stop k extra replicas of a ModelDeployment: this pass's first, then older ones."""
        qa = w.quota
        assert qa is not None
        p = w.per
        self._change(qa, (p[0] * k, p[1] * k, p[2] * k), -1)
        now = min(k, w.ext_now)
        w.ext_now -= now
        w.ext_total -= k
        if k > now:
            w.lost_extra += k - now
            if w.victim is None:
                self.victim_log.append(w.idx)
                w.victim = (Reason.PREEMPTED, message, preemptor)
        w.requeue = True  # its replicas go round again (they may reclaim, within nominal)
        self.freed = True

    def _admit(self, w: _Work, qa: _Quota, q: tuple[int, int, int]) -> None:
        self._change(qa, q, 1)
        if not w.ext_now and w.state != _ADMITTED_NOW:
            self.admit_log.append(w.idx)

    # ---- fit -------------------------------------------------------------------------------

    @staticmethod
    def _fits(qa: _Quota, q: tuple[int, int, int]) -> bool:
        fl = qa.fl
        used, cap, u, lim, n, ll = fl.used, fl.cap, qa.u, qa.lim, qa.n, qa.ll
        avail = qa.pool.avail
        g, c, m = q
        if g:
            if used[0] + g > cap[0] or u[0] + g > lim[0]:
                return False
            d = _contrib(ll[0], n[0], u[0] + g) - _contrib(ll[0], n[0], u[0])
            if d < 0 and avail[0] + d < 0:
                return False
        if c:
            if used[1] + c > cap[1] or u[1] + c > lim[1]:
                return False
            d = _contrib(ll[1], n[1], u[1] + c) - _contrib(ll[1], n[1], u[1])
            if d < 0 and avail[1] + d < 0:
                return False
        if m:
            if used[2] + m > cap[2] or u[2] + m > lim[2]:
                return False
            d = _contrib(ll[2], n[2], u[2] + m) - _contrib(ll[2], n[2], u[2])
            if d < 0 and avail[2] + d < 0:
                return False
        return True

    def _fits_with(self, qa: _Quota, q: tuple[int, int, int], removed: dict[int, Vec]) -> bool:
        """Would q fit for qa if the usage in `removed` (per quota id, all on qa's flavour and
        in qa's pool or qa itself) were released?"""
        quotas = self.quotas
        fl = qa.fl
        own = removed.get(qa.id)
        for r in range(3):
            if not q[r]:
                continue
            freed = 0
            delta = 0
            for qid, rem in removed.items():
                freed += rem[r]
                o = quotas[qid]
                if o is qa:
                    continue
                delta += _contrib(o.ll[r], o.n[r], o.u[r] - rem[r]) - _contrib(
                    o.ll[r], o.n[r], o.u[r]
                )
            u1 = qa.u[r] - (own[r] if own else 0) + q[r]
            if fl.used[r] - freed + q[r] > fl.cap[r] or u1 > qa.lim[r]:
                return False
            delta += _contrib(qa.ll[r], qa.n[r], u1) - _contrib(qa.ll[r], qa.n[r], qa.u[r])
            if delta < 0 and qa.pool.avail[r] + delta < 0:
                return False
        return True

    @staticmethod
    def _borrowing(o: _Quota, rem: Vec | None) -> bool:
        u, n = o.u, o.n
        if rem is None:
            return u[0] > n[0] or u[1] > n[1] or u[2] > n[2]
        return u[0] - rem[0] > n[0] or u[1] - rem[1] > n[1] or u[2] - rem[2] > n[2]

    # ---- preemption ------------------------------------------------------------------------

    def _candidates(
        self, w: _Work, qa: _Quota, reclaim: bool, own: bool
    ) -> Iterator[tuple[_Entry, bool]]:
        """Reclaim from borrowers of the cohort first, then lower priorities of the team;
        within each, lowest priority first, extra replicas before gangs, then most recently
        admitted first."""
        if reclaim:
            lenders = sorted(b for b in qa.pool.borrowers if b != qa.id)
            for e in heapq.merge(*(self._live(self.quotas[b]) for b in lenders)):
                yield e, True
        if own:
            for e in self._live(qa):
                if e[0] >= w.prio:
                    break
                yield e, False

    def _units(
        self, w: _Work, qa: _Quota, reclaim: bool, own: bool, taken: dict[int, int]
    ) -> Iterator[tuple[_Work, bool, bool]]:
        """Candidate victims one unit at a time: (workload, whole?, cross-team?). An extras
        entry gives its extra replicas one by one; a gang entry the whole workload (with the
        extra replicas not already taken)."""
        works = self.works
        for e, cross in self._candidates(w, qa, reclaim, own):
            v = works[e[4]]
            if e[1] == _GANG:
                yield v, True, cross
            else:
                for _ in range(v.ext_total - taken.get(v.idx, 0)):
                    yield v, False, cross

    @staticmethod
    def _unit_usage(v: _Work, whole: bool, taken: dict[int, int]) -> tuple[int, int, int]:
        p = v.per
        k = v.pods + v.ext_total - taken.get(v.idx, 0) if whole else 1
        return (p[0] * k, p[1] * k, p[2] * k)

    def _lowest_priority(self, qa: _Quota) -> int | None:
        """The lowest priority among qa's preemptible admitted work (None if there is none)."""
        works = self.works
        for e in qa.adm:
            v = works[e[4]]
            if (
                v.order == -e[2]
                and v.state in (_ADMITTED, _ADMITTED_NOW)
                and (e[1] == _GANG or v.ext_total)
            ):
                return e[0]
        return None

    def _try_preempt(self, w: _Work, qa: _Quota, q: tuple[int, int, int]) -> bool:
        lowest = self._lowest_priority(qa)
        own = lowest is not None and lowest < w.prio
        u, n = qa.u, qa.n
        pool = qa.pool
        borrowers = pool.borrowers
        reclaim = (
            not pool.private
            and len(borrowers) > (1 if qa.id in borrowers else 0)
            and u[0] + q[0] <= n[0]
            and u[1] + q[1] <= n[1]
            and u[2] + q[2] <= n[2]
        )
        if not own and not reclaim:
            return False
        fl = qa.fl
        # cheap necessary conditions before the full check: the flavour's free capacity, the
        # cohort pool and the team's own limit must be covered by what the victims release
        cap_short = [q[r] - (fl.cap[r] - fl.used[r]) for r in range(3)]
        for r in range(3):
            d = _contrib(qa.ll[r], n[r], u[r] + q[r]) - _contrib(qa.ll[r], n[r], u[r])
            cap_short[r] = max(cap_short[r], -(pool.avail[r] + d))
        lim_short = [u[r] + q[r] - qa.lim[r] for r in range(3)]
        freed = [0, 0, 0]
        own_freed = [0, 0, 0]
        removed: dict[int, Vec] = {}
        taken: dict[int, int] = {}  # extra replicas taken so far, per workload
        chosen: list[tuple[_Work, bool, bool, tuple[int, int, int]]] = []
        found = False
        for v, whole, cross in self._units(w, qa, reclaim, own, taken):
            vq = v.quota
            assert vq is not None
            if cross and not self._borrowing(vq, removed.get(vq.id)):
                continue  # that team no longer borrows: the rest of its work is safe
            us = self._unit_usage(v, whole, taken)
            if not whole:
                taken[v.idx] = taken.get(v.idx, 0) + 1
            rem = removed.setdefault(vq.id, [0, 0, 0])
            for r in range(3):
                rem[r] += us[r]
                freed[r] += us[r]
                if not cross:
                    own_freed[r] += us[r]
            chosen.append((v, whole, cross, us))
            if (
                freed[0] >= cap_short[0]
                and freed[1] >= cap_short[1]
                and freed[2] >= cap_short[2]
                and own_freed[0] >= lim_short[0]
                and own_freed[1] >= lim_short[1]
                and own_freed[2] >= lim_short[2]
                and self._fits_with(qa, q, removed)
            ):
                found = True
                break
        if not found:
            return False
        # minimal set: give back, most important first, every victim not needed (an extra
        # replica only while its workload as a whole is not a victim)
        gone = {v.idx for v, whole, _, _ in chosen if whole}
        for i in range(len(chosen) - 2, -1, -1):
            v, whole, _, us = chosen[i]
            if not whole and v.idx in gone:
                continue
            vq = v.quota
            assert vq is not None
            rem = removed[vq.id]
            for r in range(3):
                rem[r] -= us[r]
            if self._fits_with(qa, q, removed):
                del chosen[i]
                if whole:
                    gone.discard(v.idx)
            else:
                for r in range(3):
                    rem[r] += us[r]
        if len({v.idx for v, _, _, _ in chosen}) > 1:  # fewest: is one victim enough alone?
            units = self._units(w, qa, reclaim, own, {})
            for v, whole, cross in islice(units, _SINGLE_VICTIM_SCAN):
                vq = v.quota
                assert vq is not None
                us = self._unit_usage(v, whole, {})
                if (
                    us[0] >= cap_short[0]
                    and us[1] >= cap_short[1]
                    and us[2] >= cap_short[2]
                    and (cross or (us[0] >= lim_short[0] and us[1] >= lim_short[1]))
                    and (cross or us[2] >= lim_short[2])
                    and (not cross or (lim_short[0] <= 0 and lim_short[1] <= 0))
                    and (not cross or lim_short[2] <= 0)
                    and self._fits_with(qa, q, {vq.id: [us[0], us[1], us[2]]})
                ):
                    chosen = [(v, whole, cross, us)]
                    break
        self._take(w, qa, chosen)
        return True

    def _take(
        self, w: _Work, qa: _Quota, chosen: list[tuple[_Work, bool, bool, tuple[int, int, int]]]
    ) -> None:
        team = qa.team
        flavour = w.spec.flavour
        whole = {v.idx for v, is_whole, _, _ in chosen if is_whole}
        extras: dict[int, int] = {}
        for v, is_whole, _, _ in chosen:
            if not is_whole and v.idx not in whole:
                extras[v.idx] = extras.get(v.idx, 0) + 1
        done: set[int] = set()
        for v, _, cross, _ in chosen:
            if v.idx in done:
                continue
            done.add(v.idx)
            vq = v.quota
            assert vq is not None
            if cross:
                msg = (
                    f"preempted by {w.spec.key} to reclaim {flavour} quota of team {team.name}"
                    f" lent to team {vq.team.name}"
                )
            else:
                msg = (
                    f"preempted by {w.spec.key} (priority {w.prio} > {v.prio}) to free"
                    f" {flavour} quota of team {team.name}"
                )
            if v.idx in whole:
                self._evict(v, Reason.PREEMPTED, msg, w.spec.key)
            else:
                self._evict_extras(v, extras[v.idx], msg, w.spec.key)
            if vq is not qa:  # the victim's team uses less now: its failed shapes may fit
                vq.epoch += 1
                self.freed = True
            vteam = vq.team
            self._update_share(vteam)
            if vteam is not team:
                self._push(vteam)

    # ---- the loop --------------------------------------------------------------------------

    def _step(self, team: _Team, allow_preempt: bool) -> None:
        queue = team.queue
        entry = queue[0]
        w = self.works[entry[4]]
        extra = entry[1]
        if extra:
            if w.state not in (_ADMITTED, _ADMITTED_NOW) or w.ext_total >= w.extra:
                heapq.heappop(queue)
                return
            q = w.per
        else:
            if w.state != _PENDING:
                heapq.heappop(queue)
                return
            q = w.gang
        qa = w.quota
        assert qa is not None
        fl, pool = qa.fl, qa.pool
        ok = preempted = False
        shapes = qa.shapes
        if (
            shapes
            and qa.stamp == (fl.epoch, pool.epoch, qa.epoch)
            and any(q[0] >= s[0] and q[1] >= s[1] and q[2] >= s[2] for s in shapes)
        ):
            pass  # a smaller request of this team and flavour failed, nothing released since
        elif self._fits(qa, q):
            ok = True
        else:
            if allow_preempt:
                used0, avail0, u0 = fl.used[:], pool.avail[:], qa.u[:]
                ok = preempted = self._try_preempt(w, qa, q)
            if not ok:
                self._record_failure(qa, q)
                stamp = (fl.epoch, pool.epoch, qa.epoch)
                if qa.stamp != stamp:
                    qa.shapes = shapes = []
                    qa.stamp = stamp
                if len(shapes) < _MAX_SHAPES:
                    shapes.append(q)
        if not ok:
            heapq.heappop(queue)
            if team.strict and not extra:
                team.blocked = True
            return
        self._admit(w, qa, q)
        if preempted:  # what the victims freed beyond w's need invalidates failed shapes
            used, avail, u = fl.used, pool.avail, qa.u
            if used[0] < used0[0] or used[1] < used0[1] or used[2] < used0[2]:
                fl.epoch += 1
                self.freed = True
            if avail[0] > avail0[0] or avail[1] > avail0[1] or avail[2] > avail0[2]:
                pool.epoch += 1
                self.freed = True
            if u[0] < u0[0] or u[1] < u0[1] or u[2] < u0[2]:
                qa.epoch += 1
                self.freed = True
        if extra:
            w.ext_total += 1
            if w.lost_extra:  # a replica stopped earlier in this pass comes back: no change
                w.lost_extra -= 1
            else:
                w.ext_now += 1
            self._insert_extras(w, qa)
            if w.ext_total >= w.extra:
                heapq.heappop(queue)
        else:
            heapq.heappop(queue)
            w.state = _ADMITTED_NOW
            self._insert_admitted(w, qa)
            if w.extra > w.ext_total:
                heapq.heappush(queue, (-w.prio, 1, w.created, w.spec.key, w.idx))
        self._update_share(team)

    def _run(self, allow_preempt: bool) -> None:
        heap = self.heap = []
        teams = list(self.teams.values())
        for t in teams:
            self._push(t)
        step = self._step
        heappop, heappush = heapq.heappop, heapq.heappush
        while heap:
            e = heappop(heap)
            t = teams[e[6]]
            if e[5] != t.version:
                continue
            while True:  # the same team again while its next unit is still the first
                step(t, allow_preempt)
                t.version += 1
                if t.blocked or not t.queue:
                    break
                h = t.queue[0]
                nxt = (h[0], t.w0, t.share, h[2], h[3], t.version, t.idx)
                if heap and heap[0] < nxt:
                    heappush(heap, nxt)
                    break

    @staticmethod
    def _record_failure(qa: _Quota, q: tuple[int, int, int]) -> None:
        fu, u = qa.failed_u, qa.u
        for r in range(3):
            fu[r] = max(fu[r], u[r])
        shapes = qa.failed
        if shapes is None:
            return
        for s in shapes:
            if q[0] >= s[0] and q[1] >= s[1] and q[2] >= s[2]:
                return
        kept = [s for s in shapes if not (s[0] >= q[0] and s[1] >= q[1] and s[2] >= q[2])]
        kept.append(q)
        qa.failed = kept if len(kept) <= _MAX_SHAPES else None

    def _may_fit_now(self, qa: _Quota) -> bool:
        """Could a unit of qa that failed this round fit if tried again?"""
        shapes = qa.failed
        if shapes is None:
            return True
        if any(self._fits(qa, s) for s in shapes):
            return True
        u, fu, n = qa.u, qa.failed_u, qa.n
        if u[0] < fu[0] or u[1] < fu[1] or u[2] < fu[2]:
            # the team released something: back within nominal, it may reclaim now
            pool = qa.pool
            borrowers = pool.borrowers
            if not pool.private and len(borrowers) > (1 if qa.id in borrowers else 0):
                return any(
                    u[0] + s[0] <= n[0] and u[1] + s[1] <= n[1] and u[2] + s[2] <= n[2]
                    for s in shapes
                )
        return False

    def _fill_queues(self, again: bool) -> None:
        """Queue the pending units; `again`: only those that may fit now (a failed shape of
        their quota fits, or the team is back within nominal and may reclaim), workloads taken
        back from this pass's admissions, and StrictFIFO teams with any of those."""
        teams = self.teams.values()
        for t in teams:
            t.queue = []
            t.blocked = False
        dirty = {qa.id for qa in self.quotas if self._may_fit_now(qa)} if again else set()
        strict_dirty: set[int] = set()
        if again:
            for t in teams:
                if t.strict and any(qa.id in dirty for qa in t.quotas.values()):
                    strict_dirty.add(t.idx)
            for w in self.works:
                if w.requeue and w.team is not None and w.team.strict:
                    strict_dirty.add(w.team.idx)
        for w in self.works:
            team = w.team
            if team is None or w.static is not None or team.budget_blocked:
                continue
            if w.state == _PENDING:
                extra = 0
            elif w.state in (_ADMITTED, _ADMITTED_NOW) and w.ext_total < w.extra:
                extra = 1
            else:
                continue
            if again and not w.requeue:
                if team.strict:
                    if team.idx not in strict_dirty:
                        continue
                else:
                    qa = w.quota
                    assert qa is not None
                    if qa.id not in dirty:
                        continue
            team.queue.append((-w.prio, extra, w.created, w.spec.key, w.idx))
        for w in self.works:
            w.requeue = False
        for qa in self.quotas:
            # units not queued again keep their failures on record for the next round
            if not again or qa.id in dirty or qa.team.idx in strict_dirty:
                qa.failed = []
                qa.failed_u = [0, 0, 0]
            qa.shapes = []
        for t in teams:
            heapq.heapify(t.queue)

    # ---- setup -----------------------------------------------------------------------------

    def _setup(self) -> None:
        admitted: list[_Work] = []
        for w in self.works:
            spec = w.spec
            team = self.teams.get(spec.team)
            fl = self.flavours.get(spec.flavour)
            qa = team.quotas.get(spec.flavour) if team is not None else None
            w.team = team
            w.quota = qa
            if w.state == _ADMITTED:
                admitted.append(w)
                if qa is not None:
                    self._change(qa, w.usage(), 1)
                elif fl is not None:
                    us = w.usage()
                    for r in range(3):
                        fl.used[r] += us[r]
                continue
            if team is None:
                w.static = (Reason.UNKNOWN_TEAM, f"no ResourceBudget for team {spec.team}")
            elif fl is None:
                w.static = (Reason.UNKNOWN_FLAVOUR, f"no flavour {spec.flavour} in the cluster")
            elif qa is None:
                w.static = (
                    Reason.FLAVOUR_NOT_IN_QUOTA,
                    f"team {team.name} has no quota for flavour {spec.flavour}",
                )
            else:
                g, mx = w.gang, qa.fitmax
                if g[0] > mx[0] or g[1] > mx[1] or g[2] > mx[2]:
                    w.static = self._too_big(w, qa)
        # admit order: the snapshot's admitted, oldest first; then this pass's admissions
        admitted.sort(key=lambda w: (_ts(w.spec.admitted_at), w.spec.key))
        for w in admitted:
            if w.quota is not None:
                self._insert_admitted(w, w.quota)
        for t in self.teams.values():
            self._update_share(t)
        # money: Exceeded + Suspend returns the team's running work
        for w in admitted:
            team = w.team
            if team is not None and team.budget_blocked:
                spend = team.spec.spend
                if spend.policy == SpendPolicy.SUSPEND:
                    self._evict(
                        w, Reason.BUDGET_EXCEEDED, "suspended: " + budget_message(spend), None
                    )
        for t in self.teams.values():
            self._update_share(t)
        self.freed = False

    def _too_big(self, w: _Work, qa: _Quota) -> tuple[Reason, str] | None:
        fl = qa.fl
        flavour = w.spec.flavour
        for r in range(3):
            need = w.gang[r]
            if need > fl.cap[r]:
                return (
                    Reason.EXCEEDS_CAPACITY,
                    f"needs {need_phrase(r, need, flavour)} but flavour {flavour} has only "
                    f"{format_amount(r, fl.cap[r])} on schedulable nodes",
                )
            if need > qa.max[r]:
                team = qa.team.name
                if qa.pool.private:
                    limit = f"{format_amount(r, qa.n[r])} nominal, no cohort"
                else:
                    limit = (
                        f"{format_amount(r, qa.n[r])} nominal + "
                        f"{format_amount(r, qa.max[r] - qa.n[r])} borrowable"
                    )
                return (
                    Reason.EXCEEDS_QUOTA,
                    f"needs {need_phrase(r, need, flavour)} but team {team} may use at most "
                    f"{format_amount(r, qa.max[r])} ({limit})",
                )
        return None

    # ---- explanations ----------------------------------------------------------------------

    def _explain(self, w: _Work, q: tuple[int, int, int], replicas_left: int) -> tuple[Reason, str]:
        qa = w.quota
        assert qa is not None
        fl = qa.fl
        team = qa.team.name
        flavour = fl.name
        u, n, lim, ll = qa.u, qa.n, qa.lim, qa.ll
        pool = qa.pool

        def need(r: int) -> str:
            text = need_phrase(r, q[r], flavour)
            if replicas_left:
                text += f" for 1 more replica ({replicas_left} wanted)"
            return text

        for r in range(3):
            if q[r] and u[r] + q[r] > lim[r]:
                if pool.private:
                    tail = "and has no cohort to borrow from"
                else:
                    tail = f"and may borrow at most {format_amount(r, lim[r] - n[r])}"
                return (
                    Reason.QUOTA_EXHAUSTED,
                    f"waiting for {need(r)}: team {team} uses "
                    f"{usage_phrase(r, u[r], n[r])} nominal {tail}",
                )
        for r in range(3):
            if not q[r]:
                continue
            c0 = _contrib(ll[r], n[r], u[r])
            d = _contrib(ll[r], n[r], u[r] + q[r]) - c0
            if d < 0 and pool.avail[r] + d < 0:
                usage = usage_phrase(r, u[r], n[r])
                if u[r] + q[r] <= n[r]:
                    tail = f"the rest is lent to other teams of cohort {pool.name}"
                else:
                    idle = max(0, pool.avail[r] - max(0, c0))
                    unit = " CPU" if r == CPU else ""
                    tail = f"cohort {pool.name} has {format_amount(r, idle)}{unit} idle"
                return (
                    Reason.QUOTA_EXHAUSTED,
                    f"waiting for {need(r)}: team {team} uses {usage} nominal, {tail}",
                )
        for r in range(3):
            if q[r] and fl.used[r] + q[r] > fl.cap[r]:
                free = max(0, fl.cap[r] - fl.used[r])
                unit = " GPUs" if r == GPU else (" CPU" if r == CPU else " memory")
                return (
                    Reason.CAPACITY_EXHAUSTED,
                    f"waiting for {need(r)}: flavour {flavour} has {format_amount(r, free)} "
                    f"of {format_amount(r, fl.cap[r])}{unit} free",
                )
        return (
            Reason.WAITING_FOR_NEXT_PASS,
            "fits now; resources were freed late in this pass, admission comes next pass",
        )

    # ---- result ----------------------------------------------------------------------------

    def result(self) -> PassResult:
        works = self.works
        # what this pass admitted, in admission order; a team's borrowing (above nominal,
        # after the pass) is attributed to its latest admissions
        rows: list[tuple[_Work, bool, int]] = []
        seen: set[int] = set()
        for i in self.admit_log:
            w = works[i]
            if i in seen:
                continue
            seen.add(i)
            if w.state == _ADMITTED_NOW or (w.state == _ADMITTED and w.ext_now):
                gang = w.state == _ADMITTED_NOW
                rows.append((w, gang, (w.pods if gang else 0) + w.ext_now))
        over: dict[int, Vec] = {}
        borrowed: list[Resources] = []
        for w, _, k in reversed(rows):
            qa = w.quota
            assert qa is not None
            over_q = over.get(qa.id)
            if over_q is None:
                over_q = over[qa.id] = [max(0, qa.u[r] - qa.n[r]) for r in range(3)]
            if not (over_q[0] or over_q[1] or over_q[2]):
                borrowed.append(ZERO)
                continue
            part = [min(over_q[r], w.per[r] * k) for r in range(3)]
            for r in range(3):
                over_q[r] -= part[r]
            borrowed.append(Resources(part[0], part[1], part[2]) if any(part) else ZERO)
        borrowed.reverse()
        admitted: list[Admission] = []
        for (w, gang, k), lent in zip(rows, borrowed, strict=True):
            spec = w.spec
            p = w.per
            admitted.append(
                Admission(
                    key=spec.key,
                    team=spec.team,
                    flavour=spec.flavour,
                    gang=gang,
                    extra_replicas=w.ext_now,
                    total_extra_replicas=w.ext_total,
                    usage=Resources(p[0] * k, p[1] * k, p[2] * k),
                    borrowed=lent,
                )
            )
        # pending, per team in queue order; reasons from the final state
        by_team: dict[str, list[tuple[int, int, float, str, _Work]]] = {}
        counts: dict[str, int] = {}
        for w in works:
            st = w.state
            if st == _PENDING:
                extra = 0
            elif st in (_ADMITTED, _ADMITTED_NOW):
                name = w.spec.team
                counts[name] = counts.get(name, 0) + 1
                if w.ext_total >= w.extra:
                    continue
                extra = 1
            else:
                continue
            name = w.spec.team
            entries = by_team.get(name)
            if entries is None:
                entries = by_team[name] = []
            entries.append((-w.prio, extra, w.created, w.spec.key, w))
        pending: list[Pending] = []
        cache: dict[tuple[int, tuple[int, int, int], int], tuple[Reason, str]] = {}
        explain = self._explain
        for team_name in sorted(by_team):
            entries = by_team[team_name]
            entries.sort()
            team = self.teams.get(team_name)
            budget = (
                (Reason.BUDGET_EXCEEDED, budget_message(team.spec.spend))
                if team is not None and team.budget_blocked
                else None
            )
            strict = team is not None and team.strict
            blocker: str | None = None
            for pos, (_, extra, _, key, w) in enumerate(entries, 1):
                left = w.extra - w.ext_total if extra else 0
                if w.static is not None and not extra:
                    reason, msg = w.static
                elif budget is not None:
                    reason, msg = budget
                elif blocker is not None:
                    reason = Reason.STRICT_FIFO_BLOCKED
                    msg = f"held by StrictFIFO: {blocker} is ahead and does not fit"
                else:
                    q = w.per if extra else w.gang
                    qa = w.quota
                    assert qa is not None
                    ck = (qa.id, q, left)
                    found = cache.get(ck)
                    if found is None:
                        found = cache[ck] = explain(w, q, left)
                    reason, msg = found
                    if strict and not extra:
                        blocker = key
                spec = w.spec
                pending.append(
                    Pending(
                        key,
                        spec.team,
                        spec.flavour,
                        pos,
                        reason,
                        msg,
                        left if extra else w.pods,
                    )
                )
        teams: list[TeamUsage] = []
        for name, t in self.teams.items():
            flavours = []
            for fname in sorted(t.quotas):
                qa = t.quotas[fname]
                u, n = qa.u, qa.n
                flavours.append(
                    FlavourUsage(
                        fname,
                        Resources(u[0], u[1], u[2]),
                        Resources(*(max(0, u[r] - n[r]) for r in range(3))),
                    )
                )
            teams.append(
                TeamUsage(name, tuple(flavours), counts.get(name, 0), len(by_team.get(name, ())))
            )
        victims: list[Victim] = []
        for i in self.victim_log:
            w = works[i]
            assert w.victim is not None
            reason, msg, preemptor = w.victim
            spec = w.spec
            if w.state == _EVICTED:
                victims.append(Victim(spec.key, spec.team, spec.flavour, reason, msg, preemptor))
            elif w.lost_extra:
                k = w.lost_extra
                victims.append(
                    Victim(
                        spec.key,
                        spec.team,
                        spec.flavour,
                        reason,
                        f"{k} extra replica{'' if k == 1 else 's'} {msg}",
                        preemptor,
                        replicas=k,
                        extra_replicas_left=w.ext_total,
                    )
                )
        return PassResult(tuple(admitted), tuple(victims), tuple(pending), tuple(teams))

    def run(self) -> PassResult:
        self._setup()
        self._fill_queues(again=False)
        self._run(allow_preempt=True)
        # Evictions released resources after some units had failed: go round again over the
        # units that may fit now (reclaim can make a team within nominal again), a bounded
        # number of times, then once without preemption so that nothing that fits waits.
        rounds = 0
        while self.freed:
            rounds += 1
            self.freed = False
            allow = rounds <= _PREEMPT_ROUNDS
            self._fill_queues(again=True)
            self._run(allow_preempt=allow)
            if not allow:
                break
        return self.result()


def schedule(snapshot: Snapshot) -> PassResult:
    """Run one admission pass over the snapshot; pure and deterministic.

    The result does not depend on the order of flavours, teams or workloads in the
    snapshot: everything is sorted, and every tie is broken on the workload key.
    """
    return _Pass(snapshot).run()
