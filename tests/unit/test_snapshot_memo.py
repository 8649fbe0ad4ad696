"""The snapshot's memo of waiting jobs (issue #15: a pass over 10,000 pending rebuilt every
job's outcome): whatever happens to the store between passes, a pass with the cache kept
from the last ones decides exactly as one built from nothing."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_admission_snapshot import example_store, job, tj

from cadre.core.accounting import Interval, PodUsage
from cadre.core.api.config import parse_config
from cadre.core.budget.teams import budget_scope, resolve_team
from cadre.core.cluster import snapshot as snapshot_module
from cadre.core.cluster.snapshot import SnapshotBuild, build_snapshot, parse_ahead, unparsed
from cadre.core.cluster.store import Store

CONFIG = parse_config(
    (Path(__file__).resolve().parents[2] / "examples" / "operator-config.yaml").read_text()
)
NOW = datetime(2026, 11, 27, 4, tzinfo=UTC)
NAMES = ("a", "b", "c")
UIDS = itertools.count()
NAMESPACES = ("vision-research", "nlp-research", "elsewhere")


def decisions(build: SnapshotBuild) -> tuple[Any, ...]:
    return (
        sorted(build.snapshot.workloads, key=lambda w: w.key),
        dict(build.info),
        dict(build.problems),
        build.unbudgeted,
        sorted(build.unadmitted),
        sorted(build.to_start),
        sorted(build.invalid_running),
        sorted(build.timed_out),
        build.next_deadline,
    )


def trainingjob(name: str, namespace: str, version: int, variant: int) -> dict[str, Any]:
    """One of a few shapes of a TrainingJob: waiting, unparseable, suspended, admitted by
    its status, requeued, of an unknown priority, refused by the API server, deleting."""
    obj = tj(name, namespace, gpus=1 + variant % 3, created=f"2026-11-27T03:00:0{variant}Z")
    obj["metadata"]["resourceVersion"] = str(version)
    status: dict[str, Any] = {}
    match variant:
        case 1:
            obj["spec"]["workers"] = "many"  # does not parse
        case 2:
            obj["spec"]["suspend"] = True
        case 3:
            status["admission"] = {"id": f"adm-{name}", "jobDigest": "d", "flavor": "t4"}
            status["phase"] = "Admitted"
            status["admittedAt"] = "2026-11-27T03:30:00Z"
        case 4:
            status["requeue"] = {"count": 1, "requeueAt": "2026-11-27T04:00:30Z"}
        case 5:
            obj["spec"]["priority"] = "no-such-priority"
        case 6:
            status["conditions"] = [
                {
                    "type": "Admitted",
                    "status": "False",
                    "reason": "InvalidSpec",
                    "message": "the API server refused its Job: x",
                    "observedGeneration": 1,
                }
            ]
        case 7:
            obj["metadata"]["deletionTimestamp"] = "2026-11-27T03:59:00Z"
    if status:
        obj["status"] = status
    return obj


OPERATIONS = st.one_of(
    st.tuples(
        st.just("trainingjob"),
        st.sampled_from(NAMES),
        st.sampled_from(NAMESPACES),
        st.integers(0, 7),
    ),
    st.tuples(st.just("delete trainingjob"), st.sampled_from(NAMES), st.sampled_from(NAMESPACES)),
    st.tuples(
        st.just("job"),
        st.sampled_from(NAMES),
        st.sampled_from(NAMESPACES),
        st.sampled_from(["suspended", "running", "Complete"]),
    ),
    st.tuples(st.just("delete job"), st.sampled_from(NAMES), st.sampled_from(NAMESPACES)),
    st.tuples(st.just("expect"), st.sampled_from(NAMES), st.sampled_from(NAMESPACES)),
    st.tuples(st.just("pod"), st.sampled_from(NAMES), st.sampled_from(NAMESPACES), st.booleans()),
    st.tuples(st.just("budget"), st.sampled_from(["vision", "nlp"]), st.integers(0, 3)),
    st.tuples(st.just("namespace"), st.sampled_from(NAMESPACES), st.booleans()),
)


def apply(store: Store, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "trainingjob":
        name, namespace, variant = args
        old = store.trainingjobs.get(f"{namespace}/{name}") or {"metadata": {}}
        version = int(old["metadata"].get("resourceVersion", "0")) + 1
        new = trainingjob(name, namespace, version, variant)
        # As the API server does: a new generation when the spec changes, not the status.
        generation = old["metadata"].get("generation", 0)
        new["metadata"]["generation"] = generation + (old.get("spec") != new["spec"])
        # A TrainingJob made again after a deletion is another object: another uid.
        new["metadata"]["uid"] = old["metadata"].get("uid") or f"uid-{name}-{next(UIDS)}"
        store.upsert_trainingjob(new)
    elif kind == "delete trainingjob":
        store.delete_trainingjob(f"{args[1]}/{args[0]}")
    elif kind == "job":
        name, namespace, state = args
        made = job(
            name,
            namespace,
            suspend=state == "suspended",
            condition="Complete" if state == "Complete" else None,
        )
        owner = store.trainingjobs.get(f"{namespace}/{name}")
        if owner is not None:
            made["metadata"]["ownerReferences"][0]["uid"] = owner["metadata"]["uid"]
        store.upsert_job(made)
    elif kind == "delete job":
        store.delete_job(f"{args[1]}/{args[0]}")
    elif kind == "expect":
        store.expect_admitted(f"{args[1]}/{args[0]}", f"job-{args[0]}")
    elif kind == "pod":
        name, namespace, open_ = args
        end = None if open_ else NOW
        usage = PodUsage(Interval(datetime(2026, 11, 27, 3, tzinfo=UTC), end), gpus=1)
        store.upsert_pod_usage(f"{namespace}/{name}", f"pod-{name}", (usage,))
    elif kind == "budget":
        name, change = args
        budget = copy.deepcopy(store.budgets[name])
        spec = budget["spec"]
        if change == 1:
            spec["maxPriority"] = "low"
        elif change == 2:
            spec.pop("maxPriority", None)
        elif change == 3 and "namespaces" in spec:
            spec["namespaces"] = [*spec["namespaces"], "elsewhere"]
        store.upsert_budget(budget, read=True)
    elif kind == "namespace":
        namespace, nlp = args
        labels = {"cadre.dev/team": "nlp"} if nlp else {}
        store.upsert_namespace({"metadata": {"name": namespace, "labels": labels}})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(OPERATIONS, max_size=6), min_size=1, max_size=8))
def test_a_kept_cache_decides_as_a_fresh_one(passes: list[list[tuple[Any, ...]]]) -> None:
    store = example_store()
    store.clock = lambda: 100.0
    cache: dict[Any, Any] = {}
    for index, ops in enumerate(passes):
        for op in ops:
            apply(store, op)
        now = NOW + timedelta(seconds=20 * index)  # a requeue's backoff ends meanwhile
        kept = build_snapshot(store, CONFIG, cache, now=now)
        fresh = build_snapshot(store, CONFIG, {}, now=now)
        assert decisions(kept) == decisions(fresh)
        # The store keeps each namespace's team too: never another than the budgets say.
        scopes = [budget_scope(b) for b in store.budgets.values()]
        for namespace in NAMESPACES:
            labels = store.namespaces.get(namespace)
            assert store.team_resolution(namespace) == resolve_team(namespace, labels, scopes)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.one_of(OPERATIONS, st.just(("parse ahead",))), max_size=8),
        min_size=1,
        max_size=6,
    )
)
def test_specs_parsed_ahead_while_the_store_changes_decide_as_a_fresh_cache(
    passes: list[list[tuple[Any, ...]]],
) -> None:
    """The admission loop parses new specs a chunk at a time before a pass, and the store
    changes between chunks: what it filled in never makes a pass decide otherwise."""
    store = example_store()
    store.clock = lambda: 100.0
    cache: dict[Any, Any] = {}
    listed: list[tuple[str, Any]] = []
    for index, ops in enumerate(passes):
        for op in ops:
            if op[0] == "parse ahead":
                # Half of what was listed earlier (maybe changed or gone since), then the
                # rest of what is unparsed now.
                parse_ahead(store, CONFIG, cache, listed[: len(listed) // 2])
                listed = unparsed(store, cache)
            else:
                apply(store, op)
        parse_ahead(store, CONFIG, cache, unparsed(store, cache))
        assert unparsed(store, cache) == []
        now = NOW + timedelta(seconds=20 * index)
        ahead = build_snapshot(store, CONFIG, cache, now=now)
        fresh = build_snapshot(store, CONFIG, {}, now=now)
        assert decisions(ahead) == decisions(fresh)


def test_a_pass_after_parsing_ahead_parses_nothing(monkeypatch: Any) -> None:
    store = example_store()
    for name in NAMES:
        store.upsert_trainingjob(tj(name))
    cache: dict[Any, Any] = {}
    assert [key for key, _ in unparsed(store, cache)] == [f"vision-research/{n}" for n in NAMES]
    parse_ahead(store, CONFIG, cache, unparsed(store, cache))

    def no_parsing(*args: Any) -> Any:
        raise AssertionError("parsed in the pass")

    monkeypatch.setattr(snapshot_module, "_parse", no_parsing)
    monkeypatch.setattr(snapshot_module, "build_job", no_parsing)
    build = build_snapshot(store, CONFIG, cache, now=NOW)
    assert len(build.snapshot.workloads) == len(NAMES)


def test_a_waiting_job_is_decided_from_its_memo_until_its_object_changes() -> None:
    store = example_store()
    store.upsert_trainingjob(tj("a"))
    cache: dict[Any, Any] = {}
    first = build_snapshot(store, CONFIG, cache, now=NOW)
    memo = cache[("waiting", "vision-research/a")]
    (workload,) = first.snapshot.workloads
    again = build_snapshot(store, CONFIG, cache, now=NOW)
    assert again.snapshot.workloads[0] is workload  # the same outcome, not rebuilt
    assert cache[("waiting", "vision-research/a")] is memo
    changed = tj("a", gpus=2)
    changed["metadata"].update(resourceVersion="2", generation=2)
    store.upsert_trainingjob(changed)
    (rebuilt,) = build_snapshot(store, CONFIG, cache, now=NOW).snapshot.workloads
    assert rebuilt.per_pod.gpus == 2
