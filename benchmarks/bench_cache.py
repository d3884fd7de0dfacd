"""Benchmark agent_cache against its baselines and against peer caches, in one run.

Run alone (never collected by pytest: the name is bench_*, and pytest's
testpaths is tests/):

    pip install -e '.[bench]'
    python benchmarks/bench_cache.py           # ~8 min, writes benchmarks/results/cache.md
    python benchmarks/bench_cache.py --quick   # smoke run, a few seconds, writes nothing

The package is installed editable and others edit the tree: to measure one
commit, run it against a clean clone, ``PYTHONPATH=<clone> python
benchmarks/bench_cache.py``; the report names the code it measured.

What is measured (each baseline in the same process, interleaved with the
contenders, as httpcore's tests/benchmark/client.py does):

1. hit: median ns per call of a global-scope hit, against ``raw``, an ``await``
   of the undecorated trivial coroutine on the same backend in the same
   ``anyio.run``. Rounds of all contenders are interleaved (the order rotates
   each round) so drift in the machine hits every contender alike. Also the
   cost of a cold miss of the same trivial tool (what the swarm pays per load).
2. stampede: N concurrent callers of one cold key, loader ``anyio.sleep(0.001)``:
   loader runs, and burst wall time against the same burst with no cache
   (every task awaits the undecorated loader) in the same ``anyio.run``.
3. fan-out: N callers over 100 cold keys: loader runs (100 is right).
4. swarm: agents x calls, Zipf keys (s=1.1, fixed seed), every 20th call of an
   agent a write that bumps the key's version and clears the whole resource
   (agent_cache: `AgentCacheInvalidator`; peers: their clear API after the write);
   throughput against the no-cache swarm on the same backend, and stale reads:
   reads that started after a write of their key had returned but returned an
   older version. agent_cache is also paired with every other swarm round by
   round (the target is judged on those medians), and ``make_floor``, a correct
   single flight with no features, runs as a yardstick.
5. leader cancellation: 100 callers of one cold key; the first caller (the one
   running the load) is cancelled mid-load: how many of the other 99 get the
   value, get an error, or are still waiting after a timeout (stranded).

Peers that fail (on trio, most of them) are recorded as n/a with the reason;
a failing peer never ends the run.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import datetime
import gc
import importlib.metadata
import itertools
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

import agent_cache
from agent_cache import AgentCache, AgentCacheInvalidator, get_metrics, reset_metrics
from agent_cache.runtime._backend import current_backend

BACKENDS = ("asyncio", "trio")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cache.md"

# A peer that cannot run creates coroutines it never awaits (aiocache on trio,
# say); the RuntimeWarning says nothing the n/a row does not.
warnings.filterwarnings("ignore", message="coroutine .* was never awaited")

Read = Callable[[int], Awaitable[Any]]
Write = Callable[[int], Awaitable[int]]


# -- parameters ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    """Sizes of one run; `FULL` is the real benchmark, `QUICK` a smoke run."""

    hit_rounds: int
    hit_calls: int  # per round, at most: slow peers get fewer (see ROUND_BUDGET)
    miss_rounds: int
    burst_callers: int
    burst_reps: int
    fanout_keys: int
    swarm_agents: int
    swarm_calls: int
    swarm_keys: int
    swarm_reps: int
    cancel_callers: int


FULL = Params(
    hit_rounds=15,
    hit_calls=50_000,
    miss_rounds=7,
    burst_callers=10_000,
    burst_reps=3,
    fanout_keys=100,
    swarm_agents=500,
    swarm_calls=200,
    swarm_keys=5_000,
    swarm_reps=9,
    cancel_callers=100,
)
QUICK = Params(
    hit_rounds=3,
    hit_calls=5_000,
    miss_rounds=3,
    burst_callers=1_000,
    burst_reps=1,
    fanout_keys=100,
    swarm_agents=50,
    swarm_calls=40,
    swarm_keys=500,
    swarm_reps=1,
    cancel_callers=100,
)

# A hit round of a slow peer is capped at this many seconds (cashews' ~50 us
# hit would otherwise take 40 s for 15 x 50k calls); it still gets >= 2,000 calls.
ROUND_BUDGET = 0.06
LOAD_SECONDS = 0.001
WRITE_EVERY = 20
ZIPF_S = 1.1
SEED = 20240611


# -- the contenders -----------------------------------------------------------


@dataclass(slots=True)
class Cached:
    """One cache put around a loader and a writer, as its users would."""

    read: Read
    write: Write
    close: Callable[[], Awaitable[None]] | None = None


_resource_ids = itertools.count()


def make_agent_cache(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    # A fresh resource per run: nothing carries over between contenders.
    resource = f"bench{next(_resource_ids)}"
    read = AgentCache(resource=resource, maxsize=maxsize)(loader)
    write = AgentCacheInvalidator(resource=resource)(writer)
    return Cached(read, write)


def make_async_lru(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    from async_lru import alru_cache

    read = alru_cache(maxsize=maxsize)(loader)

    async def write(key: int) -> int:
        try:
            return await writer(key)
        finally:
            read.cache_clear()

    return Cached(read, write)


def make_asyncstdlib(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    import asyncstdlib

    read = asyncstdlib.lru_cache(maxsize=maxsize)(loader)

    async def write(key: int) -> int:
        try:
            return await writer(key)
        finally:
            read.cache_clear()

    return Cached(read, write)


def _aiocache(decorator: Any, loader: Read, writer: Write) -> Cached:
    read = decorator(loader)
    cache = read.cache

    async def write(key: int) -> int:
        try:
            return await writer(key)
        finally:
            await cache.clear()

    return Cached(read, write, cache.close)


def make_aiocache(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    # Defaults, as users get them: in-memory, no TTL, unbounded, and the
    # default 5 s operation timeout (an asyncio.wait_for per get and set).
    from aiocache import cached

    return _aiocache(cached(), loader, writer)


def make_aiocache_stampede(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    # aiocache's stampede decorator: a lock lease (2 s by default) so that one
    # caller loads while the others poll the cache.
    from aiocache import cached_stampede

    return _aiocache(cached_stampede(), loader, writer)


def make_cashews(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    # Its own Cache instance (not the module-global one); cashews needs a TTL,
    # and its default thunder protection single-flights concurrent misses.
    import cashews

    cache = cashews.Cache()
    cache.setup("mem://", size=maxsize or 1_000_000)
    read = cache(ttl="1h")(loader)

    async def write(key: int) -> int:
        try:
            return await writer(key)
        finally:
            await cache.clear()

    return Cached(read, write, cache.close)


# -- the floor: the least a correct single-flight cache does -------------------


class _Pending:
    __slots__ = ("value", "waiters")

    def __init__(self) -> None:
        self.waiters: list[Any] = []


def make_floor(loader: Read, writer: Write, maxsize: int | None) -> Cached:
    """The least work a correct single-flight cache can do in the swarm.

    A dict of values and a dict of running loads, both cleared after every
    write; one wake-up future (asyncio) or parked task (trio) per waiter. No
    metrics, TTL, LRU, actor, cancellation hand-over or per-runtime state: not
    a usable cache, a yardstick. It shows how far ahead of the fastest peer
    any correct cache can be, and what agent_cache's structure costs.
    """
    values: dict[int, Any] = {}
    pending: dict[int, _Pending] = {}
    if current_backend() == "trio":
        import trio

        async def wait(flight: _Pending) -> None:
            task = trio.lowlevel.current_task()
            flight.waiters.append(task)

            def abort(_: object) -> trio.lowlevel.Abort:
                flight.waiters.remove(task)
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)

        def wake(flight: _Pending) -> None:
            for task in flight.waiters:
                trio.lowlevel.reschedule(task)

    else:
        import asyncio

        async def wait(flight: _Pending) -> None:
            future = asyncio.get_running_loop().create_future()
            flight.waiters.append(future)
            await future

        def wake(flight: _Pending) -> None:
            for future in flight.waiters:
                if not future.done():
                    future.set_result(None)

    async def read(key: int) -> Any:
        if key in values:
            return values[key]
        flight = pending.get(key)
        if flight is not None:
            await wait(flight)
            return flight.value
        flight = pending[key] = _Pending()
        value = await loader(key)
        if pending.get(key) is flight:  # no write finished meanwhile
            del pending[key]
            values[key] = value
        flight.value = value
        wake(flight)
        return value

    async def write(key: int) -> int:
        try:
            return await writer(key)
        finally:
            values.clear()
            pending.clear()

    return Cached(read, write)


# Contenders left out of the swarm, with the reason shown in the table.
SWARM_SKIPPED = {
    "aiocache cached_stampede": (
        "left out: its lock lease polls the cache, ~330 calls/s in a quick run, so "
        "one full swarm would take about 5 minutes"
    ),
}

MakeCache = Callable[[Read, Write, int | None], Cached]
CONTENDERS: dict[str, MakeCache] = {
    "agent_cache": make_agent_cache,
    "async-lru": make_async_lru,
    "asyncstdlib lru_cache": make_asyncstdlib,
    "aiocache cached": make_aiocache,
    "aiocache cached_stampede": make_aiocache_stampede,
    "cashews": make_cashews,
}
# Swarm only, and not a peer: the yardstick above.
FLOOR = "floor (correct single flight, no features)"
SWARM_ONLY: dict[str, MakeCache] = {FLOOR: make_floor}


# -- failures ----------------------------------------------------------------


class LoggedErrors(Exception):
    """A measurement whose run logged errors: its numbers are not the cache's."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect warnings and errors logged meanwhile (and keep them off stderr).

    Some peers swallow their own failures and log them (aiocache logs and
    returns a miss when a get raises): a run that logged errors did not
    measure the cache.
    """
    handler = _Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)


def logged_reason(records: list[logging.LogRecord]) -> str:
    record = records[0]
    exc = record.exc_info[1] if record.exc_info else None
    text = reason(exc) if exc is not None else record.getMessage()
    return f"{record.name} logged {len(records):,} errors: {text}"


# Frames of the event loop itself say nothing about which library failed.
_RUNNERS = ("trio/_core/_run.py", "anyio/_core/_eventloop.py", "anyio/_backends/_trio.py")


def reason(exc: BaseException) -> str:
    """A one-line cause for an n/a cell."""
    if isinstance(exc, LoggedErrors):
        return str(exc)
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    if len(text) > 300:
        text = text[:297] + "..."
    # Where it was raised, inside site-packages: which library gave up, and how.
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "site-packages" in f.filename and not f.filename.endswith(_RUNNERS)
    ]
    if frames:
        where = frames[-1]
        path = where.filename.split("site-packages/")[-1]
        text += f" at {path}:{where.lineno} `{where.line}`"
    return text


# -- 1. hit cost --------------------------------------------------------------


async def _time_calls(fn: Read, calls: int) -> float:
    """ns per call of ``await fn(1)``; the same loop times every contender."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        await fn(1)
    return (time.perf_counter_ns() - start) / calls


@dataclass(slots=True)
class HitResult:
    ns: float | None = None
    calls: int = 0
    miss_ns: float | None = None
    misses: int = 0
    failed: str | None = None


async def _rounds(fns: dict[str, Read], calls: dict[str, int], rounds: int) -> dict[str, float]:
    """Median ns per call of each fn, rounds interleaved, the order rotating."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    gc.collect()
    gc.disable()  # as timeit does: a collection lands on whoever runs then
    try:
        for round_ in range(rounds):
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                samples[name].append(await _time_calls(fns[name], calls[name]))
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


async def _calibrate(fn: Read, most: int, least: int) -> int:
    """How many calls of ``fn`` fit in ROUND_BUDGET, within [least, most]."""
    await _time_calls(fn, least)  # warm-up
    estimate = await _time_calls(fn, least)
    return max(least, min(most, int(ROUND_BUDGET * 1e9 / estimate)))


def _fresh_keys(read: Read) -> Read:
    """``read`` of a key never asked before on every call: a cold miss each time."""
    keys = itertools.count(10_000_000)

    async def miss(_: int) -> Any:
        return await read(next(keys))

    return miss


async def bench_hits(params: Params, skip: dict[str, str]) -> dict[str, HitResult]:
    """Hit cost, and (to explain the swarm) the cost of a cold miss of a trivial tool."""

    async def raw(x: int) -> int:
        return x

    async def no_write(key: int) -> int:
        return key

    fns: dict[str, Read] = {"raw": raw}
    miss_fns: dict[str, Read] = {"raw": _fresh_keys(raw)}
    results: dict[str, HitResult] = {"raw": HitResult()}
    closers = []
    for name, make in CONTENDERS.items():
        results[name] = HitResult()
        if name in skip:
            results[name].failed = skip[name]
            continue

        runs = 0

        # A fresh trivial coroutine per contender: the same body as raw.
        async def tool(x: int) -> int:
            nonlocal runs
            runs += 1
            return x

        try:
            with captured_logs() as logged:
                cached = make(tool, no_write, 128)
                for _ in range(1_000):  # fill, then warm the hit path
                    await cached.read(1)
        except Exception as exc:
            results[name].failed = reason(exc)
            continue
        if runs != 1:
            # aiocache on trio: every get fails inside, is logged, and the
            # tool runs: that is no hit, and its time is not a hit's.
            results[name].failed = f"no hits, the tool ran {runs:,} times in 1,000 calls" + (
                f"; {logged_reason(logged)}" if logged else ""
            )
            continue
        fns[name] = cached.read
        # A second cache of the same kind, so misses do not evict the hit's entry.
        cold = make(tool, no_write, 128)
        miss_fns[name] = _fresh_keys(cold.read)
        closers += [c for c in (cached.close, cold.close) if c is not None]
    for name, fn in fns.items():
        results[name].calls = await _calibrate(fn, params.hit_calls, 2_000)
    for name, ns in (
        await _rounds(fns, {n: r.calls for n, r in results.items()}, params.hit_rounds)
    ).items():
        results[name].ns = ns
    for name, fn in miss_fns.items():
        results[name].misses = await _calibrate(fn, params.hit_calls // 5, 200)
    misses = {name: results[name].misses for name in miss_fns}
    for name, ns in (await _rounds(miss_fns, misses, params.miss_rounds)).items():
        results[name].miss_ns = ns
    for close in closers:
        with contextlib.suppress(Exception):  # closing is not what is measured
            await close()
    return results


# -- 2 and 3. stampede and fan-out -------------------------------------------


@dataclass(slots=True)
class BurstResult:
    loads: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    wrong: int = 0
    failed: str | None = None

    @property
    def ratio(self) -> float:
        # Median of per-rep ratios: each rep's baseline ran right before it.
        return statistics.median(s / b for s, b in zip(self.seconds, self.baseline, strict=True))


async def _burst(fn: Read, keys: list[int]) -> tuple[float, int]:
    """Wall time of len(keys) concurrent ``fn(key)``; and how many got a wrong value."""
    wrong = 0

    async def one(key: int) -> None:
        nonlocal wrong
        if await fn(key) != key:
            wrong += 1

    gc.collect()
    with anyio.fail_after(60):
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(one, key)
        return time.perf_counter() - start, wrong


async def bench_bursts(params: Params, name: str) -> tuple[BurstResult, BurstResult]:
    """Stampede then fan-out, each rep a no-cache burst and a cached burst."""
    runs = 0

    async def loader(key: int) -> int:
        nonlocal runs
        runs += 1
        await anyio.sleep(LOAD_SECONDS)
        return key

    async def no_write(key: int) -> int:
        return key

    stampede, fanout = BurstResult(), BurstResult()
    n = params.burst_callers
    try:
        cached = CONTENDERS[name](loader, no_write, 128)
        fresh = itertools.count(1_000_000)  # every burst gets keys never loaded
        # Warm-up: the first burst pays for the runtime, imports and the like.
        await _burst(loader, [0] * n)
        await _burst(cached.read, [next(fresh)] * n)
        for result, nkeys in ((stampede, 1), (fanout, params.fanout_keys)):
            for _ in range(params.burst_reps):
                seconds, _ = await _burst(loader, [i % nkeys for i in range(n)])
                result.baseline.append(seconds)
                base = [next(fresh) for _ in range(nkeys)]
                runs = 0
                seconds, wrong = await _burst(cached.read, [base[i % nkeys] for i in range(n)])
                result.seconds.append(seconds)
                result.loads.append(runs)
                result.wrong += wrong
        if cached.close is not None:
            await cached.close()
    except Exception as exc:
        for result in (stampede, fanout):
            if not result.seconds or len(result.seconds) < params.burst_reps:
                result.failed = reason(exc)
    return stampede, fanout


# -- 4. swarm -----------------------------------------------------------------


class Zipf:
    """Ranks 0..n-1 with P(rank k) proportional to 1/(k+1)**s (no numpy here)."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        self._cumulative = list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        self._total = self._cumulative[-1]
        self._last = n - 1
        self._rng = rng

    def sample(self) -> int:
        point = self._rng.random() * self._total
        return min(bisect.bisect_right(self._cumulative, point), self._last)


def swarm_plan(params: Params) -> list[list[int]]:
    """Each agent's keys, fixed by SEED: every contender replays the same swarm."""
    zipf = Zipf(params.swarm_keys, ZIPF_S, random.Random(SEED))
    return [[zipf.sample() for _ in range(params.swarm_calls)] for _ in range(params.swarm_agents)]


@dataclass(slots=True)
class SwarmResult:
    seconds: list[float] = field(default_factory=list)
    stale: int = 0
    loads: int = 0
    reads: int = 0
    calls: int = 0
    failed: str | None = None
    #: agent_cache's own counters (get_metrics), summed over the swarms
    metrics: dict[str, float] = field(default_factory=dict)


async def swarm_once(params: Params, plan: list[list[int]], name: str | None) -> SwarmResult:
    """One swarm; ``name`` None is the no-cache baseline."""
    store = [0] * params.swarm_keys  # the fake store: a version per key
    committed = [0] * params.swarm_keys  # newest version whose write has returned
    result = SwarmResult()

    async def load(key: int) -> int:
        # Read the store, then the latency: a load returns what it read when it
        # began, so a write during the load makes its answer old.
        version = store[key]
        result.loads += 1
        await anyio.sleep(LOAD_SECONDS)
        return version

    async def write(key: int) -> int:
        await anyio.sleep(LOAD_SECONDS)
        store[key] += 1
        return store[key]

    if name is None:
        read, do_write, close = load, write, None
    else:
        cached = {**CONTENDERS, **SWARM_ONLY}[name](load, write, None)
        read, do_write, close = cached.read, cached.write, cached.close

    async def agent(keys: list[int]) -> None:
        result.calls += len(keys)
        for i, key in enumerate(keys):
            if i % WRITE_EVERY == WRITE_EVERY - 1:
                version = await do_write(key)
                committed[key] = max(committed[key], version)
            else:
                floor = committed[key]
                result.reads += 1
                if await read(key) < floor:
                    result.stale += 1

    gc.collect()
    with anyio.fail_after(240):
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for keys in plan:
                tg.start_soon(agent, keys)
        result.seconds.append(time.perf_counter() - start)
    if close is not None:
        await close()
    return result


# -- 5. leader cancellation ---------------------------------------------------


@dataclass(slots=True)
class CancelResult:
    completed: int = 0
    cancelled: int = 0  # got a cancellation that was not theirs
    errors: int = 0
    stranded: int = 0
    loads: int = 0
    failed: str | None = None


async def bench_cancel(params: Params, name: str) -> CancelResult:
    result = CancelResult()
    started = anyio.Event()
    value = ("value", 7)

    async def loader(key: int) -> tuple[str, int]:
        result.loads += 1
        started.set()
        await anyio.sleep(0.05)
        return ("value", key)

    async def no_write(key: int) -> int:
        return key

    cached = CONTENDERS[name](loader, no_write, 128)
    leader_scope = anyio.CancelScope()
    others = params.cancel_callers - 1

    async def leader() -> None:
        with leader_scope:
            await cached.read(7)

    async def other() -> None:
        try:
            got = await cached.read(7)
        except anyio.get_cancelled_exc_class():
            if deadline.cancel_called:
                raise  # our own timeout: this caller is stranded
            result.cancelled += 1  # the leader's cancellation leaked into this caller
            return
        except Exception:
            result.errors += 1
            return
        if got == value:
            result.completed += 1
        else:
            result.errors += 1

    with anyio.move_on_after(5) as deadline:
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await started.wait()  # the leader's load is running
            for _ in range(others):
                tg.start_soon(other)
            await anyio.wait_all_tasks_blocked()  # all 99 have joined (or started)
            leader_scope.cancel()
    result.stranded = others - result.completed - result.cancelled - result.errors
    if cached.close is not None:
        await cached.close()
    return result


# -- running it all -----------------------------------------------------------


async def probe(name: str) -> None:
    """Does ``name`` cache at all on this backend? Raises if not."""
    runs = 0

    async def loader(key: int) -> int:
        nonlocal runs
        runs += 1
        return key

    async def no_write(key: int) -> int:
        return key

    cached = CONTENDERS[name](loader, no_write, 128)
    with captured_logs() as logged:
        for _ in range(3):
            await cached.read(1)
    if runs != 1:
        cause = f"; {logged_reason(logged)}" if logged else ""
        raise RuntimeError(f"no hits, the tool ran {runs} times in 3 calls{cause}")
    if cached.close is not None:
        await cached.close()


def run_on(backend: str, fn: Callable[..., Awaitable[Any]], *args: Any, strict: bool = True) -> Any:
    """``anyio.run`` on ``backend``; a fresh event loop for every measurement.

    Raises:
        LoggedErrors: ``strict`` and the run logged warnings or errors (a peer
            that failed inside and carried on uncached).
    """
    with captured_logs() as logged:
        result = anyio.run(fn, *args, backend=backend)
    if logged and strict:
        raise LoggedErrors(logged_reason(logged))
    return result


@dataclass(slots=True)
class Report:
    hits: dict[str, dict[str, HitResult]] = field(default_factory=dict)
    stampede: dict[tuple[str, str], BurstResult] = field(default_factory=dict)
    fanout: dict[tuple[str, str], BurstResult] = field(default_factory=dict)
    swarm: dict[tuple[str, str], SwarmResult] = field(default_factory=dict)
    cancel: dict[tuple[str, str], CancelResult] = field(default_factory=dict)
    seconds: float = 0.0


_START = time.perf_counter()


def progress(text: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f} s] {text}", file=sys.stderr, flush=True)


def run_all(params: Params) -> Report:
    report = Report()
    start = time.perf_counter()
    # Contenders that do not cache at all on a backend are n/a everywhere on it.
    unsupported: dict[str, dict[str, str]] = {backend: {} for backend in BACKENDS}
    for backend in BACKENDS:
        for name in CONTENDERS:
            try:
                run_on(backend, probe, name)
            except Exception as exc:
                unsupported[backend][name] = f"{name} on {backend}: {reason(exc)}"
                progress(unsupported[backend][name])
    for backend in BACKENDS:
        progress(f"hit and miss cost on {backend}")
        # One run for every contender: each one's failures are caught inside.
        with captured_logs():
            report.hits[backend] = anyio.run(
                bench_hits, params, unsupported[backend], backend=backend
            )
    for backend in BACKENDS:
        for name in CONTENDERS:
            if name in unsupported[backend]:
                failed = unsupported[backend][name]
                report.stampede[name, backend] = BurstResult(failed=failed)
                report.fanout[name, backend] = BurstResult(failed=failed)
                report.swarm[name, backend] = SwarmResult(failed=failed)
                report.cancel[name, backend] = CancelResult(failed=failed)
                continue
            progress(f"stampede and fan-out: {name} on {backend}")
            try:
                stampede, fanout = run_on(backend, bench_bursts, params, name)
            except Exception as exc:  # the run itself broke, not only the peer
                stampede, fanout = BurstResult(failed=reason(exc)), BurstResult(failed=reason(exc))
            report.stampede[name, backend] = stampede
            report.fanout[name, backend] = fanout
    plan = swarm_plan(params)
    names: list[str | None] = [None, *CONTENDERS, *SWARM_ONLY]
    for rep in range(params.swarm_reps):
        for backend in BACKENDS:
            # Rotate the order each rep so no contender always runs first.
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                label = name or "no cache"
                total = report.swarm.setdefault((label, backend), SwarmResult())
                if name in SWARM_SKIPPED:
                    total.failed = SWARM_SKIPPED[name]
                if total.failed is not None:
                    continue
                progress(f"swarm {rep + 1}/{params.swarm_reps}: {label} on {backend}")
                reset_metrics()
                try:
                    once = run_on(backend, swarm_once, params, plan, name)
                except Exception as exc:
                    total.failed = reason(exc)
                    continue
                if name == "agent_cache":
                    for key, value in get_metrics().items():
                        total.metrics[key] = total.metrics.get(key, 0) + value
                total.seconds += once.seconds
                total.stale += once.stale
                total.loads += once.loads
                total.reads += once.reads
                total.calls += once.calls
    for backend in BACKENDS:
        for name in CONTENDERS:
            if name in unsupported[backend]:
                continue
            progress(f"leader cancellation: {name} on {backend}")
            try:
                report.cancel[name, backend] = run_on(
                    backend, bench_cancel, params, name, strict=False
                )
            except Exception as exc:
                report.cancel[name, backend] = CancelResult(failed=reason(exc))
    report.seconds = time.perf_counter() - start
    return report


# -- the report ---------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(where: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def measured_code() -> str:
    """Which agent_cache was measured: its path, commit, and whether it was edited.

    The package is installed editable and others edit the tree while this runs:
    benchmark a clean checkout (``PYTHONPATH=<clone>``) and say which.
    """
    package = Path(agent_cache.__file__).resolve().parent
    commit = _git(package, "rev-parse", "--short", "HEAD")
    if commit is None:
        return f"agent_cache from {package} (not a git checkout)"
    dirty = _git(package, "status", "--porcelain", "--", ".")
    state = "with uncommitted changes" if dirty else "clean"
    return f"agent_cache from {package}, commit {commit} ({state})"


def environment(argv: list[str]) -> list[str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dists = ["agent_cache", "anyio", "trio", "async-lru", "asyncstdlib", "aiocache", "cashews"]
    return [
        f"- command: `{' '.join(['python', 'benchmarks/bench_cache.py', *argv])}`",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- code: {measured_code()}",
        f"- machine: {platform.machine()}, {cores} cores (nproc), {platform.system()}"
        f" {platform.release()}",
        f"- python {platform.python_version()} ({platform.python_implementation()}); "
        + ", ".join(f"{d} {_version(d)}" for d in dists),
    ]


def _fmt_loads(loads: list[int]) -> str:
    low, high = min(loads), max(loads)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


class Notes:
    """Numbered footnotes, so a reason repeated across a row is printed once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def na(self, failed: str | None) -> str:
        text = failed or "not measured"
        if text not in self.reasons:
            self.reasons.append(text)
        return f"n/a [{self.reasons.index(text) + 1}]"


def hit_cells(report: Report, name: str, backend: str, notes: Notes) -> tuple[str, str]:
    results = report.hits.get(backend, {})
    hit, raw = results.get(name), results.get("raw")
    if hit is None or raw is None or not raw.ns or not raw.miss_ns:
        return "n/a", "n/a"
    if hit.failed is not None or hit.ns is None or hit.miss_ns is None:
        return notes.na(hit.failed), notes.na(hit.failed)
    return (
        f"{hit.ns:,.0f} ns ({hit.ns / raw.ns:.1f}x)",
        f"{hit.miss_ns:,.0f} ns ({hit.miss_ns / raw.miss_ns:.0f}x)",
    )


def burst_cells(result: BurstResult | None, notes: Notes) -> tuple[str, str]:
    if result is None or result.failed is not None or not result.seconds:
        failed = result.failed if result is not None else None
        return notes.na(failed), notes.na(failed)
    ms = statistics.median(result.seconds) * 1e3
    base = statistics.median(result.baseline) * 1e3
    wrong = f", {result.wrong} wrong values" if result.wrong else ""
    return _fmt_loads(result.loads) + wrong, f"{ms:,.0f} vs {base:,.0f} ms ({result.ratio:.2f}x)"


def _swarm_rate(result: SwarmResult) -> float:
    return result.calls / len(result.seconds) / statistics.median(result.seconds)


def swarm_ok(result: SwarmResult | None) -> bool:
    return result is not None and result.failed is None and bool(result.seconds)


def paired(report: Report, other: str, backend: str) -> list[float]:
    """Per swarm round, ``other``'s time over agent_cache's in that round,
    sorted (above 1: agent_cache was faster). Pairing by round cancels most of
    the drift of a shared machine, which moves both runs of a round alike."""
    mine = report.swarm.get(("agent_cache", backend))
    theirs = report.swarm.get((other, backend))
    if mine is None or theirs is None or not swarm_ok(mine) or not swarm_ok(theirs):
        return []
    if len(mine.seconds) != len(theirs.seconds):  # one of them failed mid-way
        return []
    return sorted(t / m for m, t in zip(mine.seconds, theirs.seconds, strict=True))


def swarm_cells(report: Report, label: str, backend: str, notes: Notes) -> tuple[str, str]:
    result = report.swarm.get((label, backend))
    if result is None or not swarm_ok(result):
        failed = result.failed if result is not None else None
        return notes.na(failed), notes.na(failed)
    base = report.swarm.get(("no cache", backend))
    rate = _swarm_rate(result)
    text = f"{rate:,.0f}/s"
    if swarm_ok(base) and label != "no cache":
        text += f" ({rate / _swarm_rate(base):.2f}x)"  # type: ignore[arg-type]
    return text, f"{result.stale:,}"


def cancel_cell(result: CancelResult | None, others: int, notes: Notes) -> str:
    if result is None or result.failed is not None:
        return notes.na(result.failed if result is not None else None)
    parts = [f"{result.completed}/{others}"]
    if result.cancelled:
        parts.append(f"{result.cancelled} got CancelledError")
    if result.errors:
        parts.append(f"{result.errors} errors")
    if result.stranded:
        parts.append(f"{result.stranded} stranded")
    return ", ".join(parts)


def render(report: Report, params: Params, argv: list[str]) -> str:
    n = params.burst_callers
    swarm_calls = params.swarm_agents * params.swarm_calls
    others = params.cancel_callers - 1
    notes = Notes()
    lines = [
        "# agent_cache benchmark",
        "",
        *environment(argv),
        f"- total time: {report.seconds:.0f} s",
        "",
        "## How",
        "",
        f"- hit: median of {params.hit_rounds} rounds (up to {params.hit_calls:,} calls each, "
        "rounds of all contenders interleaved), ratio to an `await` of the undecorated "
        "trivial coroutine on the same backend in the same run. cold miss: the same "
        "trivial tool called with a key never seen before (maxsize 128), median of "
        f"{params.miss_rounds} rounds, ratio to the same loop around the raw await.",
        f"- stampede: {n:,} concurrent callers of one cold key; fan-out: {n:,} callers over "
        f"{params.fanout_keys} cold keys; loader `await anyio.sleep({LOAD_SECONDS})`. Time: "
        f"median of {params.burst_reps} bursts against {n:,} tasks each awaiting the "
        "undecorated loader in the same run, alternating; the ratio is the median of "
        "per-burst ratios.",
        f"- swarm: {params.swarm_agents} agents x {params.swarm_calls} calls "
        f"({swarm_calls:,} calls), keys Zipf s={ZIPF_S} over {params.swarm_keys:,} (seed "
        f"{SEED}, every contender replays the same keys); the read loads in "
        f"`anyio.sleep({LOAD_SECONDS})` the version the store had when it began; every "
        f"{WRITE_EVERY}th call of an agent is a write (1 ms, then bumps that key's version) "
        "and clears the whole resource (agent_cache: `AgentCacheInvalidator`; peers: their "
        "clear API after the write). Caches unbounded. Median of "
        f"{params.swarm_reps} rounds of every swarm, each in a fresh event loop, the order "
        "rotating; agent_cache is also compared with each other swarm round by round. "
        f"`{FLOOR}` is a yardstick, not a peer: a dict of values and one of running loads, "
        "both cleared after each write, nothing else (see `make_floor`). A stale read "
        "started after a write of its key had returned and got an older version (summed "
        "over all swarms).",
        f"- leader cancelled: {params.cancel_callers} callers of one cold key (50 ms load), "
        f"the caller running the load cancelled mid-load: how many of the other {others} "
        "got the value (others: got CancelledError, got an error, or still waiting after "
        "5 s = stranded).",
        "",
        "## Results",
        "",
        "| library | backend | hit (x raw) | cold miss (x raw) | stampede loads "
        "| stampede time (x no cache) | fan-out loads | fan-out time (x no cache) "
        "| swarm calls/s (x no cache) | stale reads | leader cancelled: others completed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        raw = report.hits.get(backend, {}).get("raw")
        raw_hit = f"{raw.ns:,.0f} ns" if raw is not None and raw.ns else "n/a"
        raw_miss = f"{raw.miss_ns:,.0f} ns" if raw is not None and raw.miss_ns else "n/a"
        rate, stale = swarm_cells(report, "no cache", backend, notes)
        lines.append(
            f"| no cache (raw await) | {backend} | {raw_hit} | {raw_miss} | {n:,} | - "
            f"| {n:,} | - | {rate} | {stale} | - |"
        )
        for name in CONTENDERS:
            hit, miss = hit_cells(report, name, backend, notes)
            st_loads, st_time = burst_cells(report.stampede.get((name, backend)), notes)
            fo_loads, fo_time = burst_cells(report.fanout.get((name, backend)), notes)
            rate, stale = swarm_cells(report, name, backend, notes)
            cancel = cancel_cell(report.cancel.get((name, backend)), others, notes)
            lines.append(
                f"| {name} | {backend} | {hit} | {miss} | {st_loads} | {st_time} "
                f"| {fo_loads} | {fo_time} | {rate} | {stale} | {cancel} |"
            )
    if notes.reasons:
        lines += ["", *(f"[{i}] {text}  " for i, text in enumerate(notes.reasons, 1))]
    lines += [
        "",
        "Swarm details (per swarm, medians; a load is one run of the read loader):",
        "",
        "| library | backend | seconds | calls/s | x no cache | loads | reads served without "
        "a load | stale reads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        base = report.swarm.get(("no cache", backend))
        for label in ["no cache", *CONTENDERS, *SWARM_ONLY]:
            result = report.swarm.get((label, backend))
            if result is None or not swarm_ok(result):
                continue
            runs = len(result.seconds)
            rate = _swarm_rate(result)
            versus = f"{rate / _swarm_rate(base):.2f}x" if swarm_ok(base) else "n/a"  # type: ignore[arg-type]
            reads = result.reads / runs
            loads = result.loads / runs
            lines.append(
                f"| {label} | {backend} | {statistics.median(result.seconds):.2f} "
                f"| {rate:,.0f} | {versus} | {loads:,.0f} | {1 - loads / reads:.0%} "
                f"| {result.stale:,} |"
            )
    lines += [
        "",
        "agent_cache against each other swarm, paired by round: the other's time over "
        "agent_cache's in the same round (above 1: agent_cache was faster).",
        "",
        "| other | backend | median | lowest - highest | rounds agent_cache was faster |",
        "|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        for label in ["no cache", *CONTENDERS, *SWARM_ONLY]:
            ratios = paired(report, label, backend) if label != "agent_cache" else []
            if ratios:
                faster = sum(r > 1 for r in ratios)
                lines.append(
                    f"| {label} | {backend} | {statistics.median(ratios):.3f} "
                    f"| {ratios[0]:.3f} - {ratios[-1]:.3f} | {faster}/{len(ratios)} |"
                )
    for backend in BACKENDS:
        mine = report.swarm.get(("agent_cache", backend))
        if mine is None or not swarm_ok(mine) or not mine.metrics:
            continue
        m = {key: value / len(mine.seconds) for key, value in mine.metrics.items()}
        lines.append(
            f"\nagent_cache's counters per swarm on {backend}: {m['hits']:,.0f} hits, "
            f"{m['coalesced']:,.0f} joined a running load, {m['loads']:,.0f} loads, of "
            f"which {m['stale_discarded']:,.0f} finished after an invalidation and were not "
            f"stored; {m['invalidations']:,.0f} invalidating writes."
        )
    lines += ["", "## agent_cache targets", ""]
    lines += [f"- {line}" for line in targets(report, params)]
    return "\n".join(lines) + "\n"


def targets(report: Report, params: Params) -> list[str]:
    """PASS/MISS for each target the brief sets agent_cache."""
    out = []
    name = "agent_cache"
    others = params.cancel_callers - 1
    for backend in BACKENDS:
        hits = report.hits.get(backend, {})
        hit, raw = hits.get(name), hits.get("raw")
        if hit and raw and hit.ns and raw.ns:
            ratio = hit.ns / raw.ns
            ok = "PASS" if ratio <= 4 else "MISS"
            out.append(f"{ok}: hit <= 4x raw on {backend}: {ratio:.1f}x")
        stampede = report.stampede.get((name, backend))
        if stampede and stampede.failed is None and stampede.seconds:
            ok = "PASS" if stampede.ratio <= 1.1 and set(stampede.loads) == {1} else "MISS"
            out.append(
                f"{ok}: stampede 1 load and <= 1.1x no cache on {backend}: loads "
                f"{_fmt_loads(stampede.loads)}, {stampede.ratio:.2f}x"
            )
        fanout = report.fanout.get((name, backend))
        if fanout and fanout.failed is None and fanout.loads:
            ok = "PASS" if set(fanout.loads) == {params.fanout_keys} else "MISS"
            out.append(
                f"{ok}: fan-out exactly {params.fanout_keys} loads on {backend}: "
                f"{_fmt_loads(fanout.loads)}"
            )
        mine = report.swarm.get((name, backend))
        if mine and mine.failed is None and mine.seconds:
            rate = _swarm_rate(mine)
            # Ahead of a peer: faster in the median round, paired (see `paired`).
            ahead = {
                peer: statistics.median(ratios)
                for peer in CONTENDERS
                if peer != name and (ratios := paired(report, peer, backend))
            }
            beaten = [f"{peer} ({r:.3f})" for peer, r in ahead.items() if r <= 1]
            ok = "PASS" if not beaten and mine.stale == 0 else "MISS"
            detail = (
                f"not ahead of: {', '.join(beaten)}" if beaten else "ahead of every peer that ran"
            )
            base = report.swarm.get(("no cache", backend))
            versus = f"{rate / _swarm_rate(base):.2f}x no cache; " if swarm_ok(base) else ""  # type: ignore[arg-type]
            out.append(
                f"{ok}: swarm ahead of every peer (paired median), 0 stale reads on {backend}: "
                f"{versus}{detail}; {mine.stale} stale"
            )
        cancel = report.cancel.get((name, backend))
        if cancel and cancel.failed is None:
            ok = "PASS" if cancel.completed == others else "MISS"
            out.append(
                f"{ok}: leader cancelled, {others} others complete on {backend}: "
                f"{cancel_cell(cancel, others, Notes())}"
            )
    return out


def chart(report: Report, path: Path) -> bool:
    """Draw the headline figures as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("no matplotlib (the bench extra has it): no chart")
        return False
    panels = [
        ("cache hit, x raw await, log scale (lower is better)", "hit"),
        ("swarm throughput, x no cache (higher is better)", "swarm"),
        ("stale reads in the swarm (lower is better)", "stale"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (title, what) in zip(axes, panels, strict=True):
        labels: list[str] = []
        values: list[float] = []
        for backend in BACKENDS:
            raw = report.hits.get(backend, {}).get("raw")
            base = report.swarm.get(("no cache", backend))
            for name in CONTENDERS:
                value: float | None = None
                if what == "hit":
                    hit = report.hits.get(backend, {}).get(name)
                    if hit is not None and hit.ns and raw is not None and raw.ns:
                        value = hit.ns / raw.ns
                else:
                    result = report.swarm.get((name, backend))
                    if result is not None and swarm_ok(result):
                        if what == "stale":
                            value = float(result.stale)
                        elif swarm_ok(base):
                            value = _swarm_rate(result) / _swarm_rate(base)  # type: ignore[arg-type]
                if value is not None:
                    labels.append(f"{name}\n({backend})")
                    values.append(value)
        colors = ["tab:green" if "agent_cache" in label else "tab:gray" for label in labels]
        ax.barh(labels, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        if what == "hit":
            ax.set_xscale("log")
        if what == "swarm":
            ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        for y, v in enumerate(values):
            ax.text(
                v, y, f" {v:,.2f}" if what != "stale" else f" {v:,.0f}", va="center", fontsize=7
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the markdown (default: {RESULTS.relative_to(HERE.parent)}; "
        "--quick writes nothing unless given)",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    params = QUICK if args.quick else FULL
    report = run_all(params)
    text = render(report, params, argv)
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        progress(f"written to {output}")
        png = output.with_suffix(".png")
        if chart(report, png):
            progress(f"chart written to {png}")


if __name__ == "__main__":
    main()
