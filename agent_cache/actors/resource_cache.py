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

Tables are *published* in a dict shared with the callers, who read them without
a message: in one event loop a read with no await in it cannot interleave with
a handler (OTP's gen_server + protected ETS table). A caller that finds a fresh
entry has a hit; one that finds a running flight joins it, as a Caffeine reader
awaits the future it finds in the map; a leader whose flight is no longer in
``flights`` knows its load was overtaken by an invalidation and sends no
`Complete` (98% of the loads in the swarm benchmark). Only the lookups that must
start a load, and the loads that may be stored, are messages.

Only this actor writes ``entries`` and ``flights``. Readers write things of
their own, which the actor only reads: counters (``hits``, ``coalesced``,
``stale_discarded``), a flight's ``gate`` (made by its first waiter), and
``reads``, a bounded buffer of recently hit keys that the actor replays into the
LRU order before it evicts (Caffeine's read buffer). A lost read there only
makes the LRU order a little less exact.

Messages
--------
a new `Flight` -> the `Entry` (hit) or a `Flight` (lead it if it is the
asker's own, else join it); ``Complete``; ``Fail``; ``Abandon``;
``Invalidate``; ``Snapshot`` (statistics, for tests and metrics).

Invariants kept here (numbers from DESIGN.md)
---------------------------------------------
1. At most one flight per (table, key) is attached; a new flight asked for
   the key (or a caller that reads the table) joins it.
2. `Invalidate` drops the entries *and detaches the flights* it covers; a flight
   completes into its table only if it is still the attached one (identity
   check), so a load that began before an invalidation is never stored, and a
   lookup after it never joins such a load.
3. A flight whose leader is cancelled is resolved as abandoned, so its waiters
   wake and retry (one of them leads the next load); a flight to lead that
   reaches no asker becomes an `Abandon` (see `Flight.reply_dropped`).
4. `Fail` resolves the flight with the error and stores nothing.
5. ``len(entries) <= maxsize`` after every handler.
6. Each lookup is counted once, as hit, miss or coalesced (``retry`` flights of
   callers whose flight was abandoned are not counted again).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, final

from ..runtime import Actor, Gate, Message, Request
from .counters import CacheCounters

__all__ = [
    "Abandon",
    "Complete",
    "Entry",
    "Fail",
    "Flight",
    "Invalidate",
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
class Flight(Request["Entry | Flight"]):
    """One load of one key: first the request that starts it, then the
    entry-to-be that callers join.

    Asked of the cache, a new flight asks "start this load of ``key``, unless
    there is no need". The reply says what the asker does: a fresh `Entry` (a
    hit), the key's running flight (join it), or this very flight, now
    attached to its table (lead it: run the tool, then report `Complete`,
    `Fail` or `Abandon`). Attached, the pending load is itself the entry
    (Caffeine, Go's singleflight): later callers find it and wait on it. One
    object for both saves an allocation on every miss.

    The actor sets ``started`` when it attaches the flight; the leader settles
    it (`resolve`, `reject`, `abandon`); waiters park on ``gate``, made by the
    first waiter that joins (most loads have none). ``retry`` marks the flight
    of a caller whose joined load was abandoned: it was counted already.
    """

    __slots__ = (
        "error",
        "error_tb",
        "gate",
        "key",
        "retry",
        "spec",
        "started",
        "state",
        "value",
    )

    # Only what is read before the flight settles is set here: every miss
    # makes one. ``started`` is set by the actor when it attaches the flight,
    # ``value`` by `resolve`, ``error`` and ``error_tb`` by `reject`.
    started: float
    value: object
    error: BaseException
    error_tb: TracebackType | None

    def __init__(self, spec: TableSpec, key: Hashable, retry: bool = False) -> None:
        self.spec = spec
        self.key = key
        self.retry = retry
        self.state = RUNNING
        self.gate: Gate | None = None

    def __repr__(self) -> str:
        return f"<Flight {self.spec.name} key={self.key!r} state={self.state}>"

    def reply_dropped(self, reply: Entry | Flight) -> Message | None:
        # The asker was elected to run the load but is gone: release the flight.
        if reply is self:
            self.abandon()
            return Abandon(self)
        return None

    def resolve(self, value: object) -> None:
        """The load returned ``value``: hand it to every waiter."""
        # Inline, not through a shared helper: every load settles its flight.
        self.value = value
        self.state = DONE
        if self.gate is not None:
            self.gate.open()

    def reject(self, error: BaseException) -> None:
        """The load raised: every waiter gets ``error`` (nothing is cached).

        Its traceback is saved, so each waiter re-raises it from the load's
        frames plus its own, as `asyncio.Future.result` does, not from the
        frames of every waiter that raised it before.
        """
        self.error = error
        self.error_tb = error.__traceback__
        self.state = FAILED
        if self.gate is not None:
            self.gate.open()

    def abandon(self) -> None:
        """The leader is gone: waiters wake and retry."""
        self.state = ABANDONED
        if self.gate is not None:
            self.gate.open()


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
# Messages are immutable by convention, but for `Flight`, which becomes the
# actor's state once attached. The ones on every miss (`Flight`, `Complete`)
# are plain slots classes, not frozen dataclasses: a frozen dataclass sets each
# field through object.__setattr__, and building one measured 616 ns against
# 199 ns -- four of them were half the handlers' cost on a cold miss.


# What a `Flight` asked of the cache gets back: the stored `Entry` (a hit) or
# a `Flight` -- the asker's own, attached, to lead; or the key's running one, to
# join. No reply object is built: on a cold miss every allocation shows (see
# the note above).
LookupReply = Entry | Flight


@final
@dataclass(frozen=True, slots=True)
class Abandon(Message):
    """The leader of ``flight`` will not complete it (it was cancelled)."""

    flight: Flight


@final
@dataclass(slots=True)
class Complete(Request[bool]):
    """``flight`` loaded ``value``; reply: whether it was stored."""

    flight: Flight
    value: object


@final
@dataclass(frozen=True, slots=True)
class Fail(Message):
    """``flight``'s load raised; nothing is stored."""

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
        # Exact type tests, most frequent first.
        kind = type(message)
        if kind is Flight:
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

    def on_lookup(self, msg: Flight) -> LookupReply:
        spec = msg.spec
        table = self.tables.get(spec.tool_id) or self._table(spec)
        key = msg.key
        if key in table.entries or key in table.flights:
            found = self._found(table, msg)
            if found is not None:
                return found
        # Attach the asker's flight: it leads the load. Kept short, as every
        # load pays it.
        if spec.ttl is not None:  # entries of tools without one never expire
            msg.started = self.clock()
        counters = self.counters
        if not msg.retry:
            counters.misses += 1
        counters.loads += 1
        table.flights[key] = msg
        return msg

    def _found(self, table: Table, msg: Flight) -> LookupReply | None:
        """The fresh entry or the running flight of ``msg.key`` (counted), or
        None once an expired entry or a settled flight is dropped."""
        counters = self.counters
        key = msg.key
        entry = table.entries.get(key)
        if entry is not None:
            if table.spec.ttl is None or self.clock() < entry.expires:
                if not msg.retry:
                    counters.hits += 1
                table.entries.move_to_end(key)
                return entry
            del table.entries[key]
            counters.expirations += 1
        flight = table.flights.get(key)
        if flight is None:
            return None
        if flight.state != RUNNING:
            # Settled but still attached: its Complete/Fail/Abandon was lost
            # (an undo that found a full mailbox). Joining it would spin.
            del table.flights[key]
            return None
        if not msg.retry:
            counters.coalesced += 1
        return flight

    def _detach(self, flight: Flight) -> Table | None:
        """Remove ``flight`` from its table if attached; return the table if so."""
        table = self.tables.get(flight.spec.tool_id)
        if table is None or table.flights.get(flight.key) is not flight:
            return None
        del table.flights[flight.key]
        return table

    def on_complete(self, msg: Complete) -> bool:
        table = self._detach(msg.flight)
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
        self._detach(msg.flight)

    def on_abandon(self, msg: Abandon) -> None:
        self.counters.abandoned_loads += 1
        self._detach(msg.flight)

    def on_invalidate(self, msg: Invalidate) -> int:
        # Counted by the invalidator, once per write and resource.
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
