"""Examples for AgentCacheSession: trace, loop detection, session scope."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from agent_cache import (
    AgentCache,
    AgentCacheInvalidator,
    AgentCacheSession,
    AgentLoopDetectedError,
    LoopEvent,
    Runtime,
    TraceEntry,
)

from ._faults import crash_next_lookup

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime() as rt:
        yield rt


class Backend:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.carts: dict[str, list[str]] = {}


@pytest.fixture
def backend() -> Backend:
    return Backend()


def tools(backend: Backend, scope: Any = "global") -> tuple[Any, Any, Any]:
    @AgentCache(resource="cart", scope=scope)
    async def get_cart(user_id: str, page: int = 1) -> list[str]:
        backend.calls.append(f"get_cart {user_id}")
        return list(backend.carts.get(user_id, []))

    @AgentCacheInvalidator(resource="cart", scope=scope)
    async def add_to_cart(user_id: str, item: str) -> None:
        backend.calls.append(f"add {user_id} {item}")
        backend.carts.setdefault(user_id, []).append(item)

    @AgentCache(resource="web", scope=scope)
    async def search(query: str) -> str:
        backend.calls.append(f"search {query}")
        return query.upper()

    return get_cart, add_to_cart, search


# -- the seed's behaviour -----------------------------------------------------


async def test_trace_records_calls_in_order_with_bound_arguments(
    runtime: Runtime, backend: Backend
) -> None:
    get_cart, add_to_cart, _ = tools(backend)
    async with AgentCacheSession() as session:
        await get_cart("u1")
        await get_cart("u1", page=1)
        await add_to_cart("u1", "book")
        await get_cart(user_id="u1")
    trace = session.get_execution_trace()
    assert [t.tool_name for t in trace] == [
        get_cart.__qualname__,
        get_cart.__qualname__,
        add_to_cart.__qualname__,
        get_cart.__qualname__,
    ]
    assert trace[0] == trace[1] == trace[3]
    assert isinstance(trace[0], TraceEntry)
    assert trace[0].args_key != trace[2].args_key
    metrics = session.get_metrics()
    assert (metrics["hits"], metrics["misses"], metrics["invalidations"]) == (1, 2, 1)
    assert metrics["hit_rate"] == pytest.approx(1 / 3)


async def test_session_ids_are_unique_by_default() -> None:
    assert AgentCacheSession().session_id != AgentCacheSession().session_id
    assert AgentCacheSession(session_id="run-7").session_id == "run-7"


async def test_raise_stops_the_call_and_keeps_refusing_the_tool(
    runtime: Runtime, backend: Backend
) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(session_id="s1", max_tool_repeats=2) as session:
        await search("q")
        await search("q")
        with pytest.raises(AgentLoopDetectedError) as info:
            await search("q")
        assert info.value.kind == "repeat"
        assert (info.value.tool, info.value.session, info.value.count) == ("search", "s1", 3)
        assert str(info.value) == (
            "agent loop detected in session s1: tool 'search' called 3 times with the same "
            "arguments and no write in between (limit: 2)"
        )
        # Even with new arguments the looping tool stays refused.
        with pytest.raises(AgentLoopDetectedError, match="already stopped for looping"):
            await search("other")
    assert backend.calls == ["search q"]
    assert session.looping
    assert [e.kind for e in session.loop_events] == ["repeat", "blocked"]
    assert session.get_metrics()["loop_detections"] == 2


async def test_warn_logs_and_goes_on(
    runtime: Runtime, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, search = tools(backend)
    with caplog.at_level(logging.WARNING, logger="agent_cache"):
        async with AgentCacheSession(
            session_id="s2", max_tool_repeats=1, on_loop="warn"
        ) as session:
            for _ in range(3):
                assert await search("q") == "Q"
    assert [r.getMessage() for r in caplog.records] == [
        "agent loop detected in session s2: tool 'search' called 2 times with the same "
        "arguments and no write in between (limit: 1)",
        "agent loop detected in session s2: tool 'search' called 3 times with the same "
        "arguments and no write in between (limit: 1)",
    ]
    assert session.get_metrics()["hits"] == 2


async def test_short_circuit_returns_the_cached_value_or_none(
    runtime: Runtime, backend: Backend
) -> None:
    get_cart, _, search = tools(backend)
    async with AgentCacheSession(max_tool_repeats=1, on_loop="short_circuit"):
        assert await search("q") == "Q"
        assert await search("q") == "Q"  # the loop: served from the cache, not run
        assert await get_cart("u9") == []
        # a looping tool whose value is not cached gets None
    async with AgentCacheSession(max_tool_repeats=1, on_loop="short_circuit") as s2:

        @AgentCache(resource="nocache", maxsize=0)
        async def ping() -> str:
            return "pong"

        assert await ping() == "pong"
        assert await ping() is None
    assert backend.calls == ["search q", "get_cart u9"]
    assert s2.looping


async def test_on_loop_callable_gets_the_event_and_decides(
    runtime: Runtime, backend: Backend
) -> None:
    _, _, search = tools(backend)
    seen: list[LoopEvent] = []

    def decide(event: LoopEvent) -> Any:
        seen.append(event)
        return None if len(seen) == 1 else "raise"

    async with AgentCacheSession(max_tool_repeats=1, on_loop=decide):
        await search("q")
        await search("q")  # detected, the callable lets it go
        with pytest.raises(AgentLoopDetectedError) as info:
            await search("q")
    assert [(e.kind, e.tool, e.arguments, e.count) for e in seen] == [
        ("repeat", "search", "q", 2),  # one parameter: the key is the value itself
        ("repeat", "search", "q", 3),
    ]
    assert info.value.event is seen[1]


async def test_on_loop_callable_must_return_an_action(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(max_tool_repeats=1, on_loop=lambda e: "stop"):  # type: ignore[arg-type,return-value]
        await search("q")
        with pytest.raises(ValueError, match=r"^on_loop callable must return 'raise', "):
            await search("q")


async def test_writes_restart_read_counts_and_cycles_see_arguments(
    runtime: Runtime, backend: Backend
) -> None:
    get_cart, add_to_cart, _ = tools(backend)
    async with AgentCacheSession(max_tool_repeats=2) as session:
        for item in "abcdefgh":  # read, write, read, write ... with new items: progress
            await get_cart("u1")
            await get_cart("u1")
            await add_to_cart("u1", item)
        assert not session.looping
        await get_cart("u1")
        await add_to_cart("u1", "z")
        await get_cart("u1")
        with pytest.raises(AgentLoopDetectedError) as info:
            await add_to_cart("u1", "z")  # the same pair, the same arguments
    assert info.value.kind == "cycle"
    assert info.value.event.pattern == ("get_cart", "add_to_cart")


async def test_depth_budget(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(max_execution_depth=3):
        for q in "abc":
            await search(q)
        with pytest.raises(AgentLoopDetectedError, match=r"execution depth exceeded: 4 calls > 3$"):
            await search("d")


async def test_per_tool_repeat_overrides(runtime: Runtime, backend: Backend) -> None:
    get_cart, _, search = tools(backend)
    async with AgentCacheSession(max_tool_repeats=1, tool_repeats={search: 3, "get_cart": 2}):
        for _ in range(3):
            await search("q")
        await get_cart("u")
        await get_cart("u")
        with pytest.raises(AgentLoopDetectedError):
            await get_cart("u")


async def test_sub_agents_share_one_trace(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    # (q0 q1 q2 q3 q0 q1 ... is a cycle by the rules: cycle checks are off here)
    async with AgentCacheSession(max_tool_repeats=100, max_cycle_length=1) as session:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(search, f"q{i % 4}")
    assert len(session.get_execution_trace()) == 20
    metrics = session.get_metrics()
    assert metrics["hits"] + metrics["misses"] + metrics["coalesced"] == 20
    assert metrics["misses"] == 4


async def test_nested_sessions_are_independent(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(max_tool_repeats=2) as parent:
        await search("q")
        async with AgentCacheSession(max_tool_repeats=2) as child:
            await search("q")
            await search("q")
        await search("q")  # the parent's 2nd call: the child's do not count here
    assert len(parent.get_execution_trace()) == 2
    assert len(child.get_execution_trace()) == 2
    assert not parent.looping and not child.looping


async def test_loop_detection_off_still_traces(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(loop_detection=False, max_tool_repeats=1) as session:
        for _ in range(5):
            await search("q")
    assert len(session.get_execution_trace()) == 5
    assert not session.looping


async def test_trace_is_bounded(runtime: Runtime, backend: Backend) -> None:
    _, _, search = tools(backend)
    async with AgentCacheSession(max_execution_depth=1000, trace_limit=10) as session:
        for i in range(100):
            await search(str(i))
    trace = session.get_execution_trace()
    assert len(trace) == 10
    assert trace[-1].args_key == "99"


# -- session scope ------------------------------------------------------------


async def test_session_scope_caches_privately_and_drops_at_exit(
    runtime: Runtime, backend: Backend
) -> None:
    _, _, search = tools(backend, scope="session")
    assert await search("q") == "Q"  # outside any session: just runs
    assert await search("q") == "Q"
    async with AgentCacheSession():
        await search("q")
        await search("q")
    async with AgentCacheSession():
        await search("q")
    assert backend.calls == ["search q"] * 4


async def test_session_scope_single_flight(runtime: Runtime) -> None:
    gate = anyio.Event()
    runs: list[int] = []

    @AgentCache(resource="r", scope="session")
    async def slow(x: int) -> int:
        runs.append(x)
        await gate.wait()
        return x

    async with AgentCacheSession(max_tool_repeats=100) as session:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(slow, 1)
            await wait_all_tasks_blocked()
            gate.set()
    assert runs == [1]
    assert session.get_metrics()["coalesced"] == 49


async def test_session_scoped_write_affects_only_its_session(
    runtime: Runtime, backend: Backend
) -> None:
    get_cart, add_to_cart, _ = tools(backend, scope="session")
    backend.carts["u1"] = ["a"]
    async with AgentCacheSession():
        await get_cart("u1")
        async with anyio.create_task_group() as tg:

            async def other_session() -> None:
                async with AgentCacheSession():
                    await get_cart("u1")
                    await add_to_cart("u1", "b")
                    assert await get_cart("u1") == ["a", "b"]

            tg.start_soon(other_session)
        # This session's entry was not touched by the other session's write.
        assert await get_cart("u1") == ["a"]


async def test_global_write_refreshes_session_entries(runtime: Runtime, backend: Backend) -> None:
    get_cart, _, _ = tools(backend, scope="session")
    _, add_global, _ = tools(backend, scope="global")
    backend.carts["u1"] = ["a"]
    async with AgentCacheSession():
        assert await get_cart("u1") == ["a"]
        await add_global("u1", "b")  # a global write reaches every session's entries
        assert await get_cart("u1") == ["a", "b"]


async def test_a_crashed_session_cache_restarts_and_the_call_is_served(
    runtime: Runtime, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, search = tools(backend, scope="session")
    crash_next_lookup(monkeypatch)
    async with AgentCacheSession(max_tool_repeats=10):
        with anyio.fail_after(5):
            assert await search("q") == "Q"  # met the crash: served uncached
            assert await search("q") == "Q"  # the restarted cache loads
            assert await search("q") == "Q"  # and now hits
    assert backend.calls == ["search q", "search q"]


# -- both backends give the same verdicts ---------------------------------------


def _verdicts(backend_name: str) -> list[str]:
    out: list[str] = []

    async def main() -> None:
        store = Backend()
        get_cart, add_to_cart, search = tools(store)
        program = [
            (get_cart, ("u1",)),
            (search, ("x",)),
            (add_to_cart, ("u1", "a")),
            (get_cart, ("u1",)),
            (add_to_cart, ("u1", "a")),
            (get_cart, ("u1",)),
            (add_to_cart, ("u1", "a")),
            (search, ("x",)),
            (search, ("x",)),
            (search, ("x",)),
        ]
        async with Runtime(), AgentCacheSession(max_tool_repeats=2):
            for tool, args in program:
                try:
                    result = await tool(*args)
                    out.append(f"ok {result!r}")
                except AgentLoopDetectedError as exc:
                    out.append(f"loop {exc.kind} {exc.tool}")

    anyio.run(main, backend=backend_name)
    return out


def test_the_same_calls_get_the_same_verdicts_on_both_backends() -> None:
    asyncio_verdicts = _verdicts("asyncio")
    assert asyncio_verdicts == _verdicts("trio")
    assert asyncio_verdicts == [
        "ok []",
        "ok 'X'",
        "ok None",
        "ok ['a']",
        "ok None",
        "loop cycle get_cart",  # add(a), get(u1) twice over
        "loop repeat add_to_cart",  # the 3rd identical write
        "ok 'X'",
        "loop repeat search",
        "loop blocked search",
    ]


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"on_loop": "stop"},
            ValueError,
            r"^AgentCacheSession: on_loop must be 'raise', 'warn' or 'short_circuit' or a "
            r"callable, not 'stop'$",
        ),
        (
            {"max_tool_repeats": 0},
            ValueError,
            r"^AgentCacheSession: max_tool_repeats must be >= 1, not 0$",
        ),
        (
            {"max_execution_depth": "50"},
            TypeError,
            r"^AgentCacheSession: max_execution_depth must be an int >= 1, not '50'$",
        ),
        ({"session_id": 3}, TypeError, r"^AgentCacheSession: session_id must be a str or None"),
        ({"tool_repeats": {3: 1}}, TypeError, r"^AgentCacheSession: tool_repeats keys must be"),
        (
            {"cycle_repeats": 1},
            ValueError,
            r"^AgentCacheSession: cycle_repeats must be >= 2, not 1$",
        ),
    ],
)
def test_bad_session_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AgentCacheSession(**kwargs)


async def test_a_session_is_entered_once(runtime: Runtime) -> None:
    session = AgentCacheSession()
    async with session:
        pass
    with pytest.raises(RuntimeError, match=r"can only be entered once$"):
        async with session:
            pass
