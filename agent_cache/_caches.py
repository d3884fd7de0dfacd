"""`CacheHost`: the resource caches of one owner (a runtime, or a session).

Both scopes keep their caches the same way: one `ResourceCache` actor per
resource under the owner's supervisor, the tables those actors publish for the
hit fast path, and counters per resource that outlive actor restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import final

from ._metrics import hub
from .actors.counters import CacheCounters
from .actors.resource_cache import Entry, ResourceCache, Table, TableSpec
from .runtime import ActorRef, Supervisor

__all__ = ["CacheHost"]


@final
class CacheHost:
    """Resource-cache actors of one owner, started on first use."""

    __slots__ = (
        "_counters",
        "clock",
        "name",
        "new_gate",
        "on_new_cache",
        "refs",
        "supervisor",
        "tables",
    )

    def __init__(
        self,
        name: str,
        supervisor: Supervisor,
        clock: Callable[[], float],
        on_new_cache: Callable[[str, CacheHost], None] | None = None,
    ) -> None:
        self.name = name
        self.supervisor = supervisor
        self.clock = clock
        self.on_new_cache = on_new_cache
        #: makes the gate that callers of a running load wait on
        self.new_gate = supervisor.system.new_gate
        #: tool id -> table, read by the hit fast path (written by actors only)
        self.tables: dict[int, Table] = {}
        #: resource -> its cache actor, as last started (see `cache`)
        self.refs: dict[str, ActorRef[ResourceCache]] = {}
        self._counters: dict[str, CacheCounters] = {}

    def __repr__(self) -> str:
        return f"<CacheHost {self.name!r} resources={sorted(self.refs)}>"

    def counters(self, resource: str) -> CacheCounters:
        """The counters of ``resource`` here (made, and registered, on first use)."""
        counters = self._counters.get(resource)
        if counters is None:
            counters = self._counters[resource] = CacheCounters()
            hub.register(resource, counters)
        return counters

    def cache(self, resource: str) -> ActorRef[ResourceCache]:
        """The cache actor of ``resource``, started on first use.

        Raises:
            ActorStoppedError: the supervisor gave up (restart intensity exceeded).
        """
        ref = self.refs.get(resource)
        if ref is None or ref.stopped is not None:
            counters = self.counters(resource)
            tables, clock = self.tables, self.clock
            ref = self.supervisor.spawn(
                lambda: ResourceCache(resource, tables, counters, clock),
                name=f"{self.name}:{resource}",
            )
            first = resource not in self.refs
            self.refs[resource] = ref
            if first and self.on_new_cache is not None:
                self.on_new_cache(resource, self)
        return ref

    def hit(self, spec: TableSpec, key: Hashable, *, count: bool = True) -> Entry | None:
        """The fresh entry of ``key`` in ``spec``'s published table, or None.

        The slow paths' hit check (the compiled wrapper inlines its own).
        With ``count``, the hit is counted and recorded for the LRU order.
        """
        table = self.tables.get(spec.tool_id)
        if table is None:
            return None
        entry = table.entries.get(key)
        if entry is None or (spec.ttl is not None and self.clock() >= entry.expires):
            return None
        if count:
            table.reads.append(key)
            table.counters.hits += 1
        return entry

    def existing(self, resource: str) -> ActorRef[ResourceCache] | None:
        """The cache actor of ``resource`` if one was started and runs, else None."""
        ref = self.refs.get(resource)
        return ref if ref is not None and ref.stopped is None else None

    @property
    def resources(self) -> list[str]:
        """The resources with a cache here."""
        return list(self.refs)

    def close(self) -> None:
        """Drop every table and fold the counters into the process totals."""
        self.tables.clear()
        for counters in self._counters.values():
            hub.retire(counters)
