"""Process-wide metrics: the sum of every runtime's and session's counters.

Counters live with their owner (a runtime or a session, per resource) so the
hot path increments one object. Owners register them here while alive and fold
them into the retired totals when they close, so `get_metrics` is always the
sum of its parts (DESIGN.md invariant 6) and memory stays bounded however many
runtimes and sessions come and go.
"""

from __future__ import annotations

import threading
from typing import final

from .actors.counters import CacheCounters

__all__ = ["MetricsHub", "get_metrics", "hub"]


@final
class MetricsHub:
    """Live counters by identity, plus retired totals per resource."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, tuple[str, CacheCounters]] = {}
        self._retired: dict[str, CacheCounters] = {}
        self.loop_detections = 0

    def register(self, resource: str, counters: CacheCounters) -> None:
        with self._lock:
            self._live[id(counters)] = (resource, counters)

    def retire(self, counters: CacheCounters) -> None:
        with self._lock:
            item = self._live.pop(id(counters), None)
            if item is not None:
                self._retired.setdefault(item[0], CacheCounters()).add(item[1])

    def totals(self, resource: str | None = None) -> CacheCounters:
        total = CacheCounters()
        with self._lock:
            items = [*self._live.values(), *self._retired.items()]
        for name, counters in items:
            if resource is None or name == resource:
                total.add(counters)
        return total

    def reset(self) -> None:
        with self._lock:
            self._retired.clear()
            self.loop_detections = 0
            for _name, counters in self._live.values():
                for field in counters.as_dict():
                    setattr(counters, field, 0)


hub = MetricsHub()


def as_report(counters: CacheCounters, loop_detections: int) -> dict[str, float]:
    """The metrics dict users see: the seed's keys, then ours."""
    report: dict[str, float] = dict(counters.as_dict())
    report["loop_detections"] = loop_detections
    calls = counters.hits + counters.misses + counters.coalesced
    report["calls"] = calls
    report["hit_rate"] = counters.hits / calls if calls else 0.0
    return report


def get_metrics(resource: str | None = None) -> dict[str, float]:
    """Return metrics summed over every runtime and session in this process.

    Args:
        resource: only this resource's figures; ``None`` for all.

    Returns:
        A dict with the seed's keys ``hits``, ``misses``, ``invalidations``,
        ``loop_detections`` and ``hit_rate``, and also ``coalesced`` (calls
        that joined a running load), ``loads`` (tool runs on a miss),
        ``load_errors``, ``evictions``, ``expirations``, ``stale_discarded``
        (loads finished after an invalidation, not stored), ``abandoned_loads``
        and ``calls``. Every call is exactly one of hits, misses or coalesced;
        ``hit_rate`` is hits / calls. ``loop_detections`` is per process, not
        per resource.
    """
    if resource is not None and not isinstance(resource, str):
        raise TypeError(f"resource must be a str or None, not {type(resource).__name__}")
    return as_report(hub.totals(resource), hub.loop_detections)


def reset_metrics() -> None:
    """Zero every counter in this process (for tests and between benchmark runs)."""
    hub.reset()
