"""Session costs: a cache hit inside a session with loop detection on, and
calls per second over long sessions of distinct calls (10k vs 100k).

Run: python benchmarks/bench_session.py [--quick]
Writes benchmarks/results/session.md. Baseline: ``await`` of the undecorated
coroutine and a hit outside any session, same backend, same run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio

from agent_cache import AgentCache, AgentCacheSession, Runtime


async def raw(x: int) -> int:
    return x


tool = AgentCache(resource="bench", maxsize=None)(raw)
# A bounded cache for the long sessions: 100k entries would measure the
# garbage collector walking them, not the session.
bounded = AgentCache(resource="bench-long", maxsize=1024)(raw)


async def per_call_ns(fn: Callable[[int], Awaitable[Any]], n: int, rounds: int) -> float:
    for _ in range(n // 10 + 1):
        await fn(1)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await fn(1)
        samples.append((time.perf_counter() - start) / n * 1e9)
    return statistics.median(samples)


_fresh = itertools.count()


async def distinct_calls_per_second(n: int) -> float:
    # Keys never used before: every call is a miss (lookup, tool run, store),
    # whichever session size is measured first.
    base = next(_fresh) * 10**9
    async with AgentCacheSession(max_execution_depth=10**9) as session:
        start = time.perf_counter()
        for i in range(base, base + n):
            await bounded(i)
        elapsed = time.perf_counter() - start
    assert len(session.get_execution_trace()) == min(n, 10_000)
    return n / elapsed


async def measure(n: int, rounds: int, long_n: tuple[int, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    async with Runtime():
        out["raw_ns"] = await per_call_ns(raw, n, rounds)
        out["hit_ns"] = await per_call_ns(tool, n, rounds)
        # Huge limits: the same call repeated must not be refused mid-benchmark.
        async with AgentCacheSession(max_tool_repeats=10**9, max_execution_depth=10**9):
            out["session_hit_ns"] = await per_call_ns(tool, n, rounds)
        for size in long_n:
            out[f"distinct_{size}"] = statistics.median(
                [await distinct_calls_per_second(size) for _ in range(3)]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, rounds = (5_000, 5) if args.quick else (50_000, 15)
    long_n = (1_000, 10_000) if args.quick else (10_000, 100_000)
    rows = []
    for backend in ("asyncio", "trio"):
        r = anyio.run(measure, n, rounds, long_n, backend=backend)
        small, large = r[f"distinct_{long_n[0]}"], r[f"distinct_{long_n[1]}"]
        raw_ns, hit_ns, session_ns = r["raw_ns"], r["hit_ns"], r["session_hit_ns"]
        rows.append(
            f"| {backend} | {raw_ns:.0f} | {hit_ns:.0f} ({hit_ns / raw_ns:.1f}x)"
            f" | {session_ns / 1000:.2f} µs ({session_ns / raw_ns:.1f}x)"
            f" | {small:,.0f} | {large:,.0f} | {large / small:.2f} |"
        )
        print(rows[-1], flush=True)
    header = (
        f"| backend | raw await, ns | hit outside a session, ns | hit in a session "
        f"(loop detection on) | distinct calls/s at {long_n[0]:,} | at {long_n[1]:,} | ratio |\n"
        "|---|---|---|---|---|---|---|"
    )
    text = "\n".join(
        [
            "# Session benchmark",
            "",
            f"Command: `python benchmarks/bench_session.py{' --quick' if args.quick else ''}`  ",
            f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, anyio {version('anyio')}, trio {version('trio')}  ",
            f"Medians of {rounds} rounds of {n:,} calls; distinct-call rates are medians of 3 "
            "sessions (each call a miss: lookup, tool run, store).",
            "",
            header,
            *rows,
            "",
            "The ratio compares calls per second in a session of "
            f"{long_n[1]:,} distinct calls with one of {long_n[0]:,}: about 1 means linear time.",
            "",
        ]
    )
    out = Path(__file__).parent / "results" / "session.md"
    if not args.quick:
        out.parent.mkdir(exist_ok=True)
        out.write_text(text)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    main()
