"""Fault injection into Cadre's own API calls: a test hook, never on in production.

`cadre run --enable-fault-injection` registers `POST/GET/DELETE /debug/faults` on the
health server; a test posts a rule such as `{"verb": "PUT", "resource":
"trainingjobs/status", "fault": 500, "times": 3}` and the next three matching attempts of
the client fail that way, whatever part of the operator makes them. Faults:

- an HTTP status (429 with `Retry-After: 0`, 500, 503, 409, ...): answered as if the
  server had said so, the request is not sent;
- "timeout": the attempt times out before it is sent;
- "network": the connection fails before the request is sent;
- "lost-response": the request is sent and done by the server, but its answer is lost
  (a timeout for the client): proves that a retried write is idempotent.

Each attempt counts, so a rule with more `times` than the client's retries makes the call
give up, and the caller's own retry (a work queue's backoff) has to bring it home.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Fault", "FaultInjector", "FaultRule"]

Fault = int | Literal["timeout", "network", "lost-response"]


@dataclass(slots=True)
class FaultRule:
    verb: str
    """An HTTP method, or "*"."""
    resource: str
    """As in the cadre_api_requests_total metric ("jobs", "trainingjobs/status"), or "*"."""
    fault: Fault
    times: int

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)

    def to_json(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "resource": self.resource,
            "fault": self.fault,
            "times": self.times,
        }


class FaultInjector:
    """The rules in force; `take` consumes one matching attempt."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.injected = 0
        self._lock = threading.Lock()
        """The leader's Lease renews from a thread of its own, through these rules too."""

    def add(self, spec: dict[str, Any]) -> FaultRule:
        fault = spec.get("fault")
        if not (
            (isinstance(fault, int) and 400 <= fault <= 599)
            or fault in ("timeout", "network", "lost-response")
        ):
            raise ValueError(
                "fault is an HTTP status 400-599, 'timeout', 'network' or 'lost-response'"
            )
        times = int(spec.get("times", 1))
        if times < 1:
            raise ValueError("times must be at least 1")
        rule = FaultRule(
            verb=str(spec.get("verb", "*")).upper(),
            resource=str(spec.get("resource", "*")),
            fault=fault,
            times=times,
        )
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, verb: str, resource: str) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.matches(verb, resource):
                    rule.times -= 1
                    if rule.times == 0:
                        self.rules.remove(rule)
                    self.injected += 1
                    return rule.fault
            return None
