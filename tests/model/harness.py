"""The swarm harness: real decorated tools over a fake, instrumented datastore.

A `Program` is what hypothesis generates: agents that run concurrently, each a
list of steps (reads, writes, concurrent bursts of reads, pauses, clock moves,
and sessions holding more steps), and a `Plan` for the faults: how many
scheduler checkpoints each await in the datastore takes, which loads fail,
which actor handler calls crash, and the restart intensity.

`World` runs a program against the real `AgentCache`, `AgentCacheInvalidator`
and `AgentCacheSession` inside ``async with Runtime(clock=FakeClock)`` and
logs, on one logical clock (``tick``):

* every loader run (`LoadRecord`): which call ran it, whether through the cache
  (it was elected to lead by the cache actor) or uncached (the cache was out of
  service, or crashed on the lookup), the view's epoch at its start, what
  version it read, how it ended;
* every call (`CallRecord`): when it started and ended, the floor and epoch of
  its view at its start (from `reference.Views`), its outcome, its loop
  verdict;
* what the actors did, by wrapping their handlers (`instrumented`): which
  lookups elected a leader, which handler calls crashed (the crash is injected
  there), and every RecordCall/Refuse a session actor handled, in order.

`check_all` then holds the log against DESIGN.md's invariants and the
reference model; `check_sequential` holds a one-call-at-a-time run against
`reference.SequentialModel` exactly.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel

from agent_cache import (
    AgentCache,
    AgentCacheInvalidator,
    AgentCacheSession,
    AgentLoopDetectedError,
    Args,
    Runtime,
    get_metrics,
)
from agent_cache._caches import CacheHost
from agent_cache.actors.resource_cache import Invalidate, ResourceCache
from agent_cache.actors.session import RecordCall, SessionActor
from agent_cache.runtime._backend import current_backend

from .reference import (
    LoopReference,
    LoopRules,
    ReadSpec,
    SequentialModel,
    Site,
    Views,
    served_in_time,
)

RESOURCE = "tests.model.docs"
KEYS = ("a", "b", "c")
TTL = 10.0
#: A scenario that takes longer than this (real seconds) has stranded a caller
#: (a backstop: `World.watchdog` catches a deadlock as soon as it happens).
DEADLINE = 30.0
START = 1000.0

OnLoop: TypeAlias = Literal["raise", "warn", "short_circuit"]


# -- programs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """Call read tool ``tool`` on ``key`` in call form ``form``; cancel the
    call after ``cancel_after`` scheduler checkpoints (None: never)."""

    tool: str
    key: str
    form: int = 0
    cancel_after: int | None = None


@dataclass(frozen=True)
class Write:
    """Call write tool ``tool`` on ``key``; the mutation fails before or after
    changing the datastore if ``fail`` says so."""

    tool: str
    key: str
    fail: Literal["before", "after"] | None = None
    cancel_after: int | None = None


@dataclass(frozen=True)
class Burst:
    """Make these reads concurrently (an agent fanning out) and wait for all."""

    reads: tuple[Read, ...]


@dataclass(frozen=True)
class Pause:
    """Let ``n`` scheduler checkpoints go by."""

    n: int


@dataclass(frozen=True)
class Advance:
    """Move the runtime's (fake) clock on by ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Limits:
    """The arguments of one `AgentCacheSession`."""

    on_loop: OnLoop = "raise"
    max_tool_repeats: int = 5
    max_execution_depth: int = 50
    max_cycle_length: int = 10
    cycle_repeats: int = 2
    repeat_window: int | None = None
    trace_limit: int = 10_000

    def rules(self) -> LoopRules:
        return LoopRules(
            max_repeats=self.max_tool_repeats,
            max_depth=self.max_execution_depth,
            window=self.repeat_window,
            max_cycle=self.max_cycle_length,
            cycle_repeats=self.cycle_repeats,
        )


@dataclass(frozen=True)
class Session:
    """Run ``steps`` inside ``async with AgentCacheSession(...)``; cancel the
    whole block after ``cancel_after`` checkpoints (None: never)."""

    steps: tuple[Step, ...]
    limits: Limits = Limits()
    cancel_after: int | None = None


Step: TypeAlias = Read | Write | Burst | Pause | Advance | Session


@dataclass(frozen=True)
class Plan:
    """The faults: checkpoints per datastore await (used in turn), load ids
    that fail, handler calls that crash, the runtime's restart intensity.

    A crash is ``(view, n)``: the ``n``-th handler call (from 0) of view
    ``view``'s actors, where view 0 is the runtime's caches and view ``j`` the
    ``j``-th session opened (its caches and its session actor). Counting per
    view keeps a plan's meaning independent of the order in which one write
    reaches several sessions (a set, in the library).
    """

    delays: tuple[int, ...] = (1,)
    failing_loads: frozenset[int] = frozenset()
    crashes: frozenset[tuple[int, int]] = frozenset()
    restart_intensity: tuple[int, float] = (3, 5.0)


@dataclass(frozen=True)
class Program:
    """Agents run concurrently; each runs its steps in order."""

    agents: tuple[tuple[Step, ...], ...]
    plan: Plan = Plan()


# -- the datastore's vocabulary -------------------------------------------------------------


class Reply(NamedTuple):
    """What a loader run returns: the key, the version it read, which run."""

    key: str
    version: int
    load_id: int


class LoadError(Exception):
    """A loader run chosen to fail."""

    def __init__(self, key: str, load_id: int) -> None:
        super().__init__(f"load {load_id} of {key!r} failed")
        self.key = key
        self.load_id = load_id


class WriteError(Exception):
    """A mutation chosen to fail."""


class InjectedCrash(Exception):
    """Raised inside an actor handler by `instrumented`."""


class FakeClock:
    """The runtime's clock: TTLs and restart intensity, moved by `Advance` only."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


# -- the log ------------------------------------------------------------------------------


@dataclass(eq=False)
class LoadRecord:
    """One run of a read tool's body."""

    load_id: int
    tool: str
    key: str
    call_id: int
    view: str | None  # the view whose cache elected it to lead; None: uncached
    epoch: int
    start: int
    clock: float
    end: int = -1
    version: int = -1
    outcome: Literal["running", "ok", "error", "cancelled"] = "running"

    def __str__(self) -> str:
        where = f"led in {self.view} epoch {self.epoch}" if self.view else "uncached"
        return (
            f"load {self.load_id} {self.tool}({self.key!r}) by call {self.call_id}, {where}, "
            f"ticks {self.start}..{self.end} clock {self.clock}: {self.outcome} v{self.version}"
        )


@dataclass(eq=False)
class CallRecord:
    """One call of a decorated tool, as its caller saw it."""

    call_id: int
    tool: str
    key: str
    write: bool
    view: str | None  # reads: the view whose cache serves it; writes: None
    session: str | None  # the session it runs in
    start: int
    clock: float
    epoch: int = -1
    floor: int = 0
    fail: str | None = None
    out_of_service: bool = False  # its cache's supervisor had given up at its start
    scopes: tuple[anyio.CancelScope, ...] = ()
    end: int = -1
    outcome: Literal[
        "running", "ok", "error", "loop", "cancelled", "stray-cancel", "unexpected"
    ] = "running"
    reply: Reply | None = None
    result: object = None
    error: BaseException | None = None
    uncached: bool = False  # its lookup met an injected crash
    recorded: bool = False  # a session actor recorded it
    verdict: str | None = None  # the loop the session actor reported
    own_loads: list[int] = field(default_factory=list)
    write_ran: bool = False
    wrote: int | None = None

    @property
    def cancel_requested(self) -> bool:
        return any(scope.cancel_called for scope in self.scopes)

    def __str__(self) -> str:
        got = self.reply if self.outcome == "ok" and not self.write else self.error or self.result
        where = f" in {self.session}" if self.session else ""
        return (
            f"call {self.call_id} {self.tool}({self.key!r}){where} via {self.view} "
            f"ticks {self.start}..{self.end} clock {self.clock} epoch {self.epoch} "
            f"floor {self.floor} verdict {self.verdict}: {self.outcome} {got!r}"
        )


@dataclass(frozen=True)
class CrashRecord:
    """An injected crash: the view's handler-call number, the handler, the
    view, the call it met, the clock."""

    n: int
    handler: str
    view: str
    call_id: int
    clock: float


@dataclass(frozen=True)
class LoopEntry:
    """What a session actor handled, in order: a recorded call (with the loop it
    reported), a refusal, or a crash on either."""

    what: Literal["call", "refuse", "crash-call", "crash-refuse"]
    call_id: int
    tool: str
    key: Hashable
    kind: str | None = None


@dataclass(eq=False)
class View:
    """A cache the calls go through: the runtime's, or one session's."""

    name: str
    host: CacheHost
    session: AgentCacheSession | None = None
    limits: Limits | None = None
    open: bool = True
    running: dict[tuple[str, str], list[LoadRecord]] = field(default_factory=dict)
    log: list[LoopEntry] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    trace: list[tuple[str, Hashable]] = field(default_factory=list)
    gave_up: bool = False  # its supervisor had stopped when it closed

    @property
    def number(self) -> int:
        """0 for the runtime's caches, j + 1 for session "s<j>" (see `Plan`)."""
        return 0 if self.session is None else int(self.name[1:]) + 1


# -- the tools --------------------------------------------------------------------------------

_world: contextvars.ContextVar[World] = contextvars.ContextVar("tests_model_world")
_view: contextvars.ContextVar[View | None] = contextvars.ContextVar(
    "tests_model_view", default=None
)


@AgentCache(resource=RESOURCE, maxsize=2)
async def read_lru(key: str) -> Reply:
    """Global, no TTL, two entries: LRU pressure."""
    return await _world.get().load("read_lru", key)


@AgentCache(resource=RESOURCE, ttl=TTL, maxsize=16)
async def read_ttl(key: str, fmt: str = "plain") -> Reply:
    """Global, with a TTL and a default argument (four call forms, one key)."""
    return await _world.get().load("read_ttl", key)


@AgentCache(resource=RESOURCE, ttl=0)
async def read_nostore(key: str) -> Reply:
    """Global, ttl=0: stores nothing but still shares running loads."""
    return await _world.get().load("read_nostore", key)


@AgentCache(resource=RESOURCE, scope="session", ttl=TTL, maxsize=2)
async def sread(key: str) -> Reply:
    """Session scope: private to the enclosing session; just runs outside one."""
    return await _world.get().load("sread", key)


def _one_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Args:
    return Args(args[0])


@AgentCacheInvalidator(resource=RESOURCE, key_fn=_one_key)
async def write_key(key: str) -> int:
    """Global write of one key: drops that key's reads, everywhere."""
    return await _world.get().write("write_key", key)


@AgentCacheInvalidator(resource=RESOURCE)
async def write_all(key: str) -> int:
    """Global write that clears the whole resource, everywhere."""
    return await _world.get().write("write_all", key)


@AgentCacheInvalidator(resource=RESOURCE, scope="session", key_fn=_one_key)
async def swrite_key(key: str) -> int:
    """Session-scoped write: drops the key in the enclosing session only."""
    return await _world.get().write("swrite_key", key)


def _spec(tool: Any, name: str, scope: Literal["global", "session"]) -> ReadSpec:
    table = tool.__agent_cache_tool__.spec
    return ReadSpec(name, scope, table.ttl, table.maxsize)


_READ_TOOLS: dict[str, Any] = {
    "read_lru": read_lru,
    "read_ttl": read_ttl,
    "read_nostore": read_nostore,
    "sread": sread,
}
TOOL_IDS: dict[str, int] = {
    name: tool.__agent_cache_tool__.spec.tool_id for name, tool in _READ_TOOLS.items()
}
READS: dict[str, ReadSpec] = {
    name: _spec(tool, name, "session" if name == "sread" else "global")
    for name, tool in _READ_TOOLS.items()
}
TOOL_NAMES = {tool_id: name for name, tool_id in TOOL_IDS.items()}
WRITES: dict[str, Literal["global", "session"]] = {
    "write_key": "global",
    "write_all": "global",
    "swrite_key": "session",
}
SITES: dict[str, Site] = {
    **{name: Site(name, reads=(RESOURCE,)) for name in READS},
    **{name: Site(name, writes=(RESOURCE,)) for name in WRITES},
}

ReadForm: TypeAlias = Callable[[str], Awaitable[Reply]]
READ_FORMS: dict[str, tuple[ReadForm, ...]] = {
    "read_lru": (lambda k: read_lru(k), lambda k: read_lru(key=k)),
    "read_ttl": (
        lambda k: read_ttl(k),
        lambda k: read_ttl(k, "plain"),
        lambda k: read_ttl(key=k),
        lambda k: read_ttl(k, fmt="plain"),
    ),
    "read_nostore": (lambda k: read_nostore(k),),
    "sread": (lambda k: sread(k), lambda k: sread(key=k)),
}
WRITE_TOOLS: dict[str, Callable[[str], Awaitable[int]]] = {
    "write_key": write_key,
    "write_all": write_all,
    "swrite_key": swrite_key,
}


def bound_key(tool: str, key: str) -> tuple[str, ...]:
    """The arguments of a call bound to the tool's signature, defaults applied."""
    return (key, "plain") if tool == "read_ttl" else (key,)


# -- instrumentation ------------------------------------------------------------------------

CACHE_HANDLERS = ("on_lookup", "on_complete", "on_fail", "on_abandon", "on_invalidate")
_active: World | None = None


def _cache_handler(name: str) -> Callable[..., Any]:
    original = getattr(ResourceCache, name)

    def handler(self: ResourceCache, message: Any) -> Any:
        world = _active
        if world is None:
            return original(self, message)
        return world.on_cache_handler(name, original, self, message)

    handler.__name__ = name
    return handler


def _session_receive() -> Callable[..., Any]:
    original = SessionActor.receive

    def receive(self: SessionActor, message: Any) -> Any:
        world = _active
        if world is None:
            return original(self, message)
        return world.on_session_handler(original, self, message)

    return receive


@contextlib.contextmanager
def instrumented(world: World) -> Iterator[None]:
    """Wrap the actors' handlers so that ``world`` sees (and crashes) them."""
    global _active
    saved = {name: ResourceCache.__dict__[name] for name in CACHE_HANDLERS}
    saved_receive = SessionActor.__dict__["receive"]
    for name in CACHE_HANDLERS:
        setattr(ResourceCache, name, _cache_handler(name))
    SessionActor.receive = _session_receive()  # type: ignore[method-assign]
    # Crashes are logged with tracebacks by the library: keep that cheap.
    logger = logging.getLogger("agent_cache")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    _active = world
    try:
        yield
    finally:
        _active = None
        logger.setLevel(level)
        for name, original in saved.items():
            setattr(ResourceCache, name, original)
        SessionActor.receive = saved_receive  # type: ignore[method-assign]


def elected(asked: object, reply: object) -> bool:
    """Did the cache elect the asker of ``asked`` (a new flight) to run the load?

    Then the reply is that very flight, now attached.
    """
    return reply is asked


def task_id() -> int:
    return anyio.get_current_task().id


def count_tasks() -> int:
    """Every task of the running event loop (the leak check compares counts)."""
    if current_backend() == "trio":
        import trio

        def walk(task: trio.lowlevel.Task) -> int:
            return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return walk(root)
    import asyncio

    return len(asyncio.all_tasks())


# -- the world -------------------------------------------------------------------------------


class World:
    """The fake datastore, its log, and the agents that drive the tools."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.plan = program.plan
        self.clock = FakeClock()
        self.ref = Views(KEYS)
        self.now = 0
        self.loads: list[LoadRecord] = []
        self.calls: list[CallRecord] = []
        self.crashes: list[CrashRecord] = []
        self.violations: list[str] = []
        self.views: dict[str, View] = {}
        self._by_tables: dict[int, View] = {}
        self.timeline: list[tuple[str, Any]] = []
        self.handler_calls: dict[str, int] = {}
        self.marks: dict[int, str] = {}  # task id -> the view that elected it, or "crash"
        self.current: dict[int, CallRecord] = {}
        self.sessions = 0
        self._pauses = itertools.count()
        self.deadline: anyio.CancelScope | None = None
        self.rt: Runtime | None = None
        self.stats: dict[str, float] = {}
        self.delta: dict[str, float] = {}
        self.tasks_before = 0
        self.tasks_after = 0
        #: when set, every load waits for it after reading the store
        self.gate: anyio.Event | None = None

    # -- logging helpers ---------------------------------------------------------------

    def tick(self) -> int:
        self.now += 1
        return self.now

    def violation(self, text: str) -> None:
        self.violations.append(text)

    async def pause(self) -> None:
        delays = self.plan.delays
        for _ in range(delays[next(self._pauses) % len(delays)]):
            await anyio.lowlevel.checkpoint()
        self.check_bounds()

    def check_bounds(self) -> None:
        """Invariant 5: no table holds more than its tool's maxsize."""
        for view in self.views.values():
            if not view.open:
                continue
            for name, spec in READS.items():
                table = view.host.tables.get(TOOL_IDS[name])
                maxsize = spec.maxsize
                if table is not None and maxsize is not None and len(table.entries) > maxsize:
                    self.violation(
                        f"invariant 5: {name} holds {len(table.entries)} entries in "
                        f"{view.name}, more than maxsize={maxsize}"
                    )

    def view_of(self, call: CallRecord) -> View | None:
        return self.views.get(call.view) if call.view is not None else None

    # -- what the actors report (see `instrumented`) ------------------------------------------

    def _crash_due(self, view: View) -> tuple[int, bool]:
        n = self.handler_calls.get(view.name, 0)
        self.handler_calls[view.name] = n + 1
        return n, (view.number, n) in self.plan.crashes

    def on_cache_handler(
        self, name: str, original: Callable[..., Any], actor: ResourceCache, message: Any
    ) -> Any:
        view = self._by_tables.get(id(actor.published))
        if view is None:
            self.violation(f"a {name} reached a cache of no known view")
            return original(actor, message)
        n, crash = self._crash_due(view)
        task = task_id()
        call = self.current.get(task)
        if crash:
            call_id = call.call_id if call is not None else -1
            self.crashes.append(CrashRecord(n, name, view.name, call_id, self.clock.now))
            # The actor restarts empty (or stops): it forgets every load and entry.
            self.ref.forget_all(view.name)
            if name == "on_lookup":
                self.marks[task] = "crash"
                if call is not None:
                    call.uncached = True
            raise InjectedCrash(f"injected crash #{n} in {name} of {view.name}")
        reply = original(actor, message)
        if name == "on_lookup" and elected(message, reply):
            self.marks[task] = view.name
        elif name == "on_invalidate":
            self._invalidated(view.name, message)
        return reply

    def _invalidated(self, view: str, message: Invalidate) -> None:
        """``view``'s cache handled ``message``: the epochs it covers move on."""
        if message.keys is None:
            self.ref.forget_all(view)
            return
        for tool_id in message.whole:
            if tool_id in TOOL_NAMES:
                self.ref.forget_tool(view, TOOL_NAMES[tool_id])
        for tool_id, keys in message.keys.items():
            for key in keys:
                if tool_id in TOOL_NAMES:
                    plain = key if isinstance(key, str) else key[0]  # type: ignore[index]
                    self.ref.forget_key(view, TOOL_NAMES[tool_id], plain)

    def on_session_handler(
        self, original: Callable[..., Any], actor: SessionActor, message: Any
    ) -> Any:
        view = self.views.get(actor.session_id)
        call = self.current.get(task_id())
        if view is None or call is None:
            self.violation(f"session actor {actor.session_id} handled {message!r} unexpectedly")
            return original(actor, message)
        is_call = isinstance(message, RecordCall)
        n, crash = self._crash_due(view)
        if crash:
            self.crashes.append(
                CrashRecord(
                    n, "record" if is_call else "refuse", view.name, call.call_id, self.clock.now
                )
            )
            what: Literal["crash-call", "crash-refuse"] = (
                "crash-call" if is_call else "crash-refuse"
            )
            view.log.append(LoopEntry(what, call.call_id, call.tool, call.key))
            raise InjectedCrash(f"injected crash #{n} in the session actor of {view.name}")
        reply = original(actor, message)
        if is_call:
            kind = reply.kind if reply is not None else None
            call.recorded = True
            call.verdict = kind
            view.log.append(LoopEntry("call", call.call_id, call.tool, message.key, kind))
        else:
            view.log.append(LoopEntry("refuse", call.call_id, call.tool, None))
        return reply

    # -- the datastore, as the tools see it -------------------------------------------------

    def _may_run_uncached(self, call: CallRecord) -> bool:
        view = self.view_of(call)
        if view is None:  # a session-scoped tool outside any session
            return True
        return view.host.supervisor.stopped is not None  # out of service

    async def load(self, tool: str, key: str) -> Reply:
        task = task_id()
        call = self.current[task]
        mark = self.marks.pop(task, None)
        led = mark if mark is not None and mark != "crash" else None
        if mark is None and self._may_run_uncached(call):
            call.uncached = True  # out of service (perhaps since the call began)
        elif mark is None:
            self.violation(
                f"invariant 1: {call} ran the tool without being elected by the cache "
                "(and the cache was in service)"
            )
        epoch = self.ref.epoch(led, tool, key) if led is not None else -1
        load = LoadRecord(
            len(self.loads), tool, key, call.call_id, led, epoch, self.tick(), self.clock.now
        )
        self.loads.append(load)
        call.own_loads.append(load.load_id)
        running: list[LoadRecord] = []
        if led is not None:
            running = self.views[led].running.setdefault((tool, key), [])
            for other in running:
                if other.epoch == load.epoch:
                    self.violation(
                        f"invariant 1: {load} started while {other} ran in the same view and epoch"
                    )
            running.append(load)
        try:
            await self.pause()
            load.version = self.ref.store[key]
            await self.pause()
            if self.gate is not None:
                await self.gate.wait()
            if load.load_id in self.plan.failing_loads:
                load.outcome = "error"
                raise LoadError(key, load.load_id)
            load.outcome = "ok"
            return Reply(key, load.version, load.load_id)
        finally:
            if load.outcome == "running":
                load.outcome = "cancelled"
            if led is not None:
                running.remove(load)
            load.end = self.tick()

    def _reached(self, tool: str, call: CallRecord) -> list[str]:
        return self.ref.reached(WRITES[tool], call.session)

    async def write(self, tool: str, key: str) -> int:
        call = self.current[task_id()]
        call.write_ran = True
        await self.pause()
        if call.fail == "before":
            raise WriteError(key)
        call.wrote = self.ref.mutate(key)
        await self.pause()
        if call.fail == "after":
            raise WriteError(key)
        return call.wrote

    def write_returned(self, call: CallRecord) -> None:
        """The invalidator call has returned or raised (it invalidated on its
        way out, with no checkpoint since): later reads must see its version."""
        if not call.write_ran:
            return
        if WRITES[call.tool] == "global":
            self.ref.write_finished(["global"], call.key, call.wrote)
        elif call.session is not None:
            self.ref.write_finished([call.session], call.key, call.wrote)

    # -- the agents ------------------------------------------------------------------------

    async def cancel_later(
        self, scope: anyio.CancelScope, n: int, done: Callable[[], bool]
    ) -> None:
        for _ in range(n):
            await anyio.lowlevel.checkpoint()
        if not done():
            scope.cancel()

    async def call(
        self,
        tool: str,
        key: str,
        invoke: Callable[[], Awaitable[object]],
        cancel_after: int | None,
        scopes: tuple[anyio.CancelScope, ...],
        tg: anyio.abc.TaskGroup,
        fail: str | None = None,
    ) -> CallRecord:
        """Make one call in its own cancel scope and log what its caller sees."""
        session = _view.get()
        write = tool in WRITES
        view: str | None = None
        if not write:
            if READS[tool].scope == "global":
                view = "global"
            elif session is not None:
                view = session.name
        call = CallRecord(
            len(self.calls),
            tool,
            key,
            write,
            view,
            session.name if session is not None else None,
            self.tick(),
            self.clock.now,
            fail=fail,
        )
        self.calls.append(call)
        self.timeline.append(("call", call.call_id))
        if view is not None:
            call.epoch = self.ref.epoch(view, tool, key)
            call.floor = self.ref.floor_of(view, key)
            call.out_of_service = self.views[view].host.supervisor.stopped is not None
        scope = anyio.CancelScope()
        call.scopes = (scope, *scopes)
        if cancel_after is not None:
            tg.start_soon(self.cancel_later, scope, cancel_after, lambda: call.end >= 0)
        task = task_id()
        self.current[task] = call
        try:
            with scope:
                try:
                    result = await invoke()
                except (LoadError, WriteError) as exc:
                    call.outcome = "error"
                    call.error = exc
                except AgentLoopDetectedError as exc:
                    call.outcome = "loop"
                    call.error = exc
                except anyio.get_cancelled_exc_class() as exc:
                    call.error = exc
                    deadline = self.deadline is not None and self.deadline.cancel_called
                    if not call.cancel_requested and not deadline:
                        # Not ours: a cancellation escaped someone else's load.
                        call.outcome = "stray-cancel"
                        return call
                    call.outcome = "cancelled"
                    raise
                except Exception as exc:
                    call.outcome = "unexpected"
                    call.error = exc
                else:
                    call.outcome = "ok"
                    call.result = result
                    if isinstance(result, Reply):
                        call.reply = result
                finally:
                    call.end = self.tick()
        finally:
            del self.current[task]
            if write:
                self.write_returned(call)
        return call

    async def read(
        self, step: Read, scopes: tuple[anyio.CancelScope, ...], tg: anyio.abc.TaskGroup
    ) -> None:
        forms = READ_FORMS[step.tool]
        form = forms[step.form % len(forms)]
        await self.call(step.tool, step.key, lambda: form(step.key), step.cancel_after, scopes, tg)

    async def run_steps(
        self,
        steps: tuple[Step, ...],
        scopes: tuple[anyio.CancelScope, ...],
        tg: anyio.abc.TaskGroup,
    ) -> None:
        for step in steps:
            if isinstance(step, Read):
                await self.read(step, scopes, tg)
            elif isinstance(step, Write):
                writer = WRITE_TOOLS[step.tool]
                await self.call(
                    step.tool,
                    step.key,
                    lambda w=writer, k=step.key: w(k),  # type: ignore[misc]
                    step.cancel_after,
                    scopes,
                    tg,
                    fail=step.fail,
                )
            elif isinstance(step, Burst):
                async with anyio.create_task_group() as burst:
                    for read in step.reads:
                        burst.start_soon(self.read, read, scopes, tg)
            elif isinstance(step, Pause):
                for _ in range(step.n):
                    await anyio.lowlevel.checkpoint()
            elif isinstance(step, Advance):
                self.clock.now += step.seconds
                self.timeline.append(("advance", step.seconds))
            else:
                await self.run_session(step, scopes, tg)

    async def run_session(
        self, step: Session, scopes: tuple[anyio.CancelScope, ...], tg: anyio.abc.TaskGroup
    ) -> None:
        name = f"s{self.sessions}"
        self.sessions += 1
        lim = step.limits
        session = AgentCacheSession(
            session_id=name,
            on_loop=lim.on_loop,
            max_tool_repeats=lim.max_tool_repeats,
            max_execution_depth=lim.max_execution_depth,
            max_cycle_length=lim.max_cycle_length,
            cycle_repeats=lim.cycle_repeats,
            repeat_window=lim.repeat_window,
            trace_limit=lim.trace_limit,
        )
        try:
            await session.__aenter__()
        except Exception as exc:
            self.violation(f"invariant 9: opening session {name} failed: {exc!r}")
            return
        host = session.open_host
        assert host is not None
        view = self.views[name] = View(name, host, session, lim)
        self._by_tables[id(host.tables)] = view
        self.ref.open_view(name)
        self.timeline.append(("open", name))
        scope = anyio.CancelScope()
        if step.cancel_after is not None:
            tg.start_soon(self.cancel_later, scope, step.cancel_after, lambda: not view.open)
        token = _view.set(view)
        try:
            with scope:
                await self.run_steps(step.steps, (scope, *scopes), tg)
        finally:
            _view.reset(token)
            view.gave_up = host.supervisor.stopped is not None
            await session.__aexit__(None, None, None)
            view.open = False
            self.ref.close_view(name)
            self.timeline.append(("close", name))
            view.metrics = session.get_metrics()
            view.trace = [tuple(entry) for entry in session.get_execution_trace()]  # type: ignore[misc]
            self.check_session_closed(view)

    def check_session_closed(self, view: View) -> None:
        """Invariant 8: leaving a session stops its actors and drops its entries."""
        session = view.session
        assert session is not None and self.rt is not None
        if session.open_host is not None:
            self.violation(f"invariant 8: {view.name} still has open caches after its block")
        if view.host.tables:
            self.violation(f"invariant 8: {view.name} kept tables after its block")
        if view.host.supervisor.stopped is None:
            self.violation(f"invariant 8: the supervisor of {view.name} runs after its block")
        if any(view.host in hosts for hosts in self.rt.session_hosts.values()):
            self.violation(f"invariant 8: the runtime still reaches {view.name}'s caches")

    # -- running a program ---------------------------------------------------------------

    async def run(
        self, body: Callable[[anyio.abc.TaskGroup], Awaitable[None]] | None = None
    ) -> World:
        """Run the program (or ``body``) in a fresh runtime, under the deadline."""
        token = _world.set(self)
        self.tasks_before = count_tasks()
        before = get_metrics(RESOURCE)
        try:
            with instrumented(self):
                async with Runtime(
                    clock=self.clock, restart_intensity=self.plan.restart_intensity
                ) as rt:
                    self.rt = rt
                    self.views["global"] = View("global", rt.host)
                    self._by_tables[id(rt.host.tables)] = self.views["global"]
                    try:
                        with anyio.fail_after(DEADLINE) as self.deadline:
                            async with anyio.create_task_group() as watch:
                                watch.start_soon(self.watchdog, self.deadline)
                                async with anyio.create_task_group() as tg:
                                    if body is not None:
                                        await body(tg)
                                    for steps in self.program.agents:
                                        tg.start_soon(self.run_steps, steps, (), tg)
                                watch.cancel_scope.cancel()
                    except TimeoutError:
                        self.stranded("the deadline passed")
                    self.check_bounds()
                    self.stats = rt.statistics(RESOURCE)
                    self.views["global"].gave_up = rt.host.supervisor.stopped is not None
        finally:
            _world.reset(token)
        after = get_metrics(RESOURCE)
        self.delta = {k: after[k] - before[k] for k in after if k not in ("hit_rate",)}
        self.tasks_after = count_tasks()
        return self

    def stranded(self, why: str) -> None:
        waiting = [str(c) for c in self.calls if c.end < 0]
        self.violation(f"invariant 3: stranded callers ({why}):\n" + "\n".join(waiting))

    async def watchdog(self, deadline: anyio.CancelScope) -> None:
        """Catch a deadlock at once: nothing in a scenario waits on time or I/O
        (the clock is fake, and every pause is a checkpoint), so once every
        other task is blocked, none will ever run again."""
        while True:
            await anyio.wait_all_tasks_blocked()
            # anyio's asyncio version does not see callbacks already queued
            # (a finished task's done callback that will wake its task group):
            # let them run, and call it a deadlock only if nothing moved.
            progress = self.now
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
                await anyio.wait_all_tasks_blocked()
            if self.now == progress:
                break
        self.stranded("every task is blocked and nothing can wake one")
        deadline.cancel()

    def report(self) -> str:
        lines = [f"program: {self.program!r}"]
        lines += [str(load) for load in self.loads]
        lines += [str(call) for call in self.calls]
        lines += [f"crash: {crash}" for crash in self.crashes]
        for view in self.views.values():
            if view.log:
                lines.append(f"{view.name} loop log: {view.log}")
        return "\n".join(lines)


# -- checks ---------------------------------------------------------------------------------


def reached_cache(world: World, call: CallRecord) -> bool:
    """Did a read's call get past loop detection to a cache (counted in the figures)?"""
    if call.view is None:
        return False
    return action_of(world, call) in (None, "warn")


def action_of(world: World, call: CallRecord) -> str | None:
    """What the session did with the call's loop verdict (None: no verdict)."""
    if call.verdict is None or call.session is None:
        return None
    limits = world.views[call.session].limits
    assert limits is not None
    return limits.on_loop


def joined(world: World, load: LoadRecord) -> list[CallRecord]:
    """Reads that must have joined ``load``: they started while it ran, through
    the same view, in its epoch, and reached that cache (single flight)."""
    return [
        c
        for c in world.calls
        if not c.write
        and c.view == load.view
        and c.tool == load.tool
        and c.key == load.key
        and load.start < c.start < load.end
        and c.epoch == load.epoch
        and not c.uncached
        and not c.out_of_service
        and reached_cache(world, c)
    ]


def check_single_flight_and_errors(world: World) -> None:
    """Invariants 1 and 4: joiners get the leader's answer; errors are not cached."""
    for load in world.loads:
        if load.view is None or load.outcome not in ("ok", "error"):
            continue
        for call in joined(world, load):
            if call.outcome == "cancelled":
                continue
            if call.reply is not None:
                got: int | None = call.reply.load_id
            elif isinstance(call.error, LoadError):
                got = call.error.load_id
            else:
                got = None
            if got != load.load_id:
                world.violation(
                    f"invariant {1 if load.outcome == 'ok' else 4}: {call} started while "
                    f"{load} ran in its view and epoch, so joined it, but did not get its answer"
                )
    for call in world.calls:
        if call.write or not isinstance(call.error, LoadError):
            continue
        load = world.loads[call.error.load_id]
        if (load.tool, load.key, load.outcome) != (call.tool, call.key, "error"):
            world.violation(f"invariant 4: {call} got the error of {load}")
        elif load.call_id != call.call_id and not (
            load.view == call.view and call.start < load.end
        ):
            world.violation(
                f"invariant 4: {call} started after {load} had failed, yet got its error"
            )


def check_reads(world: World) -> None:
    """Invariant 2 (no stale read after a write) and TTLs (invariant 5)."""
    for call in world.calls:
        if call.write or call.reply is None:
            continue
        reply = call.reply
        load = world.loads[reply.load_id]
        spec = READS[call.tool]
        if (reply.key, load.tool) != (call.key, call.tool):
            world.violation(f"{call} returned {load}, a load of another call")
            continue
        if reply.version < call.floor:
            world.violation(
                f"invariant 2: {call} returned version {reply.version}, older than version "
                f"{call.floor} written by a write that had finished when it started ({load})"
            )
        if load.view is None:
            if load.call_id != call.call_id:
                world.violation(f"{call} returned {load}, an uncached load of another call")
            continue
        if load.view != call.view:
            world.violation(f"{call} returned {load}, a load of another view")
        elif load.epoch < call.epoch:
            world.violation(
                f"invariant 2: {call} returned {load}, which began before an invalidation "
                "that happened before the call started"
            )
        if load.end < call.start and not served_in_time(spec, load.clock, call.clock):
            world.violation(
                f"invariant 5: {call} was served {load} from storage, beyond its TTL "
                f"(ttl={spec.ttl}, maxsize={spec.maxsize})"
            )


def check_callers(world: World) -> None:
    """Invariants 3 and 9: every caller finished, with its own outcome only."""
    for call in world.calls:
        if call.end < 0:
            world.violation(f"invariant 3: {call} never finished")
        if call.outcome == "stray-cancel":
            world.violation(f"invariant 3: {call} got a cancellation that was not its own")
        if call.outcome == "cancelled" and not call.cancel_requested:
            world.violation(f"invariant 3: {call} was cancelled without being cancelled")
        if call.outcome == "unexpected":
            world.violation(
                f"invariant 9: {call} failed with {call.error!r} (no fault explains it)"
            )
        if call.outcome == "error" and call.write != isinstance(call.error, WriteError):
            world.violation(f"{call} got an error of the wrong kind")
        if call.write and call.outcome == "error" and call.fail is None:
            world.violation(f"{call} failed though its mutation did not")
    if world.marks:
        world.violation(f"elected leaders that never ran the tool: {world.marks}")


def check_loops(world: World) -> None:
    """Loop verdicts equal the reference's, over the order the session actor saw
    the calls; each verdict was acted on as ``on_loop`` says; traces are bounded."""
    calls = world.calls
    for view in world.views.values():
        if view.limits is None:
            continue
        reference = LoopReference(view.limits.rules())
        previous: LoopEntry | None = None
        keyed: dict[tuple[str, tuple[str, ...]], Hashable] = {}
        named: dict[tuple[str, Hashable], tuple[str, tuple[str, ...]]] = {}
        for entry in view.log:
            if entry.what == "call":
                expected = reference.record(SITES[entry.tool], entry.key)
                if entry.kind != expected:
                    world.violation(
                        f"loop verdict of {calls[entry.call_id]}: {entry.kind}, the "
                        f"reference says {expected} (log of {view.name}: {view.log})"
                    )
                # Equal bound arguments, equal keys; different ones, different keys.
                args = (entry.tool, bound_key(entry.tool, calls[entry.call_id].key))
                if keyed.setdefault(args, entry.key) != entry.key or (
                    named.setdefault((entry.tool, entry.key), args) != args
                ):
                    world.violation(
                        f"{calls[entry.call_id]} was recorded as {entry.key!r}, "
                        f"inconsistently with earlier calls ({keyed}, {named})"
                    )
            elif entry.what == "refuse":
                reference.block(entry.tool)
                acted = view.limits.on_loop in ("raise", "short_circuit")
                if not (
                    acted
                    and previous is not None
                    and previous.what == "call"
                    and previous.call_id == entry.call_id
                    and previous.kind is not None
                ):
                    world.violation(f"{view.name} refused {entry.tool} after {previous}")
            else:
                reference.reset()
            previous = entry
        recorded = [(entry.tool, entry.key) for entry in view.log if entry.what == "call"]
        limit = view.limits.trace_limit
        if view.trace != (recorded[-limit:] if limit else []):
            world.violation(
                f"{view.name}'s trace {view.trace} is not the last {limit} of {recorded}"
            )
    for call in calls:
        action = action_of(world, call)
        if action in ("raise", "short_circuit") and (call.own_loads or call.write_ran):
            world.violation(f"{call} ran the tool after a loop verdict ({action})")
        if action == "raise" and call.outcome not in ("loop", "cancelled"):
            world.violation(f"{call} was not refused after its loop verdict")
        if call.outcome == "loop":
            kind = getattr(call.error, "kind", None)
            if action != "raise" or kind != call.verdict:
                world.violation(f"{call} raised {call.error!r} without a matching verdict")
        if action == "short_circuit" and call.outcome == "ok" and call.write and call.result:
            world.violation(f"{call} short-circuited but returned {call.result!r}")


def check_metrics(world: World) -> None:
    """Invariant 6: every call that reached a cache is one hit, miss or coalesced."""
    reads = [c for c in world.calls if not c.write and reached_cache(world, c)]
    global_reads = [c for c in reads if c.view == "global"]
    session_reads = [c for c in reads if c.view not in (None, "global")]
    writes_ran = [c for c in world.calls if c.write and c.write_ran]
    global_writes = [c for c in writes_ran if WRITES[c.tool] == "global"]
    session_writes = [c for c in writes_ran if WRITES[c.tool] == "session" and c.session]
    stats = world.stats

    def calls_of(figures: dict[str, float]) -> float:
        return figures["hits"] + figures["misses"] + figures["coalesced"]

    expected = {
        "global calls": (calls_of(stats), len(global_reads)),
        "global figure 'calls'": (stats["calls"], len(global_reads)),
        "global loads": (stats["loads"], sum(1 for ld in world.loads if ld.view == "global")),
        "global invalidations": (stats["invalidations"], len(global_writes)),
        "process calls": (calls_of(world.delta), len(global_reads) + len(session_reads)),
        "process loads": (world.delta["loads"], sum(1 for ld in world.loads if ld.view)),
        "process invalidations": (
            world.delta["invalidations"],
            len(global_writes) + len(session_writes),
        ),
    }
    for view in world.views.values():
        if view.session is None:
            continue
        mine = [c for c in reads if c.session == view.name]
        detections = sum(1 for e in view.log if e.what == "call" and e.kind is not None)
        ran = [c for c in writes_ran if c.session == view.name]
        expected[f"{view.name} calls"] = (calls_of(view.metrics), len(mine))
        expected[f"{view.name} invalidations"] = (view.metrics["invalidations"], len(ran))
        expected[f"{view.name} loop detections"] = (view.metrics["loop_detections"], detections)
    for what, (got, want) in expected.items():
        if got != want:
            world.violation(f"invariant 6: {what}: the figures say {got}, the log {want}")


def check_lifecycle(world: World) -> None:
    """Invariant 8: after the runtime's block nothing is left running or published."""
    rt = world.rt
    assert rt is not None
    if world.tasks_after != world.tasks_before:
        world.violation(
            f"invariant 8: {world.tasks_after - world.tasks_before} task(s) leaked "
            f"({world.tasks_before} before the runtime, {world.tasks_after} after)"
        )
    if rt.tables:
        world.violation("invariant 8: the runtime still publishes tables after its block")
    if rt.system.root.stopped is None:
        world.violation("invariant 8: the runtime's supervisor runs after its block")
    if any(view.open for view in world.views.values() if view.session is not None):
        world.violation("invariant 8: a session is still open")


def check_all(world: World) -> None:
    """Every invariant the log can show; raise AssertionError listing the violations."""
    check_callers(world)
    check_single_flight_and_errors(world)
    check_reads(world)
    check_loops(world)
    check_metrics(world)
    check_lifecycle(world)
    if world.violations:
        raise AssertionError(
            "\n".join(dict.fromkeys(world.violations)) + "\n\n--- log ---\n" + world.report()
        )


# -- the sequential reference ---------------------------------------------------------------------


def check_sequential(world: World) -> None:
    """Hold a one-call-at-a-time run against `reference.SequentialModel`, exactly.

    The crashes come from the log (which handler call crashes is the plan's
    choice, numbered in the order the handlers run); what a crash must do --
    the call that met it is served by the tool, the cache restarts empty or,
    past the restart intensity, is out of service for good, a crashed session
    actor forgets its loop state -- comes from the model.
    """
    plan = world.plan
    model = SequentialModel(plan.restart_intensity)
    store = Views(KEYS)
    loops: dict[str, LoopReference] = {}
    limits: dict[str, Limits] = {}
    crashes: dict[int, list[CrashRecord]] = {}
    for crash in world.crashes:
        crashes.setdefault(crash.call_id, []).append(crash)
    closed: list[dict[str, int]] = []
    now = START
    for what, arg in world.timeline:
        if what == "advance":
            now += arg
        elif what == "open":
            model.open_session(arg)
            view = world.views[arg]
            assert view.limits is not None
            limits[arg] = view.limits
            loops[arg] = LoopReference(view.limits.rules())
        elif what == "close":
            host = model.hosts[arg]
            if world.views[arg].gave_up != host.stopped:
                world.violation(
                    f"{arg}'s supervisor {'gave up' if world.views[arg].gave_up else 'runs'}, "
                    f"the model says {'stopped' if host.stopped else 'running'}"
                )
            closed.append(host.figures)
            model.close_session(arg)
        else:
            _check_sequential_call(
                world, world.calls[arg], model, store, loops, limits, crashes.get(arg, []), now
            )
    if world.views["global"].gave_up != model.hosts["global"].stopped:
        world.violation("the global caches' supervisor state differs from the model's")
    figures = model.hosts["global"].figures
    for name, want in figures.items():
        if world.stats[name] != want:
            world.violation(f"global {name}: the runtime says {world.stats[name]}, model {want}")
    for name in ("hits", "misses", "loads", "invalidations"):
        want = figures[name] + sum(f[name] for f in closed)
        if world.delta[name] != want:
            world.violation(f"process {name}: get_metrics moved {world.delta[name]}, model {want}")
    if world.violations:
        raise AssertionError(
            "\n".join(dict.fromkeys(world.violations)) + "\n\n--- log ---\n" + world.report()
        )


def _check_sequential_call(
    world: World,
    call: CallRecord,
    model: SequentialModel,
    store: Views,
    loops: dict[str, LoopReference],
    limits: dict[str, Limits],
    crashes: list[CrashRecord],
    now: float,
) -> None:
    def wrong(text: str) -> None:
        world.violation(f"sequential model: {call}: {text}")

    handlers = [c.handler for c in crashes]
    # 1. The session actor records the call and judges it.
    action: str | None = None
    verdict: str | None = None
    session = call.session
    if session is not None and not model.hosts[session].stopped:
        supervisor = model.hosts[session].supervisor
        if "record" in handlers:
            supervisor.crash(now)
            loops[session].reset()
        else:
            verdict = loops[session].record(SITES[call.tool], bound_key(call.tool, call.key))
            if verdict is not None:
                action = limits[session].on_loop
                if action in ("raise", "short_circuit"):
                    if "refuse" in handlers:
                        supervisor.crash(now)
                        loops[session].reset()
                    else:
                        loops[session].block(call.tool)
        if call.recorded != ("record" not in handlers):
            wrong(f"recorded={call.recorded}, the model says {'record' not in handlers}")
    elif call.recorded:
        wrong("recorded by a session actor that the model says is stopped")
    if call.verdict != verdict:
        wrong(f"verdict {call.verdict}, the model says {verdict}")
    if action == "raise":
        if call.outcome != "loop" or getattr(call.error, "kind", None) != verdict:
            wrong(f"should raise AgentLoopDetectedError({verdict})")
        return
    cache_crashes = [c for c in crashes if c.handler in CACHE_HANDLERS]
    if call.write:
        _check_sequential_write(world, call, model, store, action, cache_crashes, now, wrong)
        return
    spec = READS[call.tool]
    view = call.view
    if action == "short_circuit":
        assert view is not None
        peek = model.peek(view, spec, call.key, now)
        if call.own_loads or call.outcome != "ok":
            wrong("a short-circuited read ran the tool or failed")
        elif peek.kind == "hit" and call.result != peek.value:
            wrong(f"short-circuit returned {call.result!r}, the model says {peek.value!r}")
        elif peek.kind == "either" and call.result not in (None, peek.value):
            wrong(f"short-circuit returned {call.result!r}, not None nor {peek.value!r}")
        return
    # 2. The read: served from storage, or a run of the tool.
    expect = model.expect(view, spec, call.key, now) if view is not None else None
    loaded = bool(call.own_loads)
    if not loaded:
        if view is None or expect is None or expect.kind == "load" or cache_crashes:
            wrong(f"should have run the tool (the model expects {expect}), got {call.result!r}")
        elif call.outcome != "ok" or call.result != expect.value:
            wrong(f"was served {call.result!r}, not the stored {expect.value!r}")
        else:
            model.hit(view, spec, call.key)
        return
    if expect is not None and expect.kind == "hit" and not cache_crashes:
        wrong(f"ran the tool, but {expect.value!r} was surely stored and fresh")
        return
    load = world.loads[call.own_loads[0]]
    fails = load.load_id in world.plan.failing_loads
    if load.version != store.store[call.key]:
        wrong(f"the tool read version {load.version}, the store holds {store.store[call.key]}")
    if fails != (call.outcome == "error") or (
        not fails and call.reply != Reply(call.key, load.version, load.load_id)
    ):
        wrong(f"should {'fail' if fails else 'return its own load'}")
    if view is None:
        if load.view is not None:
            wrong("a session-scoped read outside any session went through a cache")
        return
    host = model.hosts[view]
    led = not host.stopped and "on_lookup" not in handlers
    if (load.view is not None) != led:
        wrong(f"led={load.view is not None}, the model says {led}")
    value = None if fails or cache_crashes else call.reply
    model.loaded(view, spec, call.key, value, now, led=led)
    for crash in cache_crashes:
        model.hosts[crash.view].crash(now)


def _check_sequential_write(
    world: World,
    call: CallRecord,
    model: SequentialModel,
    store: Views,
    action: str | None,
    cache_crashes: list[CrashRecord],
    now: float,
    wrong: Callable[[str], None],
) -> None:
    if action == "short_circuit":
        if call.write_ran or call.outcome != "ok" or call.result is not None:
            wrong("a short-circuited write ran, failed, or returned something")
        return
    if not call.write_ran:
        wrong("the write did not run")
        return
    version = store.mutate(call.key) if call.fail != "before" else None
    if call.wrote != version:
        wrong(f"wrote version {call.wrote}, the model says {version}")
    if (call.outcome == "error") != (call.fail is not None) or (
        call.fail is None and call.result != version
    ):
        wrong(f"outcome {call.outcome}, the model expects fail={call.fail}")
    scope = WRITES[call.tool]
    reached = ["global", *sorted(v for v in model.hosts if v != "global")]
    if scope == "session":
        reached = [call.session] if call.session is not None else []
    model.invalidate(reached, None if call.tool == "write_all" else call.key)
    for crash in cache_crashes:
        if crash.view not in reached:
            wrong(f"a write crashed the cache of {crash.view}, which it does not reach")
        model.hosts[crash.view].crash(now)
    if reached:
        model.count_invalidation(reached[0])  # "global", or the session itself


def summary(world: World) -> object:
    """What must be equal on asyncio and trio for one sequential program."""
    calls = [
        (
            c.call_id,
            c.tool,
            c.key,
            c.outcome,
            c.reply,
            c.result if c.write else None,
            type(c.error).__name__ if c.error is not None else None,
            getattr(c.error, "kind", None),
            c.verdict,
            tuple(c.own_loads),
            c.wrote,
        )
        for c in world.calls
    ]
    views = {
        name: (view.metrics, view.trace, [str(e) for e in view.log], view.gave_up)
        for name, view in world.views.items()
    }
    crashes = [(c.n, c.handler, c.view, c.call_id) for c in world.crashes]
    return calls, views, crashes, world.stats, world.delta
