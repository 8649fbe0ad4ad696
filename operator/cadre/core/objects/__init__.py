"""What every Kubernetes object shares, as plain values: metadata, API times, conditions
and Events. Pure: wire dicts in, wire dicts out."""

from cadre.core.objects.conditions import find_condition, with_condition
from cadre.core.objects.events import event_about
from cadre.core.objects.meta import generation_of, key_of, owner_uids, uid_of
from cadre.core.objects.times import parse_api_time, timestamp

__all__ = [
    "event_about",
    "find_condition",
    "generation_of",
    "key_of",
    "owner_uids",
    "parse_api_time",
    "timestamp",
    "uid_of",
    "with_condition",
]
