"""Model-based concurrency and fault-injection suite (DESIGN.md invariants 1-9).

Hypothesis generates *programs*: several agents running at once, each a list
of steps -- reads of four real `AgentCache` tools (global scope with LRU
pressure, with a TTL, with ttl=0, and session scope), writes through three
real `AgentCacheInvalidator` tools (one key, clear-all, session-scoped),
concurrent bursts of reads, pauses, moves of the runtime's fake clock, and
`AgentCacheSession` blocks with random loop limits and ``on_loop``. A plan of
faults goes with each program: how many scheduler checkpoints each await in
the fake datastore takes, which loads fail, which mutations fail (before or
after changing the data), which callers (or whole sessions) are cancelled and
after how many checkpoints, which actor handler calls crash, and the
runtime's restart intensity. `harness.World` runs it and logs everything;
`harness.check_all` holds the log against the invariants and the reference
model of ``reference.py``. See docs/TESTING.md for how to run and replay.

Every test runs on asyncio (debug mode) and trio. ``st.random_module()`` makes
trio's scheduling seed part of each example, so trio explores interleavings
asyncio's FIFO scheduling never produces.
"""

from __future__ import annotations

import os
from typing import Any, TypeAlias

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_cache.actors.loop_detector import LoopDetector, LoopLimits, ToolSite

from .harness import (
    KEYS,
    READS,
    WRITES,
    Advance,
    Burst,
    Limits,
    Pause,
    Plan,
    Program,
    Read,
    Session,
    Step,
    World,
    Write,
    check_all,
    check_sequential,
    summary,
)
from .reference import LoopReference, LoopRules, Site

# Shares of the loaded profile's max_examples (tests/conftest.py: "ci" 200,
# "long" 5000), so the suite stays under two minutes in "ci" and "long" digs
# 25 times deeper. "long" has no per-test timeout: a test may take many minutes.
PROFILE = os.environ.get("AGENT_CACHE_PROFILE", "ci")
EXAMPLES = settings().max_examples
pytestmark = pytest.mark.timeout(0 if PROFILE == "long" else 300)


def share(fraction: float) -> settings:
    return settings(max_examples=max(10, int(EXAMPLES * fraction)))


# -- strategies -------------------------------------------------------------------------
#
# Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): each program first
# draws which features it uses -- which read and write tools, how many keys,
# whether the clock moves, whether sessions open, whether callers are
# cancelled -- and then only those. Programs that leave most features out press
# much harder on the ones they keep (two keys and one LRU tool hit, evict and
# reload the same entries again and again), where one uniform mix dilutes
# everything.

cancel_after = st.none() | st.integers(0, 8)
fails = st.sampled_from([None, None, None, "before", "after"])
advances = st.builds(Advance, seconds=st.sampled_from([0.5, 4.0, 11.0]))
limits = st.builds(
    Limits,
    on_loop=st.sampled_from(["raise", "warn", "short_circuit"]),
    max_tool_repeats=st.integers(1, 4),
    max_execution_depth=st.integers(3, 40),
    max_cycle_length=st.integers(1, 4),
    cycle_repeats=st.integers(2, 3),
    repeat_window=st.none() | st.integers(1, 6),
    trace_limit=st.integers(0, 8),
)


def plans(crashes: st.SearchStrategy[Crashes]) -> st.SearchStrategy[Plan]:
    return st.builds(
        Plan,
        delays=st.lists(st.integers(0, 3), min_size=1, max_size=6).map(tuple),
        failing_loads=st.frozensets(st.integers(0, 40), max_size=5),
        crashes=crashes,
        restart_intensity=st.tuples(st.integers(0, 3), st.sampled_from([1.0, 30.0])),
    )


# (view, n): the n-th handler call of view 0 (the runtime's caches) or of the
# j-th session opened (view j + 1) crashes.
Crashes: TypeAlias = frozenset[tuple[int, int]]
no_crashes: st.SearchStrategy[Crashes] = st.just(frozenset())
sparse_crashes = st.frozensets(st.tuples(st.integers(0, 4), st.integers(0, 40)), max_size=3)
crash_storms = st.frozensets(
    st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=3, max_size=30
)


@st.composite
def programs(
    draw: st.DrawFn,
    *,
    concurrent: bool,
    crashes: st.SearchStrategy[Crashes],
    max_agents: int,
    max_steps: int,
    min_steps: int = 1,
) -> Program:
    """A program over a random subset of the features (see above)."""
    read_tools = draw(st.lists(st.sampled_from(sorted(READS)), min_size=1, unique=True))
    write_tools = draw(st.lists(st.sampled_from(sorted(WRITES)), unique=True))
    keys = st.sampled_from(KEYS[: draw(st.integers(1, len(KEYS)))])
    cancel = cancel_after if concurrent and draw(st.booleans()) else st.none()
    reads = st.builds(
        Read,
        tool=st.sampled_from(read_tools),
        key=keys,
        form=st.integers(0, 3),
        cancel_after=cancel,
    )
    simple: list[st.SearchStrategy[Step]] = [reads, reads, reads]
    if write_tools:
        simple.append(
            st.builds(
                Write, tool=st.sampled_from(write_tools), key=keys, fail=fails, cancel_after=cancel
            )
        )
    if draw(st.booleans()):
        simple.append(advances)
    if concurrent:
        simple.append(st.builds(Pause, n=st.integers(0, 4)))
        simple.append(
            st.builds(
                lambda tool, key, forms, cancels: Burst(
                    tuple(Read(tool, key, f, c) for f, c in zip(forms, cancels, strict=False))
                ),
                tool=st.sampled_from(read_tools),
                key=keys,
                forms=st.lists(st.integers(0, 3), min_size=2, max_size=6),
                cancels=st.lists(cancel, min_size=6, max_size=6),
            )
        )
    step = st.one_of(simple)
    if draw(st.booleans()):

        def sessions(inner: st.SearchStrategy[Step]) -> st.SearchStrategy[Step]:
            return st.builds(
                Session,
                steps=st.lists(inner, min_size=1, max_size=max_steps).map(tuple),
                limits=limits,
                cancel_after=cancel if concurrent else st.none(),
            )

        # Sessions, some holding a session of their own (independent of it).
        step = st.one_of(step, sessions(st.one_of(step, step, sessions(step))))
    agents = st.lists(step, min_size=min_steps, max_size=max_steps).map(tuple)
    return Program(
        draw(st.lists(agents, min_size=1, max_size=max_agents).map(tuple)),
        draw(plans(crashes)),
    )


swarms = programs(concurrent=True, crashes=sparse_crashes, max_agents=6, max_steps=10)
storms = programs(concurrent=True, crashes=crash_storms, max_agents=4, max_steps=8)
sequential_programs = programs(
    concurrent=False,
    crashes=no_crashes | sparse_crashes | crash_storms,
    max_agents=1,
    max_steps=40,
    min_steps=8,
)


# -- regressions: shrunk programs of bugs this suite found (see REGRESSIONS.md) -----------------

#: R1: the global caches crash past the restart intensity; then opening a
#: session raised ActorStoppedError (the sessions lived under the same
#: supervisor as the global caches, which gave up).
R1_SESSION_AFTER_GIVE_UP = Program(
    agents=(
        (
            Read(tool="read_lru", key="a"),
            Session(steps=(), limits=Limits(max_tool_repeats=1, max_execution_depth=3)),
        ),
    ),
    plan=Plan(delays=(0,), crashes=frozenset({(0, 0)}), restart_intensity=(0, 1.0)),
)

#: R2: with maxsize=2, two hits on both cached keys, then a miss on a third:
#: the read buffer was replayed after the new entry was stored, so the entry
#: just loaded was the least recently used and was evicted at once.
R2_LRU_EVICTS_THE_NEW_ENTRY = Program(
    agents=(
        (
            Read(tool="read_lru", key="a"),
            Read(tool="read_lru", key="a"),
            Read(tool="read_lru", key="a"),
            Read(tool="read_lru", key="a"),
            Read(tool="read_lru", key="b"),
            Read(tool="read_lru", key="b"),
            Read(tool="read_lru", key="c"),
            Read(tool="read_lru", key="c"),
        ),
    ),
    plan=Plan(delays=(0,), restart_intensity=(0, 1.0)),
)


#: R3: with ``repeat_window``, the detector judged a repeat on the count taken
#: before the call leaving the window was subtracted: one call too early.
R3_REPEAT_WINDOW_OFF_BY_ONE = Program(
    agents=(
        (
            Session(
                steps=(Read(tool="read_lru", key="a"), Read(tool="read_lru", key="a")),
                limits=Limits(max_tool_repeats=1, max_execution_depth=3, repeat_window=1),
            ),
        ),
    ),
    plan=Plan(delays=(0,), restart_intensity=(0, 1.0)),
)


# -- the swarm: invariants 1-9 on random concurrent programs ---------------------------------


@pytest.mark.anyio
@share(1.5)
@given(program=swarms, rnd=st.random_module())
@example(program=R1_SESSION_AFTER_GIVE_UP, rnd=None)
@example(program=R2_LRU_EVICTS_THE_NEW_ENTRY, rnd=None)
@example(program=R3_REPEAT_WINDOW_OFF_BY_ONE, rnd=None)
async def test_swarm(program: Program, rnd: Any) -> None:
    """Random agents, sessions, faults and cancellations: every invariant holds."""
    check_all(await World(program).run())


@pytest.mark.anyio
@share(0.75)
@given(program=storms, rnd=st.random_module())
async def test_crash_storm(program: Program, rnd: Any) -> None:
    """Many handler crashes, small restart intensities: a crash never fails or
    hangs a call (invariant 9's stand-in while there are no optional tiers),
    and the rest still holds."""
    check_all(await World(program).run())


# -- sequential programs: the exact reference model, and both backends agree ---------------


@share(1.5)
@given(program=sequential_programs)
@example(program=R1_SESSION_AFTER_GIVE_UP)
@example(program=R2_LRU_EVICTS_THE_NEW_ENTRY)
@example(program=R3_REPEAT_WINDOW_OFF_BY_ONE)
def test_sequential_programs_match_the_model_on_both_backends(program: Program) -> None:
    """One call at a time: answers, verdicts and figures are exactly the
    reference model's, and the same under asyncio and trio (invariant 7)."""
    results = []
    for backend, options in (("asyncio", {"debug": True}), ("trio", {})):
        world = anyio.run(World(program).run, backend=backend, backend_options=options)
        check_all(world)
        check_sequential(world)
        results.append(summary(world))
    assert results[0] == results[1], "invariant 7: asyncio and trio disagree"


@pytest.mark.anyio
async def test_regression_a_session_opens_after_the_global_caches_gave_up() -> None:
    """R1: past the restart intensity the global caches stop, and only they:
    tools run uncached, and sessions still open, record and detect loops."""
    world = await World(R1_SESSION_AFTER_GIVE_UP).run()
    check_all(world)
    assert world.views["global"].gave_up
    assert "s0" in world.views and not world.views["s0"].gave_up


@pytest.mark.anyio
async def test_regression_lru_keeps_the_entry_just_loaded() -> None:
    """R2: the value just loaded is the most recently used entry; the next
    call of the same key is a hit."""
    world = await World(R2_LRU_EVICTS_THE_NEW_ENTRY).run()
    check_all(world)
    check_sequential(world)
    last, before = world.calls[-1], world.calls[-2]
    assert not last.own_loads and last.reply == before.reply


@pytest.mark.anyio
async def test_regression_a_repeat_window_counts_only_the_calls_in_it() -> None:
    """R3: with ``repeat_window=1`` the same read twice in a row is one call in
    the window, not a repeat."""
    world = await World(R3_REPEAT_WINDOW_OFF_BY_ONE).run()
    check_all(world)
    assert [c.verdict for c in world.calls] == [None, None]


# -- fan-out: single flight in both scopes ---------------------------------------------------


@pytest.mark.anyio
@share(0.5)
@given(
    tool=st.sampled_from(["read_lru", "read_nostore", "sread"]),
    forms=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    cancels=st.lists(st.none() | st.none() | st.integers(0, 6), min_size=30, max_size=30),
    delays=st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple),
    rnd=st.random_module(),
)
async def test_fan_out_of_a_cold_key_runs_one_load(
    tool: str, forms: list[int], cancels: list[int | None], delays: tuple[int, ...], rnd: Any
) -> None:
    """N concurrent callers of a cold key, in one session for the
    session-scoped tool: one loader run, plus at most one more per cancelled
    caller; every caller that is not cancelled gets a value (invariants 1, 3)."""
    reads = tuple(Read(tool, "a", f, c) for f, c in zip(forms, cancels, strict=False))
    world = World(Program((), Plan(delays=delays)))

    async def body(tg: anyio.abc.TaskGroup) -> None:
        world.gate = gate = anyio.Event()
        fan_out: Step = Burst(reads)
        if tool == "sread":
            fan_out = Session((fan_out,), Limits(max_tool_repeats=100))
        tg.start_soon(world.run_steps, (fan_out,), (), tg)
        while len(world.calls) < len(reads):
            await anyio.lowlevel.checkpoint()
        gate.set()

    check_all(await world.run(body))
    cancelled = sum(c.cancel_requested for c in world.calls)
    assert 1 <= len(world.loads) <= 1 + cancelled, world.report()
    if not cancelled:
        assert len(world.loads) == 1
    for call in world.calls:
        if call.outcome != "cancelled":
            assert call.reply is not None and call.reply.version == 0, world.report()


# -- the reference of loop verdicts against the detector itself ---------------------------------

_SITES = {
    "get": (ToolSite(1, "get", "get", reads=("cart",)), Site("get", reads=("cart",))),
    "add": (ToolSite(2, "add", "add", writes=("cart",)), Site("add", writes=("cart",))),
    "find": (ToolSite(3, "find", "find", reads=("web",)), Site("find", reads=("web",))),
}


@share(1.0)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(_SITES)), st.integers(0, 2)) | st.just(("block", 0)),
        max_size=60,
    ),
    max_repeats=st.integers(1, 4),
    max_depth=st.integers(1, 50),
    window=st.none() | st.integers(1, 8),
    max_cycle=st.integers(1, 6),
    cycle_repeats=st.integers(2, 3),
    find_repeats=st.none() | st.integers(1, 6),
)
@example(  # R3
    calls=[("get", 0), ("get", 0)],
    max_repeats=1,
    max_depth=50,
    window=1,
    max_cycle=1,
    cycle_repeats=2,
    find_repeats=None,
)
def test_loop_reference_matches_the_detector(
    calls: list[tuple[str, int]],
    max_repeats: int,
    max_depth: int,
    window: int | None,
    max_cycle: int,
    cycle_repeats: int,
    find_repeats: int | None,
) -> None:
    """The quadratic reference and the O(1) detector agree on every verdict,
    windows, per-tool limits and blocked tools included (so the swarm's loop
    checks rest on a reference that is itself checked)."""
    overrides = {"find": find_repeats} if find_repeats is not None else {}
    detector = LoopDetector(
        LoopLimits(max_repeats, max_depth, window, max_cycle, cycle_repeats, 65_536, overrides),
        "s",
    )
    reference = LoopReference(
        LoopRules(max_repeats, max_depth, window, max_cycle, cycle_repeats, overrides)
    )
    last = "get"
    for name, key in calls:
        if name == "block":
            detector.block(_SITES[last][0].tool_id)
            reference.block(last)
            continue
        last = name
        event = detector.record(_SITES[name][0], (key,))
        expected = reference.record(_SITES[name][1], (key,))
        assert (event.kind if event else None) == expected, (name, key)
