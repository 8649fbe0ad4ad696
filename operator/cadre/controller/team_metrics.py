"""Metric families with a `team` label, kept as exposition text per team.

With 1,000 budgets these families are some 36,000 series. prometheus_client collects
every sample into objects and formats it again on every scrape: 0.3-0.4 s of CPU under
the GIL on two cores, which the event loop waits through (S8 in docs/benchmarks.md).
Like kube-state-metrics, which keeps each object's lines and renders them again only when
the object changes, a family here keeps each team's lines and renders a team again only
when one of its values changed; a scrape joins strings.

The text is what prometheus_client's `generate_latest` writes for the same metric (the
unit tests compare the two byte for byte), and each family is also an ordinary collector
in `TEAM_REGISTRY`, so `get_sample_value` and other prometheus_client tools still work.
`serve_metrics` serves the default registry followed by these families.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any, Literal, cast

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

# How prometheus_client writes a value (1.0, 2.5e+06, +Inf): the same bytes as its own.
_go_float = cast(Callable[[float], str], floatToGoString)

TEAM_REGISTRY = CollectorRegistry(auto_describe=True)
"""The per-team families (apart from the default registry, which the server renders with
prometheus_client)."""

FAMILIES: list[TeamFamily] = []
"""The families in TEAM_REGISTRY, in the order a scrape writes them."""

Kind = Literal["gauge", "counter", "histogram"]
Labels = tuple[str, ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0.0] * buckets
        self.total = 0.0


class TeamFamily:
    """One metric family whose first label is `team`. `labels(...)` returns a handle with
    the `set`, `inc` and `observe` of prometheus_client's children."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        kind: Kind = "gauge",
        buckets: Sequence[float] = (),
        registry: CollectorRegistry | None = TEAM_REGISTRY,
    ) -> None:
        if not labelnames or labelnames[0] != "team":
            raise ValueError(f"{name}: the first label must be team")
        if kind == "counter" and name.endswith("_total"):
            name = name.removesuffix("_total")  # as prometheus_client names a counter
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.kind: Kind = kind
        self.sample_name = f"{name}_total" if kind == "counter" else name
        self.buckets = (*sorted(float(b) for b in buckets), float("inf"))
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, Any]] = {}
        self._lines: dict[str, str] = {}  # each team's samples, rendered
        self._stale: set[str] = set()
        self._text: str | None = None  # the whole family, while nothing changed
        shown = self.sample_name
        doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._header = f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n"
        if registry is not None:
            registry.register(self)
        if registry is TEAM_REGISTRY:
            FAMILIES.append(self)

    # -- writes (the event loop) ---------------------------------------------------------
    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels {self.labelnames}, got {values}")
        return _Child(self, tuple(str(v) for v in values))

    def remove(self, *values: str) -> None:
        """The series with exactly these labels; KeyError when there is none."""
        team = values[0]
        with self._lock:
            del self._values[team][tuple(values)]
            if not self._values[team]:
                del self._values[team]
            self._changed(team)

    def remove_team(self, team: str) -> None:
        with self._lock:
            if self._values.pop(team, None) is not None:
                self._changed(team)

    def _set(self, labels: Labels, value: float) -> None:
        with self._lock:
            series = self._values.setdefault(labels[0], {})
            old = series.get(labels)
            # -0.0 == 0.0, but the text differs ("-0.0", as prometheus_client writes it).
            if old is None or old != value or math.copysign(1.0, old) != math.copysign(1.0, value):
                series[labels] = value
                self._changed(labels[0])

    def _inc(self, labels: Labels, amount: float) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        with self._lock:
            series = self._values.setdefault(labels[0], {})
            series[labels] = series.get(labels, 0.0) + amount
            self._changed(labels[0])

    def _observe(self, labels: Labels, value: float) -> None:
        with self._lock:
            series = self._values.setdefault(labels[0], {})
            histogram = series.get(labels)
            if histogram is None:
                histogram = series[labels] = _Histogram(len(self.buckets))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    histogram.counts[i] += 1
                    break
            histogram.total += value
            self._changed(labels[0])

    def _changed(self, team: str) -> None:
        self._stale.add(team)
        self._text = None

    # -- reads (the metrics server's thread) ---------------------------------------------
    def render(self) -> str:
        with self._lock:
            if self._text is None:
                for team in self._stale:
                    if team in self._values:
                        self._lines[team] = "".join(self._team_lines(self._values[team]))
                    else:
                        self._lines.pop(team, None)
                self._stale.clear()
                self._text = self._header + "".join(self._lines.values())
            return self._text

    def _label_text(self, labels: Labels, le: str | None = None) -> str:
        # Sorted by label name, a bucket's `le` among them, as prometheus_client writes.
        pairs = list(zip(self.labelnames, labels, strict=True))
        if le is not None:
            pairs.append(("le", le))
        return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(pairs)) + "}"

    def _team_lines(self, series: dict[Labels, Any]) -> Iterator[str]:
        name = self.sample_name
        for labels, value in series.items():
            if self.kind != "histogram":
                yield f"{name}{self._label_text(labels)} {_go_float(value)}\n"
                continue
            cumulative = 0.0
            for bound, count in zip(self.buckets, value.counts, strict=True):
                cumulative += count
                bucket = self._label_text(labels, _go_float(bound))
                yield f"{name}_bucket{bucket} {_go_float(cumulative)}\n"
            plain = self._label_text(labels)
            yield f"{name}_count{plain} {_go_float(cumulative)}\n"
            yield f"{name}_sum{plain} {_go_float(value.total)}\n"

    def collect(self) -> Iterable[Metric]:
        """The family as prometheus_client objects (tests, `get_sample_value`)."""
        names = list(self.labelnames)
        with self._lock:
            series = [(k, v) for team in self._values.values() for k, v in team.items()]
        if self.kind == "histogram":
            histogram = HistogramMetricFamily(self.name, self.documentation, labels=names)
            for labels, value in series:
                cumulative, buckets = 0.0, []
                for bound, count in zip(self.buckets, value.counts, strict=True):
                    cumulative += count
                    buckets.append((_go_float(bound), cumulative))
                histogram.add_metric(list(labels), buckets, value.total)
            return [histogram]
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.documentation, labels=names)
        else:
            family = CounterMetricFamily(self.name, self.documentation, labels=names)
        for labels, value in series:
            family.add_metric(list(labels), float(value))
        return [family]

    def describe(self) -> Iterable[Metric]:
        return []


class _Child:
    __slots__ = ("_family", "_labels")

    def __init__(self, family: TeamFamily, labels: Labels) -> None:
        self._family = family
        self._labels = labels

    def set(self, value: float) -> None:
        self._family._set(self._labels, float(value))

    def inc(self, amount: float = 1.0) -> None:
        self._family._inc(self._labels, float(amount))

    def observe(self, value: float) -> None:
        self._family._observe(self._labels, float(value))


def render_all() -> bytes:
    """The scrape: the default registry through prometheus_client, then the per-team
    families."""
    text = "".join(family.render() for family in FAMILIES)
    return generate_latest(REGISTRY) + text.encode("utf-8")


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = render_all()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ThreadingServer(ThreadingMixIn, HTTPServer):
    daemon_threads = True


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve_metrics(port: int, addr: str) -> tuple[HTTPServer, threading.Thread]:
    """The /metrics endpoint in a thread of its own (it answers while the event loop is
    busy); `port` 0 takes a free port (`server.server_port`)."""
    server_class = _ThreadingServerV6 if ":" in addr else _ThreadingServer
    server = server_class((addr, port), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, name="cadre-metrics", daemon=True)
    thread.start()
    return server, thread


__all__ = ["FAMILIES", "TEAM_REGISTRY", "TeamFamily", "render_all", "serve_metrics"]
