"""Event counters of one resource cache (per runtime or per session).

A counters object outlives the actor incarnations that write it, so a restart
after a crash does not lose the figures. ``hits`` is the one field written
outside the actor: by the hit fast path, which runs no handler (see
`resource_cache`). Single-threaded, without an await, that increment cannot
interleave with a handler.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import final

__all__ = ["CacheCounters"]


@final
@dataclass(slots=True, eq=False)
class CacheCounters:
    """Counts of what happened to one resource's cache.

    Every call is exactly one of ``hits``, ``misses`` or ``coalesced``.
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    loads: int = 0
    load_errors: int = 0
    invalidations: int = 0
    evictions: int = 0
    expirations: int = 0
    stale_discarded: int = 0
    abandoned_loads: int = 0

    def add(self, other: CacheCounters) -> None:
        """Add ``other``'s counts into this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
