"""A plain, sequential reference model of what agent_cache must answer.

Nothing here imports agent_cache: the model is written from DESIGN.md's
invariants, the README's semantics and the rules in the docstring of
``agent_cache/actors/loop_detector.py``, in the most direct way (quadratic
scans, plain dicts), so that a disagreement with the library points at the
library, or at a rule that is written down wrongly.

Four parts:

* `LoopReference`: the loop verdicts (repeat, cycle, depth, blocked) of one
  session, by rescanning the whole history on every call.
* `SupervisorModel`: when a one-for-one supervisor with a restart intensity of
  ``(max_restarts, within)`` gives up.
* `Views`: the versioned datastore and, per *view* (the global cache, or one
  session's private cache), the *floor* of each key -- the newest version
  written by a write that has finished and reaches that view -- and its
  *epoch*, which goes up whenever the library must forget what it had for the
  key there (an invalidation, or a restart of the cache actor). What a read may
  legally return follows (invariant 2): a version >= the floor at its start,
  from a load that began in the read's epoch or later; served from storage
  only while its TTL holds.
* `SequentialModel`: for a program that makes one call at a time, the exact
  answer a read must give where it is determined (a load must run; or the
  cached value must be served), and the figures (hits, misses, loads,
  invalidations) each cache must report. LRU eviction is only approximate in
  the library (recent hits reach the LRU order through a bounded read buffer,
  as in Caffeine), so the model keeps a *superset* of the entries that may be
  present and marks those that surely are.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Candidate",
    "Expect",
    "HostModel",
    "LoopReference",
    "LoopRules",
    "ReadSpec",
    "SequentialModel",
    "Site",
    "SupervisorModel",
    "Views",
]

LoopKind = Literal["repeat", "cycle", "depth", "blocked"]


# -- loop verdicts ------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """A tool as loop detection sees it: its name and the resources it reads or writes."""

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoopRules:
    """The limits of one session (the arguments of `AgentCacheSession`)."""

    max_repeats: int = 5
    max_depth: int = 50
    window: int | None = None
    max_cycle: int = 10
    cycle_repeats: int = 2
    tool_repeats: Mapping[str, int] = field(default_factory=dict)


class LoopReference:
    """The loop rules of ``loop_detector.py``'s docstring, transcribed directly.

    * depth: more than ``max_depth`` calls in the session;
    * repeat: the same tool with the same arguments more than its limit, counted
      since the last write to the tool's resource (over the last ``window``
      calls only, if set);
    * cycle: the last ``cycle_repeats * p`` calls are ``cycle_repeats`` copies of
      one pattern of ``p`` calls (2 <= p <= ``max_cycle``) holding at least two
      different calls;
    * blocked: a call of a tool refused before (after a verdict was acted on).

    Priority: blocked, depth, repeat, cycle. Every call rescans the history.
    """

    def __init__(self, rules: LoopRules) -> None:
        self.rules = rules
        self.reset()

    def reset(self) -> None:
        """Forget everything (a restarted session actor starts afresh)."""
        self.history: list[tuple[str, Hashable]] = []
        self.epoch_at: list[int] = []
        self.writes: dict[str, int] = {}
        self.blocked: set[str] = set()

    def block(self, tool: str) -> None:
        self.blocked.add(tool)

    def record(self, site: Site, key: Hashable) -> LoopKind | None:
        rules = self.rules
        for resource in site.writes:
            self.writes[resource] = self.writes.get(resource, 0) + 1
        epoch = sum(self.writes.get(r, 0) for r in site.reads)
        self.history.append((site.name, key))
        self.epoch_at.append(epoch)
        n = len(self.history)
        first = 0 if rules.window is None else max(0, n - rules.window)
        count = sum(
            1
            for i in range(first, n)
            if self.history[i] == (site.name, key) and self.epoch_at[i] == epoch
        )
        if site.name in self.blocked:
            return "blocked"
        if n > rules.max_depth:
            return "depth"
        if count > rules.tool_repeats.get(site.name, rules.max_repeats):
            return "repeat"
        k = rules.cycle_repeats
        for p in range(2, rules.max_cycle + 1):
            if n < k * p:
                break
            tail = self.history[n - k * p :]
            pattern = tail[:p]
            if tail == pattern * k and len(set(pattern)) >= 2:
                return "cycle"
        return None


# -- supervision ------------------------------------------------------------------------


class SupervisorModel:
    """A supervisor restarts a crashed child unless more than ``max_restarts``
    crashes of its children happened within ``within`` seconds; then it stops
    for good (and every child with it)."""

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self.crash_times: list[float] = []
        self.stopped = False

    def crash(self, now: float) -> bool:
        """Count a crash at ``now``; return True if the supervisor is (now) stopped."""
        if not self.stopped:
            self.crash_times.append(now)
            recent = [t for t in self.crash_times if t > now - self.within]
            if len(recent) > self.max_restarts:
                self.stopped = True
        return self.stopped


# -- the datastore and what reads may return ---------------------------------------------


class Views:
    """The versioned datastore, and per view the floor and epoch of every key.

    View ``"global"`` is the runtime's cache; any other name is one session's
    private cache. A global write reaches every view open when it finishes; a
    session-scoped write reaches its own session's view only.

    Epochs are per (view, tool, key): the number of times the library has
    made that view forget the key for that tool (an invalidation covering it,
    or a restart of the view's cache actor).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(keys)
        self.version = 0
        self.store = dict.fromkeys(self.keys, 0)
        self.floor: dict[str, dict[str, int]] = {"global": dict.fromkeys(self.keys, 0)}
        self.open: set[str] = {"global"}
        self._everything: dict[str, int] = {}
        self._tool: dict[tuple[str, str], int] = {}
        self._key: dict[tuple[str, str, str], int] = {}

    def open_view(self, view: str) -> None:
        self.floor[view] = dict.fromkeys(self.keys, 0)
        self.open.add(view)

    def close_view(self, view: str) -> None:
        self.open.discard(view)

    def reached(self, scope: Literal["global", "session"], session: str | None) -> list[str]:
        """The views a write of ``scope``, made in ``session`` (None: outside any), reaches."""
        if scope == "global":
            return sorted(self.open)
        return [session] if session is not None and session in self.open else []

    def mutate(self, key: str) -> int:
        """A write changes ``key``; return the new version."""
        self.version += 1
        self.store[key] = self.version
        return self.version

    def epoch(self, view: str, tool: str, key: str) -> int:
        return (
            self._everything.get(view, 0)
            + self._tool.get((view, tool), 0)
            + self._key.get((view, tool, key), 0)
        )

    def forget_all(self, view: str) -> None:
        """``view``'s cache dropped everything (cleared, restarted or stopped)."""
        self._everything[view] = self._everything.get(view, 0) + 1

    def forget_tool(self, view: str, tool: str) -> None:
        self._tool[(view, tool)] = self._tool.get((view, tool), 0) + 1

    def forget_key(self, view: str, tool: str, key: str) -> None:
        self._key[(view, tool, key)] = self._key.get((view, tool, key), 0) + 1

    def write_finished(self, views: Iterable[str], key: str, version: int | None) -> None:
        """A write call that wrote ``version`` of ``key`` (None: it wrote nothing)
        has returned or raised."""
        if version is None:
            return
        for view in views:
            self.floor[view][key] = max(self.floor[view][key], version)

    def floor_of(self, view: str, key: str) -> int:
        """The oldest version a read of ``key`` through ``view`` may return now:
        what global writes finished, and in a session its own writes too."""
        floor = self.floor["global"][key]
        return max(floor, self.floor[view][key]) if view != "global" else floor


@dataclass(frozen=True)
class ReadSpec:
    """A read tool as the model sees it."""

    name: str
    scope: Literal["global", "session"]
    ttl: float | None
    maxsize: int | None

    @property
    def stores(self) -> bool:
        return self.ttl != 0 and self.maxsize != 0


def served_in_time(spec: ReadSpec, load_clock: float, read_clock: float) -> bool:
    """May a value loaded at ``load_clock`` be served from storage at ``read_clock``?"""
    if not spec.stores:
        return False
    return spec.ttl is None or read_clock < load_clock + spec.ttl


# -- the sequential model ---------------------------------------------------------------


@dataclass
class Candidate:
    """An entry that may be in a table: its value, when it expires, and whether
    it is surely there (no eviction can have taken it)."""

    value: Hashable
    expires: float
    sure: bool = True


@dataclass(frozen=True)
class Expect:
    """What a read must do: ``load`` (run the tool), ``hit`` (serve ``value``),
    or ``either`` (serve ``value`` if still present, else load)."""

    kind: Literal["load", "hit", "either"]
    value: Hashable = None


@dataclass
class HostModel:
    """The caches of one view: a table per read tool, and its supervisor."""

    supervisor: SupervisorModel
    tables: dict[str, dict[Hashable, Candidate]] = field(default_factory=dict)
    figures: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("hits", "misses", "loads", "invalidations"), 0)
    )

    @property
    def stopped(self) -> bool:
        return self.supervisor.stopped

    def table(self, tool: str) -> dict[Hashable, Candidate]:
        return self.tables.setdefault(tool, {})

    def crash(self, now: float) -> None:
        """A handler of this view's cache crashed: it restarts empty, or stops."""
        self.supervisor.crash(now)
        self.tables.clear()


class SequentialModel:
    """The caches of a program that makes one call at a time.

    Args:
        intensity: ``(max_restarts, within)`` of every supervisor.
    """

    def __init__(self, intensity: tuple[int, float]) -> None:
        self.intensity = intensity
        self.hosts: dict[str, HostModel] = {"global": self._host()}

    def _host(self) -> HostModel:
        return HostModel(SupervisorModel(*self.intensity))

    def open_session(self, view: str) -> HostModel:
        """A session's caches and its session actor share one supervisor."""
        host = self.hosts[view] = self._host()
        return host

    def close_session(self, view: str) -> None:
        del self.hosts[view]

    def expect(self, view: str, spec: ReadSpec, key: Hashable, now: float) -> Expect:
        """What a read of ``key`` through ``view`` must do, before any crash."""
        host = self.hosts[view]
        if host.stopped:
            return Expect("load")
        found = host.table(spec.name).get(key)
        if found is None or now >= found.expires:
            return Expect("load")
        return Expect("hit" if found.sure else "either", found.value)

    def peek(self, view: str, spec: ReadSpec, key: Hashable, now: float) -> Expect:
        """What a short-circuited read returns: the stored value if fresh, else None."""
        expect = self.expect(view, spec, key, now)
        return Expect("hit", None) if expect.kind == "load" else expect

    def hit(self, view: str, spec: ReadSpec, key: Hashable) -> None:
        host = self.hosts[view]
        host.table(spec.name)[key].sure = True
        host.figures["hits"] += 1

    def loaded(
        self,
        view: str,
        spec: ReadSpec,
        key: Hashable,
        value: Hashable | None,
        now: float,
        *,
        led: bool,
    ) -> None:
        """A read of ``key`` ran the tool: ``value`` (None: it failed). ``led``:
        through the cache (the lookup did not crash, the cache was in service)."""
        host = self.hosts[view]
        host.figures["misses"] += 1
        table = host.table(spec.name)
        table.pop(key, None)  # expired, evicted, or never there
        if not led:
            return
        host.figures["loads"] += 1
        if value is None or not spec.stores:
            return
        expires = float("inf") if spec.ttl is None else now + spec.ttl
        if expires <= now:
            return
        table[key] = Candidate(value, expires)
        if spec.maxsize is not None and len(table) > spec.maxsize:
            # One entry was evicted, which one the model does not say (the LRU
            # order is approximate): only the new entry is surely there.
            for other, candidate in table.items():
                if other != key:
                    candidate.sure = False

    def invalidate(self, views: Iterable[str], key: Hashable | None) -> None:
        """Drop, in ``views``, every tool's entry of ``key`` (None: every entry)."""
        for view in views:
            host = self.hosts.get(view)
            if host is None or host.stopped:
                continue
            for table in host.tables.values():
                if key is None:
                    table.clear()
                else:
                    table.pop(key, None)

    def count_invalidation(self, view: str) -> None:
        self.hosts[view].figures["invalidations"] += 1
