"""The per-team families write what prometheus_client writes for the same operations, and
the metrics endpoint serves them after the default registry."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cadre.controller.budget_writer import QUOTA_GPUS
from cadre.controller.team_metrics import TeamFamily, serve_metrics

BUCKETS = (1, 5, 30, 300)
label_values = st.text(min_size=0, max_size=6)  # quotes, backslashes and newlines included
teams = st.sampled_from(["vision", "nlp", 'a"b', "c\\d\ne", ""])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), teams, label_values, st.floats(allow_nan=False, width=32)),
        st.tuples(st.just("inc"), teams, label_values, st.floats(0, 1e9)),
        st.tuples(st.just("observe"), teams, label_values, st.floats(0, 1e5)),
        st.tuples(st.just("remove"), teams, label_values, st.just(0.0)),
        st.tuples(st.just("remove_team"), teams, st.just(""), st.just(0.0)),
    ),
    max_size=40,
)


def reference(kind: str, registry: CollectorRegistry) -> Any:
    labels = ["team", "flavor"]
    if kind == "gauge":
        return Gauge("cadre_t", "Help with \\ and\nnewline.", labels, registry=registry)
    if kind == "counter":
        return Counter("cadre_t", "Help with \\ and\nnewline.", labels, registry=registry)
    return Histogram(
        "cadre_t_seconds",
        "Help with \\ and\nnewline.",
        labels,
        registry=registry,
        buckets=BUCKETS,
    )


def ours(kind: str) -> TeamFamily:
    if kind == "histogram":
        return TeamFamily(
            "cadre_t_seconds",
            "Help with \\ and\nnewline.",
            ["team", "flavor"],  # `le` sorts between the two, as prometheus_client writes
            kind="histogram",
            buckets=BUCKETS,
            registry=None,
        )
    return TeamFamily(
        "cadre_t", "Help with \\ and\nnewline.", ["team", "flavor"], kind=kind, registry=None
    )  # type: ignore[arg-type]


def lines(text: str) -> list[str]:
    # prometheus_client writes a series where it was first created and ours groups a team's
    # series: the same lines, possibly in another order within the family. `_created`
    # samples are off in the operator (disable_created_metrics).
    return sorted(line for line in text.split("\n") if "_created" not in line)


@pytest.mark.parametrize("kind", ["gauge", "counter", "histogram"])
@settings(max_examples=150, deadline=None)
@given(ops=operations)
@example(ops=[("set", "vision", "", 0.0), ("set", "vision", "", -0.0)])  # found by hypothesis
def test_the_text_is_what_prometheus_client_writes(kind: str, ops: list[Any]) -> None:
    registry = CollectorRegistry()
    theirs, mine = reference(kind, registry), ours(kind)
    for op, team, flavor, value in ops:
        labels = (team, flavor)
        if op == "remove_team":
            for key in [k for k in theirs._metrics if k[0] == team]:
                theirs.remove(*key)
            mine.remove_team(team)
        elif op == "remove":
            if labels in theirs._metrics:
                theirs.remove(*labels)
                mine.remove(*labels)
            else:
                with pytest.raises(KeyError):
                    mine.remove(*labels)
        elif (op, kind) in (("set", "gauge"), ("inc", "counter"), ("observe", "histogram")):
            getattr(theirs.labels(*labels), op)(value)
            getattr(mine.labels(*labels), op)(value)
        assert lines(mine.render()) == lines(generate_latest(registry).decode())
    # The prometheus_client side of the family (what get_sample_value reads) agrees too.
    copy = CollectorRegistry()
    copy.register(mine)  # type: ignore[arg-type]
    assert lines(generate_latest(copy).decode()) == lines(generate_latest(registry).decode())


def test_an_unchanged_value_keeps_the_text_and_a_change_renders_that_team_again() -> None:
    family = ours("gauge")
    family.labels("vision", "a100").set(4)
    family.labels("nlp", "a100").set(2)
    first = family.render()
    family.labels("vision", "a100").set(4)  # what every budget round does: same value
    assert family.render() is first
    family.labels("nlp", "a100").set(3)
    assert 'cadre_t{flavor="a100",team="nlp"} 3.0' in family.render()
    assert 'cadre_t{flavor="a100",team="vision"} 4.0' in family.render()


def test_the_first_label_is_the_team() -> None:
    with pytest.raises(ValueError, match="first label must be team"):
        TeamFamily("cadre_x", "x", ["flavor", "team"], registry=None)


def test_the_endpoint_serves_the_registry_then_the_team_families() -> None:
    QUOTA_GPUS.labels("served", "a100").set(7)
    server, _ = serve_metrics(0, "127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            body = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'cadre_team_quota_gpus{flavor="a100",team="served"} 7.0\n' in body
        assert body.index("# TYPE python_info gauge") < body.index("# TYPE cadre_team_quota_gpus")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        QUOTA_GPUS.remove_team("served")
