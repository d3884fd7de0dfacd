"""The resource-cache actor: the entries and pending loads of one resource.

One actor per (owner, resource), where the owner is a runtime (global scope) or
a session (session scope). Every tool tagged with the resource has a `Table` in
it; invalidating the resource reaches all of them.

State
-----
``tables``: tool id -> `Table`. A table holds

* ``entries``: key -> `Entry` (value, expiry), in LRU order;
* ``flights``: key -> `Flight`, the load currently running for that key. The
  pending load is itself the entry (Caffeine, Go's singleflight): callers join
  it instead of starting another.

Tables are *published* in a dict shared with the callers' hit fast path, which
reads ``entries`` without a message: in one event loop a read with no await in
it cannot interleave with a handler (OTP's gen_server + protected ETS table).
Only this actor writes ``entries`` and ``flights``. Readers write two things of
their own, which the actor only reads: ``counters.hits`` and ``reads``, a
bounded buffer of recently hit keys that the actor replays into the LRU order
before it evicts (Caffeine's read buffer). A lost read there only makes the LRU
order a little less exact.

Messages
--------
``Lookup`` -> the `Entry` (hit) or a `Flight` (lead it if it is the asker's
own, else join it); ``Complete``; ``Fail``; ``Abandon``;
``Invalidate``; ``Snapshot`` (statistics, for tests and metrics).

Invariants kept here (numbers from DESIGN.md)
---------------------------------------------
1. At most one flight per (table, key) is attached; `Lookup` joins it.
2. `Invalidate` drops the entries *and detaches the flights* it covers; a flight
   completes into its table only if it is still the attached one (identity
   check), so a load that began before an invalidation is never stored, and a
   lookup after it never joins such a load.
3. A flight whose leader is cancelled is resolved as abandoned, so its waiters
   wake and retry (one of them leads the next load); a flight to lead that
   reaches no asker becomes an `Abandon` (see `Lookup.reply_dropped`).
4. `Fail` resolves the flight with the error and stores nothing.
5. ``len(entries) <= maxsize`` after every handler.
6. Each lookup is counted once, as hit, miss or coalesced (``retry`` lookups of
   callers whose flight was abandoned are not counted again).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, final

import anyio

from ..runtime import Actor, Message, Request
from .counters import CacheCounters

__all__ = [
    "Abandon",
    "Complete",
    "Entry",
    "Fail",
    "Flight",
    "Invalidate",
    "Lookup",
    "LookupReply",
    "ResourceCache",
    "Snapshot",
    "SnapshotReply",
    "Table",
    "TableSpec",
]

# Flight states.
RUNNING: Final = 0
DONE: Final = 1
FAILED: Final = 2
ABANDONED: Final = 3

# How many recent hits a table remembers for its LRU order.
_READ_BUFFER = 1024


@final
@dataclass(frozen=True, slots=True, eq=False)
class TableSpec:
    """How one tool's results are kept: what the actor needs of a tool."""

    tool_id: int
    name: str
    ttl: float | None
    maxsize: int | None


@final
class Entry:
    """A stored result; ``expires`` is on the runtime's clock (inf: never)."""

    __slots__ = ("expires", "value")

    def __init__(self, value: object, expires: float) -> None:
        self.value = value
        self.expires = expires


@final
class Flight:
    """One running load of one key: the entry-to-be that callers join.

    The leader (the caller that runs the tool) resolves it; waiters park on
    ``event``, made only when the first waiter joins.
    """

    __slots__ = ("error", "error_tb", "event", "key", "lookup", "started", "state", "value")

    def __init__(self, key: Hashable, started: float, lookup: Lookup) -> None:
        self.key = key
        self.started = started
        #: the lookup whose asker leads (runs) this load
        self.lookup = lookup
        self.state = RUNNING
        self.value: object = None
        self.error: BaseException | None = None
        self.error_tb: TracebackType | None = None
        self.event: anyio.Event | None = None

    def _settle(self, state: int) -> None:
        self.state = state
        if self.event is not None:
            self.event.set()

    def resolve(self, value: object) -> None:
        """The load returned ``value``: hand it to every waiter."""
        self.value = value
        self._settle(DONE)

    def reject(self, error: BaseException) -> None:
        """The load raised: every waiter gets ``error`` (nothing is cached).

        Its traceback is saved, so each waiter re-raises it from the load's
        frames plus its own, as `asyncio.Future.result` does, not from the
        frames of every waiter that raised it before.
        """
        self.error = error
        self.error_tb = error.__traceback__
        self._settle(FAILED)

    def abandon(self) -> None:
        """The leader is gone: waiters wake and retry."""
        self._settle(ABANDONED)


@final
class Table:
    """One tool's entries and flights inside a resource cache."""

    __slots__ = ("counters", "entries", "flights", "reads", "spec")

    def __init__(self, spec: TableSpec, counters: CacheCounters) -> None:
        self.spec = spec
        self.counters = counters
        self.entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self.flights: dict[Hashable, Flight] = {}
        size = spec.maxsize if spec.maxsize is not None else _READ_BUFFER
        self.reads: deque[Hashable] = deque(maxlen=max(1, min(size, _READ_BUFFER)))


# -- messages ----------------------------------------------------------------
#
# Messages are immutable by convention. The ones on every miss (Lookup and its
# replies, Complete) are plain slots dataclasses, not frozen ones: a frozen
# dataclass sets each field through object.__setattr__, and building one
# measured 616 ns against 199 ns -- four of them were half the handlers' cost
# on a cold miss. Nothing in the runtime or the actor mutates a message.


# A lookup's reply is the stored `Entry` (a hit) or the `Flight` of the load
# for the key: a new one led by the asker when ``flight.lookup`` is the asker's
# own Lookup, else a running one to join. No reply object is built: on a cold
# miss every allocation shows (see the note above).
LookupReply = Entry | Flight


@final
@dataclass(frozen=True, slots=True)
class Abandon(Message):
    """The leader of ``flight`` will not complete it (it was cancelled)."""

    spec: TableSpec
    flight: Flight


@final
@dataclass(slots=True)
class Lookup(Request[LookupReply]):
    """Find ``key`` in ``spec``'s table: a value, a load to join, or a load to run.

    ``retry`` marks the lookup of a caller whose joined load was abandoned: it
    was counted already.
    """

    spec: TableSpec
    key: Hashable
    retry: bool = False

    def reply_dropped(self, reply: LookupReply) -> Message | None:
        # The asker was elected to run the load but is gone: release the flight.
        if type(reply) is Flight and reply.lookup is self:
            reply.abandon()
            return Abandon(self.spec, reply)
        return None


@final
@dataclass(slots=True)
class Complete(Request[bool]):
    """``flight`` loaded ``value``; reply: whether it was stored."""

    spec: TableSpec
    flight: Flight
    value: object


@final
@dataclass(frozen=True, slots=True)
class Fail(Message):
    """``flight``'s load raised; nothing is stored."""

    spec: TableSpec
    flight: Flight


@final
@dataclass(frozen=True, slots=True)
class Invalidate(Request[int]):
    """Drop entries and detach flights; reply: how many entries were dropped.

    ``keys`` None: everything in every table. Otherwise tool id -> the keys to
    drop in that tool's table, and ``whole`` names tools to clear completely
    (their signature did not fit the invalidator's arguments).
    """

    keys: Mapping[int, tuple[Hashable, ...]] | None = None
    whole: frozenset[int] = frozenset()


@final
@dataclass(frozen=True, slots=True)
class SnapshotReply:
    """What a resource cache holds: entries and running loads per tool id."""

    entries: Mapping[int, int]
    flights: Mapping[int, int]


@final
@dataclass(frozen=True, slots=True)
class Snapshot(Request[SnapshotReply]):
    """Ask for a `SnapshotReply`."""


# -- the actor ---------------------------------------------------------------


@final
class ResourceCache(Actor):
    """The cache of one resource for one owner. See the module docstring.

    Args:
        resource: the resource tag.
        published: tool id -> table, shared with the hit fast path. Each
            incarnation drops its predecessor's tables on start and its own on
            stop, so readers never see a table nobody maintains.
        counters: survives restarts.
        clock: the owner's clock, for TTLs.
    """

    def __init__(
        self,
        resource: str,
        published: dict[int, Table],
        counters: CacheCounters,
        clock: Callable[[], float],
    ) -> None:
        self.resource = resource
        self.published = published
        self.counters = counters
        self.clock = clock
        self.tables: dict[int, Table] = {}
        for tool_id in [t for t, table in published.items() if table.counters is counters]:
            del published[tool_id]

    def receive(self, message: Message) -> object:
        # Exact type tests, most frequent first: every miss sends two messages.
        kind = type(message)
        if kind is Lookup:
            return self.on_lookup(message)  # type: ignore[arg-type]
        if kind is Complete:
            return self.on_complete(message)  # type: ignore[arg-type]
        if kind is Invalidate:
            return self.on_invalidate(message)  # type: ignore[arg-type]
        if kind is Fail:
            self.on_fail(message)  # type: ignore[arg-type]
            return None
        if kind is Abandon:
            self.on_abandon(message)  # type: ignore[arg-type]
            return None
        if kind is Snapshot:
            return SnapshotReply(
                {t: len(table.entries) for t, table in self.tables.items()},
                {t: len(table.flights) for t, table in self.tables.items()},
            )
        raise TypeError(f"ResourceCache {self.resource!r} got unknown message {message!r}")

    def on_stop(self, reason: str) -> None:
        for tool_id, table in self.tables.items():
            if self.published.get(tool_id) is table:
                del self.published[tool_id]
        self.tables.clear()

    def _table(self, spec: TableSpec) -> Table:
        table = self.tables.get(spec.tool_id)
        if table is None:
            table = self.tables[spec.tool_id] = Table(spec, self.counters)
            self.published[spec.tool_id] = table
        return table

    def on_lookup(self, msg: Lookup) -> LookupReply:
        spec = msg.spec
        table = self.tables.get(spec.tool_id) or self._table(spec)
        counters = self.counters
        key = msg.key
        entry = table.entries.get(key)
        # The clock only matters with a TTL (entries of tools without one
        # never expire): skip the call otherwise.
        now = self.clock() if spec.ttl is not None else 0.0
        if entry is not None:
            if now < entry.expires:
                if not msg.retry:
                    counters.hits += 1
                table.entries.move_to_end(key)
                return entry
            del table.entries[key]
            counters.expirations += 1
        flight = table.flights.get(key)
        if flight is not None and flight.state != RUNNING:
            # Settled but still attached: its Complete/Fail/Abandon was lost
            # (an undo that found a full mailbox). Joining it would spin.
            del table.flights[key]
            flight = None
        if flight is not None:
            if not msg.retry:
                counters.coalesced += 1
            if flight.event is None:
                flight.event = anyio.Event()
            return flight
        if not msg.retry:
            counters.misses += 1
        counters.loads += 1
        flight = table.flights[key] = Flight(key, now, msg)
        return flight

    def _detach(self, spec: TableSpec, flight: Flight) -> Table | None:
        """Remove ``flight`` from its table if attached; return the table if so."""
        table = self.tables.get(spec.tool_id)
        if table is None or table.flights.get(flight.key) is not flight:
            return None
        del table.flights[flight.key]
        return table

    def on_complete(self, msg: Complete) -> bool:
        table = self._detach(msg.spec, msg.flight)
        if table is None:
            # Invalidated (or the actor restarted) while loading: invariant 2.
            self.counters.stale_discarded += 1
            return False
        spec = table.spec
        if spec.ttl == 0 or spec.maxsize == 0:
            return False
        if spec.ttl is None:
            expires = math.inf
        else:
            expires = msg.flight.started + spec.ttl
            if expires <= self.clock():
                return False
        entries = table.entries
        key = msg.flight.key
        maxsize = spec.maxsize
        if maxsize is None or len(entries) + (key not in entries) <= maxsize:
            entries[key] = Entry(msg.value, expires)
            entries.move_to_end(key)
            return True
        # Full: replay the hits first. They all happened before this value was
        # stored, so they rank below it (replayed after the insert, they made
        # the entry just loaded the least recently used, and evicted it).
        self._replay(table)
        entries[key] = Entry(msg.value, expires)
        entries.move_to_end(key)
        self._evict(table, maxsize)
        return True

    def _replay(self, table: Table) -> None:
        """Replay the hits the fast path saw, oldest first, into the LRU order."""
        entries = table.entries
        reads = table.reads
        while reads:
            key = reads.popleft()
            if key in entries:
                entries.move_to_end(key)

    def _evict(self, table: Table, maxsize: int) -> None:
        entries = table.entries
        while len(entries) > maxsize:
            entries.popitem(last=False)
            self.counters.evictions += 1

    def on_fail(self, msg: Fail) -> None:
        self.counters.load_errors += 1
        self._detach(msg.spec, msg.flight)

    def on_abandon(self, msg: Abandon) -> None:
        self.counters.abandoned_loads += 1
        self._detach(msg.spec, msg.flight)

    def on_invalidate(self, msg: Invalidate) -> int:
        # Counted by the invalidator, once per call: it sends this twice.
        dropped = 0
        for tool_id, table in self.tables.items():
            if msg.keys is None or tool_id in msg.whole:
                dropped += len(table.entries)
                table.entries.clear()
                table.flights.clear()
                table.reads.clear()
                continue
            for key in msg.keys.get(tool_id, ()):
                if table.entries.pop(key, None) is not None:
                    dropped += 1
                table.flights.pop(key, None)
        return dropped
