"""Property tests of DESIGN.md invariants 1, 2, 3, 4 and 6, global scope.

Every test runs on asyncio and on trio (the ``anyio_backend`` fixture of
``conftest.py``); ``st.random_module()`` makes trio's scheduling seed part of
each example, so trio tries interleavings that asyncio's FIFO order never does.

The model
---------
`World` is a fake datastore: a dict of key -> version (the number of the write
that made it). Its reads and writes ``await`` a generated number of scheduler
checkpoints (and, in some tests, an `anyio.Event` gate), so loads and writes
overlap in generated ways. Three read tools over it are decorated with
`AgentCache` (one with a default argument, called in four equivalent ways; one
with ``maxsize=2``, so that it also evicts; one with ``ttl=0``, which stores
nothing but still shares running loads), and two write tools with
`AgentCacheInvalidator` (one ``clear_all``, one with a ``key_fn``). A load
returns ``Reply(key, version, load_id)``: what it read, and which run of the
loader read it; a load chosen to fail raises ``LoadError(key, load_id)``.

The world keeps a log on one logical clock (``tick``): every loader run and
every call, with their start and end ticks and two counters of their key as they
started. The *epoch* counts the invalidator calls of the key that have ended:
the library must invalidate by then (it does so in a ``finally``, with no
checkpoint before the caller resumes). The *marks* count the invalidator calls
of the key that have started or ended, every point where the library may
invalidate (before the write, after it, or both: the checks hold for each way).
A call's *floor* is the newest version of its key that a finished write
produced when it started. Invariants are then checked against this log:

1. single flight: no loader run starts while another run of the same (tool,
   key) started with the same marks is still running (no invalidation could
   have come between them); a call that starts while a load of its (tool, key)
   with the same marks runs joins it, so gets that load's answer;
2. no stale read: a read returns a version >= its floor, from a load that
   started in the read's epoch or later (after every write that had ended when
   the read started);
3. no stranded callers: every scenario ends within ``fail_after(10)``, and no
   call sees a cancellation unless its own cancel scope was cancelled;
4. errors are not cached: an error reaches only calls that started before the
   failed load ended (so the next call loads again), and every caller that
   joined a failed load gets that load's error;
6. metrics add up: hits + misses + coalesced == calls made, loads == loader
   runs, invalidations == write calls, and the process-wide figures moved by
   exactly this runtime's.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_cache import AgentCache, AgentCacheInvalidator, Args, Runtime, get_metrics

pytestmark = pytest.mark.anyio

RESOURCE = "test_cache_properties.docs"
KEYS = ("a", "b", "c")
SCENARIO_TIMEOUT = 10

# Half the loaded profile's max_examples (conftest.py: 'ci' 200, 'long' 5000),
# so that the file stays well under a minute in 'ci' while 'long' still digs
# deeper. The five random-program tests run the same kind of programs, so
# together they still try many. Run 'long' with `--timeout=0`: a test may take
# minutes.
half_the_profile = settings(max_examples=max(1, settings().max_examples // 2))


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
    """A write chosen to fail."""


# -- the log -------------------------------------------------------------------


@dataclass
class LoadRecord:
    """One run of a read tool's body (a loader run)."""

    load_id: int
    tool: str
    key: str
    epoch: int
    marks: int
    start: int
    end: int = -1
    version: int = -1  # what it read, once it has
    outcome: Literal["running", "ok", "error", "cancelled"] = "running"


@dataclass
class CallRecord:
    """One call of a decorated tool, as its caller saw it."""

    call_id: int
    tool: str
    key: str
    start: int
    epoch: int
    marks: int
    floor: int
    end: int = -1
    outcome: Literal["running", "ok", "error", "cancelled", "stray-cancel"] = "running"
    reply: Reply | None = None
    error: BaseException | None = None
    cancel_requested: bool = False

    def __str__(self) -> str:
        got = self.reply if self.outcome == "ok" else self.error
        return (
            f"call {self.call_id} {self.tool}({self.key!r}) ticks {self.start}..{self.end} "
            f"epoch {self.epoch} marks {self.marks} floor {self.floor}: "
            f"{self.outcome} {got!r}"
        )


# -- the program -----------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """Call read tool ``tool`` on ``key``, in call form ``form``."""

    tool: int
    key: str
    form: int
    cancel_after: int | None


@dataclass(frozen=True)
class Write:
    """Call the write tool ``tool`` (0: key_fn, 1: clear_all) on ``key``."""

    tool: int
    key: str
    fail: Literal["before", "after"] | None
    cancel_after: int | None


@dataclass(frozen=True)
class Burst:
    """Make these reads concurrently (one agent fanning out), wait for all."""

    reads: tuple[Read, ...]


@dataclass(frozen=True)
class Pause:
    """Let ``n`` scheduler checkpoints go by."""

    n: int


Step: TypeAlias = Read | Write | Burst | Pause


@dataclass(frozen=True)
class Plan:
    """How the fake behaves: pause lengths (used in turn), loads that fail."""

    delays: tuple[int, ...] = (1,)
    failing_loads: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Program:
    """Agents run concurrently; each runs its steps in order."""

    agents: tuple[tuple[Step, ...], ...]
    plan: Plan


# -- the world -------------------------------------------------------------------


_world: contextvars.ContextVar[World] = contextvars.ContextVar("test_cache_properties_world")


class World:
    """The fake datastore, its log, and the agents that drive the tools."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.clock = 0
        self.version = 0
        self.store = dict.fromkeys(KEYS, 0)
        self.epoch = dict.fromkeys(KEYS, 0)
        self.marks = dict.fromkeys(KEYS, 0)
        self.floor = dict.fromkeys(KEYS, 0)
        self.loads: list[LoadRecord] = []
        self.calls: list[CallRecord] = []
        self.running: dict[tuple[str, str], list[LoadRecord]] = {}
        self.written: dict[int, int] = {}  # write call id -> version it wrote
        self.flight_violations: list[str] = []
        self.gate: anyio.Event | None = None
        self.entered = 0  # calls that have been made (before their first await)
        self._pauses = itertools.count()
        self.deadline: anyio.CancelScope | None = None
        self.stats: dict[str, float] = {}
        self.global_delta: dict[str, float] = {}

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    async def pause(self) -> None:
        delays = self.plan.delays
        for _ in range(delays[next(self._pauses) % len(delays)]):
            await anyio.lowlevel.checkpoint()

    def write_started(self, key: str | None) -> None:
        """An invalidator call of ``key`` (None: every key) starts."""
        for k in KEYS if key is None else (key,):
            self.marks[k] += 1

    def write_ended(self, key: str | None) -> None:
        """An invalidator call of ``key`` (None: every key) has ended."""
        for k in KEYS if key is None else (key,):
            self.marks[k] += 1
            self.epoch[k] += 1

    # -- the datastore, as the tools see it ------------------------------------

    async def load(self, tool: str, key: str) -> Reply:
        load = LoadRecord(len(self.loads), tool, key, self.epoch[key], self.marks[key], self.tick())
        self.loads.append(load)
        running = self.running.setdefault((tool, key), [])
        for other in running:
            if other.marks == load.marks:
                self.flight_violations.append(
                    f"load {load.load_id} of {tool}({key!r}) started at tick {load.start} "
                    f"while load {other.load_id}, started at tick {other.start} with no "
                    "invalidator call of the key starting or ending in between, still ran"
                )
        running.append(load)
        try:
            await self.pause()
            version = load.version = self.store[key]
            await self.pause()
            if self.gate is not None:
                await self.gate.wait()
            if load.load_id in self.plan.failing_loads:
                load.outcome = "error"
                raise LoadError(key, load.load_id)
            load.outcome = "ok"
            return Reply(key, version, load.load_id)
        finally:
            if load.outcome == "running":
                load.outcome = "cancelled"
            running.remove(load)
            load.end = self.tick()

    async def write(self, key: str, call_id: int, fail: str | None) -> int:
        await self.pause()
        if fail == "before":
            raise WriteError(key)
        self.version += 1
        version = self.store[key] = self.written[call_id] = self.version
        await self.pause()
        if fail == "after":
            raise WriteError(key)
        return version

    # -- the agents ------------------------------------------------------------

    def new_call(self, tool: str, key: str) -> CallRecord:
        call = CallRecord(
            len(self.calls),
            tool,
            key,
            self.tick(),
            self.epoch[key],
            self.marks[key],
            self.floor[key],
        )
        self.calls.append(call)
        self.entered += 1
        return call

    async def cancel_later(self, scope: anyio.CancelScope, n: int, call: CallRecord) -> None:
        for _ in range(n):
            await anyio.lowlevel.checkpoint()
        if call.end < 0:
            call.cancel_requested = True
            scope.cancel()

    async def call(
        self,
        tool: str,
        key: str,
        invoke: Callable[[CallRecord], Awaitable[Reply | int]],
        cancel_after: int | None,
        tg: anyio.abc.TaskGroup | None,
    ) -> CallRecord:
        """Make one call in its own cancel scope and log what its caller sees."""
        scope = anyio.CancelScope()
        call = self.new_call(tool, key)
        if cancel_after is not None:
            assert tg is not None
            tg.start_soon(self.cancel_later, scope, cancel_after, call)
        with scope:
            try:
                result = await invoke(call)
            except (LoadError, WriteError) as exc:
                call.outcome = "error"
                call.error = exc
            except anyio.get_cancelled_exc_class() as exc:
                call.error = exc
                outer = self.deadline is not None and self.deadline.cancel_called
                if not scope.cancel_called and not outer:
                    # Not ours: a cancellation escaped someone else's load.
                    call.outcome = "stray-cancel"
                    return call
                call.outcome = "cancelled"
                raise
            else:
                call.outcome = "ok"
                if isinstance(result, Reply):
                    call.reply = result
            finally:
                call.end = self.tick()
        return call

    async def read(self, step: Read, tg: anyio.abc.TaskGroup | None = None) -> CallRecord:
        tool, call_form = READ_FORMS[step.tool]
        return await self.call(
            tool,
            step.key,
            lambda call: call_form[step.form % len(call_form)](step.key),
            step.cancel_after,
            tg,
        )

    async def write_call(self, step: Write, tg: anyio.abc.TaskGroup | None) -> CallRecord:
        name, writer = WRITERS[step.tool]

        covers = None if step.tool == 1 else step.key

        async def invoke(call: CallRecord) -> int:
            self.write_started(covers)
            try:
                return await writer(step.key, call.call_id, step.fail)
            finally:
                # The invalidator has invalidated on its way out; no checkpoint
                # has passed since.
                self.write_ended(covers)
                version = self.written.get(call.call_id)
                if version is not None:
                    self.floor[step.key] = max(self.floor[step.key], version)

        return await self.call(name, step.key, invoke, step.cancel_after, tg)

    async def run_agent(self, steps: tuple[Step, ...], tg: anyio.abc.TaskGroup) -> None:
        for step in steps:
            if isinstance(step, Read):
                await self.read(step, tg)
            elif isinstance(step, Write):
                await self.write_call(step, tg)
            elif isinstance(step, Burst):
                async with anyio.create_task_group() as burst:
                    for read in step.reads:
                        burst.start_soon(self.read, read, tg)
            else:
                for _ in range(step.n):
                    await anyio.lowlevel.checkpoint()

    # -- views of the log ------------------------------------------------------

    @property
    def reads(self) -> list[CallRecord]:
        return [c for c in self.calls if c.tool in READ_TOOLS]

    @property
    def writes(self) -> list[CallRecord]:
        return [c for c in self.calls if c.tool not in READ_TOOLS]

    def joined(self, load: LoadRecord) -> list[CallRecord]:
        """Calls that must have joined ``load``: they started while it ran, with its marks.

        While a load runs its flight is the only state the cache has for its
        key (an entry is made only when the flight completes), and only an
        invalidation detaches it, which can only happen where the marks change.
        """
        return [
            c
            for c in self.reads
            if c.tool == load.tool
            and c.key == load.key
            and load.start < c.start < load.end
            and c.marks == load.marks
        ]

    def report(self) -> str:
        lines = [f"loads: {[str(load) for load in self.loads]}"]
        lines += [str(c) for c in self.calls]
        return "\n".join(lines)


# -- the tools -------------------------------------------------------------------


@AgentCache(resource=RESOURCE)
async def read_doc(key: str, fmt: str = "plain") -> Reply:
    """A read tool with a default argument: four call forms, one cache key."""
    return await _world.get().load("read_doc", key)


@AgentCache(resource=RESOURCE, maxsize=2)
async def read_small(key: str) -> Reply:
    """A read tool whose cache holds two entries, so it evicts."""
    return await _world.get().load("read_small", key)


@AgentCache(resource=RESOURCE, ttl=0)
async def read_live(key: str) -> Reply:
    """A read tool that stores nothing but still shares running loads."""
    return await _world.get().load("read_live", key)


@AgentCacheInvalidator(resource=RESOURCE, key_fn=lambda args, kwargs: Args(args[0]))
async def write_doc(key: str, call_id: int, fail: str | None) -> int:
    """A write that invalidates the reads of its key only."""
    return await _world.get().write(key, call_id, fail)


@AgentCacheInvalidator(resource=RESOURCE)
async def write_all(key: str, call_id: int, fail: str | None) -> int:
    """A write that invalidates the whole resource."""
    return await _world.get().write(key, call_id, fail)


READ_FORMS: tuple[tuple[str, tuple[Callable[[str], Awaitable[Reply]], ...]], ...] = (
    (
        "read_doc",
        (
            lambda k: read_doc(k),
            lambda k: read_doc(k, "plain"),
            lambda k: read_doc(key=k),
            lambda k: read_doc(k, fmt="plain"),
        ),
    ),
    ("read_small", (lambda k: read_small(k), lambda k: read_small(key=k))),
    ("read_live", (lambda k: read_live(k),)),
)
READ_TOOLS = frozenset(name for name, _ in READ_FORMS)
WRITERS = (("write_doc", write_doc), ("write_all", write_all))

METRIC_KEYS = ("hits", "misses", "coalesced", "loads", "invalidations", "calls")


async def run(world: World, body: Callable[[anyio.abc.TaskGroup], Awaitable[None]]) -> World:
    """Run ``body`` in a fresh runtime under the deadline; record the metrics."""
    token = _world.set(world)
    try:
        async with Runtime() as rt:
            before = get_metrics(RESOURCE)
            try:
                with anyio.fail_after(SCENARIO_TIMEOUT) as world.deadline:
                    async with anyio.create_task_group() as tg:
                        await body(tg)
            except TimeoutError:
                stranded = [str(c) for c in world.calls if c.end < 0]
                if not stranded:
                    raise AssertionError(
                        f"the scenario took over {SCENARIO_TIMEOUT} s although every call "
                        "ended: a very slow machine, or a task of the test that never ends"
                    ) from None
                raise AssertionError(
                    "invariant 3: stranded callers:\n" + "\n".join(stranded)
                ) from None
            world.stats = rt.statistics(RESOURCE)
            after = get_metrics(RESOURCE)
            world.global_delta = {k: after[k] - before[k] for k in METRIC_KEYS}
    finally:
        _world.reset(token)
    return world


async def run_program(program: Program) -> World:
    world = World(program.plan)

    async def body(tg: anyio.abc.TaskGroup) -> None:
        for steps in program.agents:
            tg.start_soon(world.run_agent, steps, tg)

    return await run(world, body)


# -- strategies --------------------------------------------------------------------

keys = st.sampled_from(KEYS)
cancel_after = st.none() | st.integers(0, 8)

reads = st.builds(
    Read,
    tool=st.integers(0, len(READ_FORMS) - 1),
    key=keys,
    form=st.integers(0, 3),
    cancel_after=cancel_after,
)
writes = st.builds(
    Write,
    tool=st.integers(0, 1),
    key=keys,
    fail=st.sampled_from([None, None, "before", "after"]),
    cancel_after=cancel_after,
)
bursts = st.builds(
    lambda tool, key, forms, cancels: Burst(
        tuple(Read(tool, key, f, c) for f, c in zip(forms, cancels, strict=False))
    ),
    tool=st.integers(0, len(READ_FORMS) - 1),
    key=keys,
    forms=st.lists(st.integers(0, 3), min_size=2, max_size=8),
    cancels=st.lists(cancel_after, min_size=8, max_size=8),
)
steps: st.SearchStrategy[Step] = st.one_of(
    reads, reads, writes, bursts, st.builds(Pause, n=st.integers(0, 4))
)
delays = st.lists(st.integers(0, 4), min_size=1, max_size=8).map(tuple)
plans = st.builds(
    Plan,
    delays=delays,
    failing_loads=st.frozensets(st.integers(0, 30), max_size=6),
)
programs = st.builds(
    Program,
    agents=st.lists(st.lists(steps, max_size=6).map(tuple), min_size=1, max_size=8).map(tuple),
    plan=plans,
)


# -- checks ------------------------------------------------------------------------


def check_single_flight(world: World) -> None:
    assert not world.flight_violations, "invariant 1:\n" + "\n".join(world.flight_violations)
    for load in world.loads:
        for call in world.joined(load):
            if call.outcome == "cancelled" or load.outcome == "cancelled":
                continue
            got = call.reply.load_id if call.reply else getattr(call.error, "load_id", None)
            assert got == load.load_id, (
                f"invariant 1: {call} started while load {load} ran, so joined it, "
                f"but got the answer of load {got}"
            )


def check_no_stale_reads(world: World) -> None:
    for call in world.reads:
        if call.reply is None:
            continue
        load = world.loads[call.reply.load_id]
        assert call.reply.key == call.key
        assert call.reply.version >= call.floor, (
            f"invariant 2: {call} returned version {call.reply.version}, older than "
            f"{call.floor}, written by a write that had finished when it started"
        )
        assert load.epoch >= call.epoch, (
            f"invariant 2: {call} got the value of {load}, a load that began before "
            "an invalidation that happened before the call started"
        )


def check_no_stranded_callers(world: World) -> None:
    # Stranded callers fail `run` itself, by the deadline.
    for call in world.calls:
        assert call.end >= 0, f"invariant 3: {call} never finished"
        assert call.outcome != "stray-cancel", (
            f"invariant 3: {call} got a cancellation that was not its own"
        )
        if call.outcome == "cancelled":
            assert call.cancel_requested


def check_errors_not_cached(world: World) -> None:
    for call in world.reads:
        if call.outcome != "error":
            continue
        assert isinstance(call.error, LoadError)
        load = world.loads[call.error.load_id]
        assert (load.tool, load.key, load.outcome) == (call.tool, call.key, "error")
        assert call.start < load.end, (
            f"invariant 4: {call} started after {load} had failed, yet got its error: "
            "the error was cached"
        )
    for load in world.loads:
        if load.outcome != "error":
            continue
        for call in world.joined(load):
            if call.outcome == "cancelled":
                continue
            assert isinstance(call.error, LoadError), (
                f"invariant 4: {call} joined the failed {load} but did not get its error"
            )
            assert call.error.load_id == load.load_id


def check_metrics(world: World) -> None:
    stats = world.stats
    calls = len(world.reads)
    assert stats["hits"] + stats["misses"] + stats["coalesced"] == calls, (stats, calls)
    assert stats["calls"] == calls
    assert stats["loads"] == len(world.loads), (stats, len(world.loads))
    assert stats["invalidations"] == len(world.writes)
    assert world.global_delta == {k: stats[k] for k in METRIC_KEYS}, (
        "invariant 6: the process-wide figures are not the sum of their parts",
        world.global_delta,
        stats,
    )


# -- random programs -----------------------------------------------------------------


@half_the_profile
@given(program=programs, rnd=st.random_module())
async def test_invariant_1_single_flight_random_programs(program: Program, rnd: Any) -> None:
    world = await run_program(program)
    check_single_flight(world)


@half_the_profile
@given(program=programs, rnd=st.random_module())
async def test_invariant_2_no_stale_read_after_write_random_programs(
    program: Program, rnd: Any
) -> None:
    world = await run_program(program)
    check_no_stale_reads(world)


@half_the_profile
@given(program=programs, rnd=st.random_module())
async def test_invariant_3_no_stranded_callers_random_programs(program: Program, rnd: Any) -> None:
    world = await run_program(program)
    check_no_stranded_callers(world)


@half_the_profile
@given(program=programs, rnd=st.random_module())
async def test_invariant_4_errors_not_cached_random_programs(program: Program, rnd: Any) -> None:
    world = await run_program(program)
    check_errors_not_cached(world)


@half_the_profile
@given(program=programs, rnd=st.random_module())
async def test_invariant_6_metrics_add_up_random_programs(program: Program, rnd: Any) -> None:
    world = await run_program(program)
    check_metrics(world)


# -- focused scenarios -----------------------------------------------------------------


async def fan_out(world: World, tg: anyio.abc.TaskGroup, steps: list[Read]) -> None:
    """Start one caller per step, all on the load gate, and open it once all are in."""
    world.gate = gate = anyio.Event()
    for step in steps:
        tg.start_soon(world.read, step, tg)
    while world.entered < len(steps):
        await anyio.lowlevel.checkpoint()
    gate.set()


@half_the_profile
@given(
    forms=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    plan=st.builds(Plan, delays=delays),
    rnd=st.random_module(),
)
async def test_invariant_1_single_flight_cold_key_fan_out(
    forms: list[int], plan: Plan, rnd: Any
) -> None:
    """N concurrent callers of a cold key, in any call form: one loader run."""
    steps = [Read(0, "a", form, None) for form in forms]
    world = World(plan)
    await run(world, lambda tg: fan_out(world, tg, steps))
    assert len(world.loads) == 1, world.report()
    assert {c.reply for c in world.calls} == {Reply("a", 0, 0)}
    assert world.stats["misses"] == 1
    assert world.stats["coalesced"] == len(forms) - 1
    check_single_flight(world)
    check_metrics(world)


@half_the_profile
@given(
    cancels=st.lists(st.none() | st.integers(0, 6), min_size=1, max_size=30),
    plan=st.builds(Plan, delays=delays),
    rnd=st.random_module(),
)
async def test_invariant_3_cancelled_callers_never_strand_the_others(
    cancels: list[int | None], plan: Plan, rnd: Any
) -> None:
    """Callers of one cold key, any of them (the leader too) cancelled at any point."""
    steps = [Read(1, "a", 0, cancel) for cancel in cancels]
    world = World(plan)
    await run(world, lambda tg: fan_out(world, tg, steps))
    check_no_stranded_callers(world)
    check_single_flight(world)
    for call in world.calls:
        if call.outcome != "cancelled":
            assert call.reply is not None, world.report()
            assert (call.reply.key, call.reply.version) == ("a", 0)
    requested = sum(c.cancel_requested for c in world.calls)
    assert len(world.loads) <= 1 + requested, world.report()
    check_metrics(world)


@half_the_profile
@given(
    n=st.integers(1, 30),
    again=st.integers(1, 5),
    plan=st.builds(Plan, delays=delays),
    rnd=st.random_module(),
)
async def test_invariant_4_failed_load_error_reaches_every_waiter_and_is_not_cached(
    n: int, again: int, plan: Plan, rnd: Any
) -> None:
    """N callers of a failing load all get its error; later calls load again."""
    plan = Plan(plan.delays, failing_loads=frozenset(range(again)))
    world = World(plan)

    first: list[CallRecord] = []

    async def body(tg: anyio.abc.TaskGroup) -> None:
        await fan_out(world, tg, [Read(0, "b", 0, None) for _ in range(n)])
        while any(c.end < 0 for c in world.calls):
            await anyio.lowlevel.checkpoint()
        first.extend(world.calls)
        world.gate = None
        for _ in range(again):
            await world.read(Read(0, "b", 0, None))

    await run(world, body)
    for call in first:
        assert isinstance(call.error, LoadError), world.report()
        assert call.error.load_id == 0
    # Loads 1 .. again-1 failed too, each a fresh load; load `again` succeeded.
    assert len(world.loads) == 1 + again, world.report()
    assert world.calls[-1].reply == Reply("b", 0, again)
    check_errors_not_cached(world)


@half_the_profile
@given(
    writer=st.integers(0, 1),
    read_tool=st.integers(0, len(READ_FORMS) - 1),
    release=st.sampled_from(["during", "after"]),
    plan=st.builds(Plan, delays=delays),
    rnd=st.random_module(),
)
async def test_invariant_2_load_running_across_a_write_is_never_served_after_it(
    writer: int, read_tool: int, release: str, plan: Plan, rnd: Any
) -> None:
    """A load that read the old data before a write is not served to later reads.

    Reader 1 starts a load that reads version 0 and then waits on a gate; a
    write to the key runs and returns; reader 2 starts (during reader 1's load,
    or after it ended) and must see the write, as must reader 3 afterwards.
    """
    world = World(plan)
    key = "c"

    async def body(tg: anyio.abc.TaskGroup) -> None:
        world.gate = gate = anyio.Event()
        first: list[CallRecord] = []

        async def reader_1() -> None:
            first.append(await world.read(Read(read_tool, key, 0, None)))

        tg.start_soon(reader_1)
        # Let the load read the store, then write while it holds the old version.
        while not world.loads or world.loads[0].version < 0:
            await anyio.lowlevel.checkpoint()
        await world.write_call(Write(writer, key, None, None), None)
        if release == "after":
            gate.set()
            while not first:
                await anyio.lowlevel.checkpoint()
        else:

            async def open_gate() -> None:
                gate.set()

            tg.start_soon(open_gate)
        await world.read(Read(read_tool, key, 0, None))
        while not first:
            await anyio.lowlevel.checkpoint()
        await world.read(Read(read_tool, key, 0, None))

    await run(world, body)
    check_no_stale_reads(world)
    check_single_flight(world)
    check_metrics(world)
    assert world.calls[-1].reply is not None
    assert world.calls[-1].reply.version == 1, world.report()


# -- regressions -----------------------------------------------------------------------


async def test_invariant_4_each_waiter_gets_the_error_with_its_own_traceback() -> None:
    """Waiters of one failed load each get its error, with their own traceback only.

    Like `asyncio.Future.result`, which re-raises with the traceback it saved,
    a waiter's traceback holds its own frames and the load's, not those of
    every waiter that raised the same error before it (that kept all their
    frames alive, and made logging N waiters' errors cost O(N**2)). Regression:
    the k-th waiter's error carried the frames of the k-1 before it, because
    every waiter re-raised the one exception object as it stood.
    """
    world = World(Plan((1,), failing_loads=frozenset({0})))
    seen: list[int] = []

    async def waiter() -> None:
        try:
            await read_doc("a")
        except LoadError as exc:
            tb, own_frames = exc.__traceback__, 0
            while tb is not None:
                own_frames += tb.tb_frame.f_code is waiter.__code__
                tb = tb.tb_next
            seen.append(own_frames)

    async def body(tg: anyio.abc.TaskGroup) -> None:
        world.gate = gate = anyio.Event()
        for _ in range(5):
            tg.start_soon(waiter)
        while not world.loads:
            await anyio.lowlevel.checkpoint()
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        gate.set()

    await run(world, body)
    assert len(world.loads) == 1
    assert seen == [1] * 5, seen
