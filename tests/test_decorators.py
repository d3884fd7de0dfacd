"""Examples for AgentCache and AgentCacheInvalidator (global scope), both backends."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from agent_cache import AgentCache, AgentCacheInvalidator, Args, Runtime, get_metrics
from agent_cache.actors.resource_cache import ResourceCache, Snapshot

from ._faults import crash_next_lookup

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock the test moves by hand (TTLs without real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime() as rt:
        yield rt


class Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.calls)


# -- keys ---------------------------------------------------------------------


async def test_bound_arguments_make_one_key(runtime: Runtime) -> None:
    seen = Counter()

    @AgentCache(resource="search")
    async def search(query: str, page: int = 1, *, lang: str = "en") -> str:
        seen.calls.append((query, page, lang))
        return f"{query}:{page}:{lang}"

    results = {
        await search("q"),
        await search("q", 1),
        await search("q", page=1),
        await search(query="q"),
        await search(page=1, query="q", lang="en"),
        await search(lang="en", query="q"),
    }
    assert results == {"q:1:en"}
    assert len(seen) == 1
    assert await search("q", 2) == "q:2:en"
    assert len(seen) == 2


async def test_every_kind_of_parameter_reaches_the_tool_as_passed(runtime: Runtime) -> None:
    # The compiled wrapper calls the tool with its own parameters on a miss
    # (no repacking): positional-only, *args, keyword-only and **kwargs alike.
    seen: list[tuple[Any, ...]] = []

    @AgentCache(resource="r")
    async def tool(a: int, /, b: int = 2, *rest: int, c: int, d: int = 4, **more: int) -> str:
        seen.append((a, b, rest, c, d, more))
        return f"{a}{b}{rest}{c}{d}{sorted(more.items())}"

    for _ in range(2):  # a miss, led inline once the table is published, then a hit
        assert await tool(1, c=3) == "12()34[]"
        assert await tool(1, 5, 6, 7, c=3, e=8, d=9) == "15(6, 7)39[('e', 8)]"
    assert await tool(1, 2, c=3, d=4) == "12()34[]"  # the same call, bound
    assert seen == [(1, 2, (), 3, 4, {}), (1, 5, (6, 7), 3, 9, {"e": 8})]


async def test_unhashable_and_structured_arguments_are_keyed_by_value(runtime: Runtime) -> None:
    seen = Counter()

    class Color(enum.Enum):
        RED = 1

    @dataclasses.dataclass
    class Query:
        text: str
        tags: list[str]

    @AgentCache(resource="r")
    async def tool(*args: Any, **kwargs: Any) -> int:
        seen.calls.append(args)
        return len(seen)

    first = await tool([1, 2], {"a": {1, 2}}, Query("x", ["t"]), Color.RED, (1, [2]))
    again = await tool([1, 2], {"a": {2, 1}}, Query("x", ["t"]), Color.RED, (1, [2]))
    assert first == again == 1
    # A list and a tuple with the same items are different arguments.
    assert await tool((1, 2), {"a": {1, 2}}, Query("x", ["t"]), Color.RED, (1, [2])) == 2
    # kwargs order does not matter, values do.
    assert await tool(a=1, b=[2]) == await tool(b=[2], a=1) == 3


async def test_pydantic_models_are_keyed_by_value(runtime: Runtime) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        sku: str
        qty: int

    seen = Counter()

    @AgentCache(resource="r")
    async def price(item: Any) -> int:
        seen.calls.append(item)
        return 1

    await price(Item(sku="a", qty=1))
    await price(Item(sku="a", qty=1))
    assert len(seen) == 1


async def test_an_argument_that_cannot_be_keyed_is_named(runtime: Runtime) -> None:
    class Opaque:
        __hash__ = None  # type: ignore[assignment]

    @AgentCache(resource="r")
    async def tool(user: str, blob: object) -> None:
        return None

    with pytest.raises(
        TypeError,
        match=r"^tool: argument 'blob': "
        r"a test_an_argument_that_cannot_be_keyed_is_named.<locals>.Opaque cannot be part of a "
        r"cache key: it is not hashable and is not a list, dict, set, dataclass or pydantic "
        r"model$",
    ):
        await tool("u", Opaque())


async def test_skip_args_leaves_out_self(runtime: Runtime) -> None:
    seen = Counter()

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        @AgentCache(resource="crm", skip_args=1)
        async def lookup(self, customer: str) -> str:
            seen.calls.append((self.name, customer))
            return customer.upper()

    assert await Client("a").lookup("c1") == "C1"
    assert await Client("b").lookup("c1") == "C1"
    assert await Client("b").lookup(customer="c1") == "C1"
    assert len(seen) == 1


async def test_tools_with_the_same_qualname_never_share_entries(runtime: Runtime) -> None:
    def make(answer: int) -> Callable[[str], typing.Awaitable[int]]:
        @AgentCache(resource="r")
        async def tool(x: str) -> int:
            return answer

        return tool

    one, two = make(1), make(2)
    assert one.__qualname__ == two.__qualname__  # type: ignore[attr-defined]
    assert (await one("k"), await two("k")) == (1, 2)


async def test_wrong_arguments_fail_like_the_tool_would(runtime: Runtime) -> None:
    @AgentCache(resource="r")
    async def get_cart(user_id: str) -> str:
        return user_id

    with pytest.raises(TypeError, match=r"get_cart\(\) missing 1 required positional argument"):
        await get_cart()  # type: ignore[call-arg]


# -- the wrapper --------------------------------------------------------------


async def _documented(user_id: str, limit: int = 10) -> list[str]:
    """Return the cart."""
    return [user_id] * limit


def test_wrapper_keeps_the_tools_identity() -> None:
    tool = AgentCache(resource="cart", scope="global")(_documented)
    assert tool.__name__ == "_documented"  # type: ignore[attr-defined]
    assert tool.__qualname__ == "_documented"  # type: ignore[attr-defined]
    assert tool.__doc__ == "Return the cart."
    assert tool.__module__ == __name__
    assert tool.__wrapped__ is _documented  # type: ignore[attr-defined]
    assert (tool.resource, tool.scope) == ("cart", "global")
    assert inspect.iscoroutinefunction(tool)
    assert inspect.signature(tool) == inspect.signature(_documented)
    assert typing.get_type_hints(tool) == {"user_id": str, "limit": int, "return": list[str]}


def test_invalidator_keeps_the_tools_identity() -> None:
    tool = AgentCacheInvalidator(resource=["cart", "totals"])(_documented)
    assert tool.__name__ == "_documented"  # type: ignore[attr-defined]
    assert tool.__doc__ == "Return the cart."
    assert tool.resources == ("cart", "totals")
    assert inspect.iscoroutinefunction(tool)
    assert inspect.signature(tool) == inspect.signature(_documented)


# -- bad input at decoration (invariant 10) -----------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"resource": 3}, TypeError, r"^AgentCache: resource must be a str, not int$"),
        ({"resource": ""}, ValueError, r"^AgentCache: resource must be a non-empty str$"),
        (
            {"resource": "r", "scope": "user"},
            ValueError,
            r"^AgentCache: scope must be 'global' or 'session', not 'user'$",
        ),
        (
            {"resource": "r", "ttl": -1},
            ValueError,
            r"^AgentCache: ttl must be >= 0 seconds or None, not -1$",
        ),
        (
            {"resource": "r", "ttl": "60"},
            TypeError,
            r"^AgentCache: ttl must be a number of seconds >= 0 or None, not '60'$",
        ),
        (
            {"resource": "r", "maxsize": -1},
            ValueError,
            r"^AgentCache: maxsize must be >= 0, not -1$",
        ),
        (
            {"resource": "r", "maxsize": 1.5},
            TypeError,
            r"^AgentCache: maxsize must be an int >= 0 or None, not 1.5$",
        ),
        (
            {"resource": "r", "skip_args": -1},
            ValueError,
            r"^AgentCache: skip_args must be >= 0, not -1$",
        ),
    ],
)
def test_bad_cache_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AgentCache(**kwargs)


def test_sync_functions_are_refused() -> None:
    def get_cart(user_id: str) -> str:
        return user_id

    with pytest.raises(TypeError, match=r"^AgentCache decorates 'async def' functions; "):
        AgentCache(resource="cart")(get_cart)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^AgentCacheInvalidator decorates 'async def'"):
        AgentCacheInvalidator(resource="cart")(get_cart)  # type: ignore[arg-type]


def test_skip_args_beyond_the_signature_is_refused() -> None:
    async def get_cart(user_id: str) -> str:
        return user_id

    with pytest.raises(
        ValueError,
        match=r"^AgentCache: skip_args=2 but get_cart takes only 1 positional argument\(s\)$",
    ):
        AgentCache(resource="cart", skip_args=2)(get_cart)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"resource": "r", "skip_args": 1}, TypeError, r"^AgentCacheInvalidator: skip_args is"),
        ({"resource": []}, TypeError, r"^AgentCacheInvalidator: resource must be a str or a"),
        (
            {"resource": "r", "scope": "sesion"},
            ValueError,
            r"^AgentCacheInvalidator: scope must be 'global' or 'session', not 'sesion'$",
        ),
        (
            {"resource": "r", "clear_all": False},
            ValueError,
            r"^AgentCacheInvalidator: clear_all=False needs a key_fn naming what to drop$",
        ),
        (
            {"resource": "r", "clear_all": True, "key_fn": lambda a, k: a},
            ValueError,
            r"^AgentCacheInvalidator: clear_all=True and key_fn contradict; pass one$",
        ),
        ({"resource": "r", "key_fn": 3}, TypeError, r"^AgentCacheInvalidator: key_fn must be"),
    ],
)
def test_bad_invalidator_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AgentCacheInvalidator(**kwargs)


# -- TTL and size -------------------------------------------------------------


async def test_ttl_counts_from_the_start_of_the_load() -> None:
    clock = FakeClock()
    seen = Counter()

    @AgentCache(resource="r", ttl=10)
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        clock.now += 4  # the load itself takes 4 s
        return len(seen)

    async with Runtime(clock=clock):
        assert await tool(1) == 1
        clock.now += 5.9  # 9.9 s after the load began
        assert await tool(1) == 1
        clock.now += 0.1
        assert await tool(1) == 2


async def test_ttl_zero_stores_nothing_but_shares_a_running_load(runtime: Runtime) -> None:
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r", ttl=0)
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        await gate.wait()
        return len(seen)

    results: list[int] = []

    async def call() -> None:
        results.append(await tool(1))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(call)
        await wait_all_tasks_blocked()
        gate.set()
    assert results == [1] * 5
    assert await tool(1) == 2


async def test_maxsize_evicts_the_least_recently_used(runtime: Runtime) -> None:
    seen = Counter()

    @AgentCache(resource="r", maxsize=2)
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        return x

    await tool(1)
    await tool(2)
    await tool(1)  # a hit: 1 is now more recent than 2
    await tool(3)  # evicts 2
    assert len(seen) == 3
    await tool(1)
    await tool(3)
    assert len(seen) == 3
    await tool(2)
    assert len(seen) == 4
    assert runtime.statistics("r")["evictions"] == 2


async def test_maxsize_zero_stores_nothing(runtime: Runtime) -> None:
    seen = Counter()

    @AgentCache(resource="r", maxsize=0)
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        return x

    await tool(1)
    await tool(1)
    assert len(seen) == 2


# -- single flight, errors, cancellation ---------------------------------------


async def test_concurrent_callers_share_one_load(runtime: Runtime) -> None:
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        await gate.wait()
        return x * 10

    results: list[int] = []

    async def call(x: int) -> None:
        results.append(await tool(x))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(call, i % 2)
            await wait_all_tasks_blocked()
            gate.set()
    assert len(seen) == 2
    assert sorted(results) == [0] * 50 + [10] * 50
    stats = runtime.statistics("r")
    assert (stats["misses"], stats["coalesced"], stats["hits"]) == (2, 98, 0)


async def test_an_error_reaches_every_waiter_and_is_not_cached(runtime: Runtime) -> None:
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        await gate.wait()
        if len(seen) == 1:
            raise LookupError("backend down")
        return 7

    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await tool(1)
        except LookupError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
            await wait_all_tasks_blocked()
            gate.set()
    assert len(errors) == 10
    assert all(str(e) == "backend down" for e in errors)
    assert await tool(1) == 7
    assert len(seen) == 2
    assert runtime.statistics("r")["load_errors"] == 1


async def test_cancelling_the_leader_neither_strands_nor_poisons_the_others(
    runtime: Runtime,
) -> None:
    release = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> str:
        seen.calls.append((x,))
        await release.wait()
        return "value"

    results: list[str] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await tool(1)

    async def follower() -> None:
        results.append(await tool(1))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await wait_all_tasks_blocked()
            for _ in range(99):
                tg.start_soon(follower)
            await wait_all_tasks_blocked()
            leader_scope.cancel()
            await wait_all_tasks_blocked()
            release.set()
    assert leader_scope.cancelled_caught
    assert results == ["value"] * 99
    assert len(seen) == 2  # one follower took the load over
    stats = runtime.statistics("r")
    assert stats["misses"] + stats["coalesced"] + stats["hits"] == 100
    assert stats["abandoned_loads"] == 1


async def test_a_cancelled_waiter_leaves_quietly(runtime: Runtime) -> None:
    release = anyio.Event()

    @AgentCache(resource="r")
    async def tool(x: int) -> str:
        await release.wait()
        return "value"

    results: list[str] = []
    waiter_scope = anyio.CancelScope()

    async def waiter() -> None:
        with waiter_scope:
            await tool(1)

    async def caller() -> None:
        results.append(await tool(1))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            await wait_all_tasks_blocked()
            tg.start_soon(waiter)
            tg.start_soon(caller)
            await wait_all_tasks_blocked()
            waiter_scope.cancel()
            await wait_all_tasks_blocked()
            release.set()
    assert results == ["value", "value"]


def _keep_busy(runtime: Runtime, resource: str, messages: int = 50) -> None:
    """Queue work for ``resource``'s cache actor, all at once: until its loop
    has drained it (a checkpoint per message), every ask queues behind, as
    the inline path is only for an idle actor with an empty mailbox."""
    cell = runtime.host.cache(resource)._cell  # runtime-internal, for the test
    for _ in range(messages):
        cell.enqueue(Snapshot(), None)


async def test_a_busy_cache_queues_misses_and_still_shares_one_load(runtime: Runtime) -> None:
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        if x:
            await gate.wait()
        return x * 10

    results: list[int] = []

    async def call() -> None:
        results.append(await tool(1))

    with anyio.fail_after(5):
        await tool(0)  # publish the table: later misses take the inline path if they can
        async with anyio.create_task_group() as tg:
            _keep_busy(runtime, "r")
            for _ in range(20):
                tg.start_soon(call)
            await wait_all_tasks_blocked()
            gate.set()
    assert results == [10] * 20
    assert seen.calls == [(0,), (1,)]
    stats = runtime.statistics("r")
    assert (stats["misses"], stats["coalesced"], stats["hits"]) == (2, 19, 0)
    assert await tool(1) == 10  # stored through a queued Complete or an inline one


async def test_a_caller_cancelled_while_its_lookup_is_queued_strands_nobody(
    runtime: Runtime,
) -> None:
    release = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> str:
        seen.calls.append((x,))
        await release.wait()
        return "value"

    results: list[str] = []
    first = anyio.CancelScope()

    async def cancelled_caller() -> None:
        with first:
            await tool(1)

    async def caller() -> None:
        results.append(await tool(1))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            _keep_busy(runtime, "r")
            tg.start_soon(cancelled_caller)
            tg.start_soon(caller)
            await anyio.lowlevel.checkpoint()
            first.cancel()  # queued, elected, or not yet asked: it must not matter
            await wait_all_tasks_blocked()
            release.set()
    assert results == ["value"]
    assert 1 <= len(seen) <= 2
    stats = runtime.statistics("r")
    assert stats["misses"] + stats["coalesced"] + stats["hits"] <= 2
    snapshot = await runtime.host.cache("r").ask(Snapshot())
    assert sum(snapshot.flights.values()) == 0  # no flight left attached


async def test_a_load_that_ends_while_the_cache_is_busy_is_stored_through_the_queue(
    runtime: Runtime,
) -> None:
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        await gate.wait()
        return x

    results: list[int] = []
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await tool(1)

    async def join() -> None:
        results.append(await tool(1))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lead)
            await wait_all_tasks_blocked()
            tg.start_soon(join)
            await wait_all_tasks_blocked()
            _keep_busy(runtime, "r")
            gate.set()  # the leader's Complete queues behind the busy work
            await anyio.lowlevel.checkpoint()
            leader.cancel()  # and its leader may be cancelled meanwhile
    assert results == [1]  # the waiter got the value regardless
    assert await tool(1) == 1
    assert seen.calls == [(1,)] or seen.calls == [(1,), (1,)]


async def test_parameters_and_names_that_look_generated_still_work(runtime: Runtime) -> None:
    seen = Counter()

    @AgentCache(resource="r")
    async def _ac_tool_(_ac_key_: int, _ac_ctx_: int = 0) -> int:
        seen.calls.append((_ac_key_, _ac_ctx_))
        return _ac_key_ + _ac_ctx_

    @AgentCache(resource="r")
    async def _ac_slow_(x: int) -> int:
        seen.calls.append((x,))
        return x

    assert await _ac_tool_(1) == await _ac_tool_(_ac_key_=1, _ac_ctx_=0) == 1
    assert await _ac_slow_(2) == await _ac_slow_(2) == 2
    assert seen.calls == [(1, 0), (2,)]
    assert _ac_tool_.__name__ == "_ac_tool_"


async def test_parameters_named_like_builtins_do_not_break_the_wrapper(runtime: Runtime) -> None:
    # Found by review: the generated wrapper named type() and the exception
    # classes it catches; a parameter of the same name shadowed them (a failed
    # load then stranded its waiters).
    gate = anyio.Event()
    seen = Counter()

    @AgentCache(resource="r")
    async def type(
        query: str,
        type: str = "all",
        BaseException: int = 0,
        Exception: int = 0,
        TypeError: int = 0,
    ) -> str:
        seen.calls.append((query, type))
        await gate.wait()
        if query == "bad":
            raise ValueError("no such query")
        return f"{query}/{type}"

    errors: list[str] = []

    async def fails() -> None:
        try:
            await type("bad")
        except ValueError as exc:
            errors.append(str(exc))

    with anyio.fail_after(5):
        gate.set()
        assert await type("q") == "q/all"  # the first call, then an inline miss
        assert await type("q", type="news") == "q/news"
        assert await type("q", "news") == "q/news"  # a hit
        gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(fails)
            await wait_all_tasks_blocked()
            gate.set()
    assert errors == ["no such query"] * 3
    assert seen.calls == [("q", "all"), ("q", "news"), ("bad", "all")]


async def test_a_load_overtaken_by_a_write_sends_no_complete(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    completes: list[object] = []
    original = ResourceCache.on_complete

    def spy(self: ResourceCache, msg: Any) -> bool:
        completes.append(msg)
        return original(self, msg)

    monkeypatch.setattr(ResourceCache, "on_complete", spy)
    in_load, finish = anyio.Event(), anyio.Event()

    @AgentCache(resource="r")
    async def read(key: str) -> str:
        in_load.set()
        await finish.wait()
        return key

    @AgentCacheInvalidator(resource="r")
    async def write() -> None:
        return None

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read, "k")
            await in_load.wait()
            await write()
            finish.set()
    assert completes == []  # nothing to store: no message either
    assert runtime.statistics("r")["stale_discarded"] == 1
    assert await read("k") == "k"  # a fresh load, stored this time
    assert len(completes) == 1


async def test_a_cache_that_crashes_on_a_lookup_serves_the_call_and_restarts(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Counter()

    @AgentCache(resource="r")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        return x

    assert await tool(0) == 0  # the table is published: the next miss is inline
    crash_next_lookup(monkeypatch)
    with anyio.fail_after(5):
        assert await tool(1) == 1  # met the crash: served uncached
        assert await tool(1) == 1  # the restarted cache loads
        assert await tool(1) == 1  # and now hits
    assert seen.calls == [(0,), (1,), (1,)]
    assert "runs uncached" in caplog.text
    stats = runtime.statistics("r")
    assert (stats["misses"], stats["hits"]) == (3, 1)


# -- invalidation (invariant 2) -----------------------------------------------


async def test_a_write_makes_the_next_read_fresh(runtime: Runtime) -> None:
    store = {"u1": ["a"]}

    @AgentCache(resource="cart")
    async def get_cart(user_id: str) -> list[str]:
        return list(store[user_id])

    @AgentCacheInvalidator(resource="cart")
    async def add_to_cart(user_id: str, item: str) -> None:
        store[user_id].append(item)

    assert await get_cart("u1") == ["a"]
    await add_to_cart("u1", "b")
    assert await get_cart("u1") == ["a", "b"]
    assert runtime.statistics("cart")["invalidations"] == 1


async def test_a_load_running_during_a_write_is_not_stored(runtime: Runtime) -> None:
    store = {"k": 1}
    read_started, let_read_finish = anyio.Event(), anyio.Event()

    @AgentCache(resource="r")
    async def read(key: str) -> int:
        value = store[key]
        read_started.set()
        await let_read_finish.wait()
        return value

    @AgentCacheInvalidator(resource="r")
    async def write(key: str, value: int) -> None:
        store[key] = value

    old: list[int] = []

    async def slow_reader() -> None:
        old.append(await read("k"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_reader)
            await read_started.wait()
            await write("k", 2)
            # The write has returned: a new read neither joins the old load
            # nor sees its value, even once that load completes.
            read_started = anyio.Event()
            tg.start_soon(slow_reader)
            await read_started.wait()
            let_read_finish.set()
    assert sorted(old) == [1, 2]
    assert await read("k") == 2
    assert runtime.statistics("r")["stale_discarded"] == 1


async def test_a_read_during_the_write_is_not_cached_past_it(runtime: Runtime) -> None:
    store = {"k": 1}
    in_write, finish_write = anyio.Event(), anyio.Event()

    @AgentCache(resource="r")
    async def read(key: str) -> int:
        return store[key]

    @AgentCacheInvalidator(resource="r")
    async def write(key: str, value: int) -> None:
        in_write.set()
        await finish_write.wait()
        store[key] = value

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "k", 2)
            await in_write.wait()
            assert await read("k") == 1  # during the write: old data, cached...
            finish_write.set()
    assert await read("k") == 2  # ...but not past the write's end


async def test_a_failed_or_cancelled_write_still_invalidates(runtime: Runtime) -> None:
    store = {"k": 1}

    @AgentCache(resource="r")
    async def read(key: str) -> int:
        return store[key]

    @AgentCacheInvalidator(resource="r")
    async def write(key: str) -> None:
        store[key] += 1
        raise RuntimeError("half done")

    @AgentCacheInvalidator(resource="r")
    async def slow_write(key: str) -> None:
        store[key] += 1
        await anyio.sleep_forever()

    assert await read("k") == 1
    with pytest.raises(RuntimeError, match=r"^half done$"):
        await write("k")
    assert await read("k") == 2
    with anyio.move_on_after(0):
        await slow_write("k")
    assert await read("k") == 3


async def test_a_write_cancelled_while_its_invalidation_waits_for_a_busy_cache_still_applies_it(
    runtime: Runtime,
) -> None:
    # The cache is busy when the write ends, so the write must wait for its
    # Invalidate; cancelled meanwhile, it must still wait (shielded): once the
    # write has raised, a read must not hit the entry from before it.
    store = {"k": 1}

    @AgentCache(resource="r")
    async def read(key: str) -> int:
        return store[key]

    @AgentCacheInvalidator(resource="r")
    async def write(key: str, value: int) -> None:
        store[key] = value

    seen: list[int] = []
    scope = anyio.CancelScope()

    async def writer() -> None:
        with scope:
            await write("k", 2)
        seen.append(await read("k"))  # the write has raised: fresh data only

    with anyio.fail_after(5):
        assert await read("k") == 1  # cached
        async with anyio.create_task_group() as tg:
            _keep_busy(runtime, "r")
            tg.start_soon(writer)
            for _ in range(5):  # the writer reaches its wait, the cache is still busy
                await anyio.lowlevel.checkpoint()
            scope.cancel()
    assert seen == [2]


async def test_key_fn_drops_only_the_named_reads(runtime: Runtime) -> None:
    store = {"u1": 1, "u2": 1}

    @AgentCache(resource="cart")
    async def get_cart(user_id: str) -> int:
        return store[user_id]

    @AgentCache(resource="cart")
    async def cart_total(user_id: str, currency: str = "usd") -> int:
        return store[user_id] * 100

    @AgentCacheInvalidator(resource="cart", key_fn=lambda args, kwargs: args[0])
    async def add_to_cart(user_id: str, item: str) -> None:
        store[user_id] += 1

    for user in ("u1", "u2"):
        await get_cart(user)
        await cart_total(user)
    store["u2"] = 50  # changed behind the cache's back: stays cached
    await add_to_cart("u1", "x")
    assert (await get_cart("u1"), await cart_total("u1")) == (2, 200)
    assert (await get_cart("u2"), await cart_total("u2")) == (1, 100)


async def test_key_fn_args_that_do_not_fit_a_tool_clear_that_tool(runtime: Runtime) -> None:
    store = {"a": 1}

    @AgentCache(resource="r")
    async def by_id(item_id: str) -> int:
        return store[item_id]

    @AgentCache(resource="r")
    async def everything() -> int:
        return sum(store.values())

    @AgentCacheInvalidator(
        resource="r", key_fn=lambda args, kwargs: [Args(args[0]), Args(item_id="zz")]
    )
    async def put(item_id: str, value: int) -> None:
        store[item_id] = value

    await by_id("a")
    await everything()
    await put("a", 5)
    assert await by_id("a") == 5
    assert await everything() == 5


async def test_one_invalidator_can_name_several_resources(runtime: Runtime) -> None:
    store = {"n": 1}

    @AgentCache(resource="cart")
    async def cart() -> int:
        return store["n"]

    @AgentCache(resource="totals")
    async def totals() -> int:
        return store["n"] * 10

    @AgentCache(resource="other")
    async def other() -> int:
        return store["n"]

    @AgentCacheInvalidator(resource=["cart", "totals"])
    async def bump() -> None:
        store["n"] += 1

    assert (await cart(), await totals(), await other()) == (1, 10, 1)
    await bump()
    assert (await cart(), await totals(), await other()) == (2, 20, 1)


# -- lifetimes -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_tools_work_with_no_setup(backend: str) -> None:
    seen = Counter()

    @AgentCache(resource="implicit")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        return x

    @AgentCacheInvalidator(resource="implicit")
    async def write() -> None:
        return None

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(tool, 1)
        assert await tool(1) == 1
        await write()
        await tool(1)

    before = get_metrics("implicit")
    anyio.run(main, backend=backend)
    assert len(seen) == 2
    after = get_metrics("implicit")
    assert after["calls"] - before["calls"] == 12
    # Run again: a fresh loop gets a fresh implicit runtime.
    anyio.run(main, backend=backend)
    assert len(seen) == 4


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_tasks_first_call_with_no_setup_is_a_hit_when_stored(backend: str) -> None:
    # A task started before any call has no runtime in its context: its first
    # call finds the implicit one and is served there like any other call.
    seen = Counter()

    @AgentCache(resource="first_call")
    async def tool(x: int) -> int:
        seen.calls.append((x,))
        return x

    async def main() -> None:
        stored = anyio.Event()
        got: list[int] = []

        async def later() -> None:
            await stored.wait()
            got.append(await tool(1))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(later)  # before main's first call: no runtime in its context
                await tool(1)
                stored.set()
        assert got == [1]

    before = get_metrics("first_call")
    anyio.run(main, backend=backend)
    after = get_metrics("first_call")
    assert len(seen) == 1
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (1, 1)


async def test_a_closed_runtime_is_reported() -> None:
    from agent_cache import RuntimeClosedError

    @AgentCache(resource="r")
    async def tool() -> int:
        return 1

    async with Runtime():
        pass
    async with Runtime() as rt:
        assert await tool() == 1
    # Entering and leaving resets the context; simulate a task that kept it.
    from agent_cache._runtime import _current

    token = _current.set(rt)
    try:
        with pytest.raises(RuntimeClosedError, match=r"whose 'async with' block has ended"):
            await tool()
    finally:
        _current.reset(token)


async def test_metrics_add_up_globally(runtime: Runtime) -> None:
    @AgentCache(resource="metrics-demo")
    async def tool(x: int) -> int:
        return x

    before = get_metrics("metrics-demo")
    await tool(1)
    await tool(1)
    await tool(2)
    after = get_metrics("metrics-demo")
    assert after["hits"] - before["hits"] == 1
    assert after["misses"] - before["misses"] == 2
    assert set(after) >= {"hits", "misses", "invalidations", "loop_detections", "hit_rate"}
