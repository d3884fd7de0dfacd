"""Loop detection over one session's calls: pure state transitions, O(1) per call.

What counts as a loop
---------------------
* **depth**: more than ``max_depth`` calls in the session.
* **repeat**: one tool called with the same (bound) arguments more than its
  limit, counted since the last *write* to the tool's resource. Re-reading
  after a write is how an agent checks its work; the same read again and again
  with nothing written in between is a loop. With ``window`` set, only the last
  ``window`` calls count.
* **cycle**: the last ``cycle_repeats * p`` calls are ``cycle_repeats``
  repetitions of one pattern of ``p`` calls (2 <= p <= ``max_cycle``) holding at
  least two different calls. Calls are compared with their arguments:
  ``get_cart(u1), add(u1, x), get_cart(u1), add(u1, y)`` is progress.
* **blocked**: a call of a tool that was refused for a loop before. Agent
  frameworks often hand the model a tool's exception as text; without this,
  the agent would loop on.

Costs
-----
Each call does a constant amount of work: a dict lookup for its identity, one
counter update, and one comparison per cycle period (``max_cycle - 1`` of
them, 9 by default). Memory is bounded: the repeat counters keep at most
``max_tracked`` distinct calls (the least recently seen are forgotten, which
restarts their count), the cycle history ``max_cycle * cycle_repeats`` calls,
and the window ``window`` calls.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Literal, final

__all__ = ["LoopDetector", "LoopEvent", "LoopKind", "LoopLimits", "ToolSite"]

LoopKind = Literal["repeat", "cycle", "depth", "blocked"]


@final
@dataclass(frozen=True, slots=True, eq=False)
class ToolSite:
    """A tool as loop detection sees it, made once per decorated tool.

    ``reads`` are the resources a read tool reads, ``writes`` those a write
    tool invalidates: a write restarts the repeat counts of reads of the
    resources it writes.
    """

    tool_id: int
    tool: str
    qualname: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class LoopEvent:
    """A detected loop: what was called, what repeats, and how often.

    Attributes:
        kind: ``"repeat"``, ``"cycle"``, ``"depth"`` or ``"blocked"``.
        tool: the tool's plain name.
        arguments: the call's arguments as bound to the tool's signature (the
            value itself for a tool of one parameter, else a tuple).
        pattern: the repeating calls by tool name (a single name for a repeat).
        count: how many times it repeated (calls so far, for depth).
        limit: the limit it went past.
        session_id: the session it happened in.
        position: the call's index in the session (0-based).
    """

    kind: LoopKind
    tool: str
    arguments: Hashable
    pattern: tuple[str, ...]
    count: int
    limit: int
    session_id: str
    position: int

    @property
    def message(self) -> str:
        """A sentence for logs and error messages."""
        if self.kind == "repeat":
            return (
                f"tool {self.tool!r} called {self.count} times with the same arguments "
                f"and no write in between (limit: {self.limit})"
            )
        if self.kind == "cycle":
            return (
                f"cycle {' -> '.join(self.pattern)} repeated {self.count} times "
                "with the same arguments"
            )
        if self.kind == "depth":
            return f"execution depth exceeded: {self.count} calls > {self.limit}"
        return f"tool {self.tool!r} was already stopped for looping in this session"


@final
@dataclass(frozen=True, slots=True)
class LoopLimits:
    """The limits a session enforces.

    ``tool_repeats`` overrides ``max_repeats`` per tool, by plain or qualified
    name.
    """

    max_repeats: int = 5
    max_depth: int = 50
    window: int | None = None
    max_cycle: int = 10
    cycle_repeats: int = 2
    max_tracked: int = 65_536
    tool_repeats: Mapping[str, int] = field(default_factory=dict)


@final
class _Seen:
    """Repeat bookkeeping of one distinct call."""

    __slots__ = ("count", "epoch", "ident", "last", "limit", "tool")

    def __init__(self, ident: int, epoch: int, tool: str, limit: int) -> None:
        self.ident = ident
        self.epoch = epoch
        self.count = 0
        self.tool = tool
        self.limit = limit  # its repeat limit, looked up once
        self.last = -(1 << 62)  # position of its latest call


@final
class LoopDetector:
    """The loop detector of one session. `record` is its only transition."""

    def __init__(self, limits: LoopLimits, session_id: str) -> None:
        self.limits = limits
        self.session_id = session_id
        self.calls = 0
        self.blocked: set[int] = set()
        self._seen: OrderedDict[tuple[int, Hashable], _Seen] = OrderedDict()
        self._next_ident = 0
        self._epochs: dict[str, int] = {}
        self._window: deque[tuple[_Seen, int]] | None = (
            deque() if limits.window is not None else None
        )
        # The latest calls, oldest first; trimmed in halves so appends stay O(1).
        self._history: list[_Seen] = []
        self._history_keep = max(limits.max_cycle * limits.cycle_repeats, 2)
        # _runs[p]: how many latest calls equal the call p positions before them.
        self._runs = [0] * (limits.max_cycle + 1)
        self._no_runs = [0] * (limits.max_cycle + 1)

    def record(self, call: ToolSite, key: Hashable) -> LoopEvent | None:
        """Count one call of ``call`` with arguments ``key``; return the loop it
        makes, if any."""
        # One function, locals for everything: this runs on every tool call of
        # a session, whose hit must stay under 3 us (a method call or attribute
        # load here costs 50-100 ns).
        limits = self.limits
        position = self.calls
        self.calls = position + 1
        epochs = self._epochs
        if call.writes:
            for resource in call.writes:
                epochs[resource] = epochs.get(resource, 0) + 1
        reads = call.reads
        if len(reads) == 1:
            epoch = epochs.get(reads[0], 0)
        else:
            epoch = sum(epochs.get(r, 0) for r in reads)

        # Repeats since the last write to the call's resources.
        ident = (call.tool_id, key)
        seen_calls = self._seen
        seen = seen_calls.get(ident)
        if seen is None:
            limit = limits.tool_repeats.get(call.tool, limits.max_repeats)
            seen = seen_calls[ident] = _Seen(self._next_ident, epoch, call.tool, limit)
            self._next_ident += 1
            if len(seen_calls) > limits.max_tracked:
                # An OrderedDict, not a dict: popping a plain dict's first key
                # again and again scans the holes left at its front, and the
                # session slowed to half speed once it tracked max_tracked calls.
                seen_calls.popitem(last=False)
        else:
            seen_calls.move_to_end(ident)
            if seen.epoch != epoch:
                seen.epoch = epoch
                seen.count = 0
        count = seen.count = seen.count + 1
        window = self._window
        if window is not None:
            window.append((seen, epoch))
            if len(window) > limits.window:  # type: ignore[operator]
                old, old_epoch = window.popleft()
                if old.epoch == old_epoch and old.count > 0:
                    old.count -= 1
            count = seen.count  # the call that left the window may be this one

        # Cycles: runs[p] counts the latest calls equal to the call p before.
        history = self._history
        runs = self._runs
        last = seen.last
        seen.last = position
        cycle: tuple[str, ...] | None = None
        if position - last >= len(runs):
            # Not among the last max_cycle calls: no period can match. The
            # common case (distinct calls) costs one slice copy, no loop.
            runs[:] = self._no_runs
        else:
            n = len(history)
            this = seen.ident
            # runs[1]: how many latest calls equal their predecessor. A pattern
            # of identical calls is a plain repeat (counted above), no cycle.
            same = runs[1] = runs[1] + 1 if history[n - 1].ident == this else 0
            # Once the last max_cycle calls are one call repeated, no period
            # can form a cycle, and the run ends with a call that is not among
            # them, which resets every run above: skip the loop meanwhile.
            if same < len(runs) - 2:
                need = limits.cycle_repeats - 1
                for p in range(2, min(n, len(runs) - 1) + 1):
                    if history[n - p].ident == this:
                        run = runs[p] = runs[p] + 1
                        if cycle is None and run >= p * need and same < p - 1:
                            cycle = tuple(history[i].tool for i in range(n - p + 1, n))
                            cycle += (seen.tool,)
                    else:
                        runs[p] = 0
        history.append(seen)
        if len(history) >= 2 * self._history_keep:
            del history[: -self._history_keep]

        if self.blocked and call.tool_id in self.blocked:
            return self._event("blocked", call, key, (call.tool,), count, 0, position)
        if position >= limits.max_depth:
            return self._event(
                "depth", call, key, (call.tool,), self.calls, limits.max_depth, position
            )
        if count > seen.limit:
            return self._event("repeat", call, key, (call.tool,), count, seen.limit, position)
        if cycle is not None:
            repeats = limits.cycle_repeats
            return self._event("cycle", call, key, cycle, repeats, repeats - 1, position)
        return None

    def _event(
        self,
        kind: LoopKind,
        call: ToolSite,
        key: Hashable,
        pattern: tuple[str, ...],
        count: int,
        limit: int,
        position: int,
    ) -> LoopEvent:
        return LoopEvent(kind, call.tool, key, pattern, count, limit, self.session_id, position)

    def block(self, tool_id: int) -> None:
        """Refuse every later call of ``tool_id`` (it was stopped for looping)."""
        self.blocked.add(tool_id)

    @property
    def tracked(self) -> int:
        """How many distinct calls the repeat counters hold now."""
        return len(self._seen)
