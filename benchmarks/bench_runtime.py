"""What one message costs in the actor runtime, against a plain ``await``.

Run alone (pytest never collects it)::

    /work/venv/bin/python benchmarks/bench_runtime.py [--rounds 15] [--ops 20000]

Times, on asyncio and trio, in one process and the same run:

* ``await coro()``: a trivial coroutine, the baseline every ratio is taken to;
* ``ask`` (fast path): an idle actor with an empty mailbox, so the handler runs
  inline in the caller's task;
* ``ask_nowait``: the same without a coroutine (a plain call);
* ``tell_nowait``: the same, for a message with no reply;
* ``ask`` (queued), for reference: the actor has a message pending, so the ask
  goes through the mailbox and the actor loop and back. One op is a
  ``tell_nowait`` whose handler queues a message for the actor itself, then the
  ``ask`` that must wait behind it; the loop task handles both.

Each contender is warmed up, then timed for ``--rounds`` rounds of ``--ops``
operations, the contenders interleaved within each round so that drift in the
machine hits them alike. Reported: the median per-op cost over the rounds (and
the fastest and slowest round), and the ratio of medians to the baseline.
Results go to ``benchmarks/results/runtime.md``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import anyio

from agent_cache.runtime import Actor, ActorRef, ActorSystem, Message, Request

RESULTS = Path(__file__).parent / "results" / "runtime.md"
GOAL_ASK_US = 5.0
BACKENDS = ("asyncio", "trio")


# -- the actor under test ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping(Request[int]):
    pass


@dataclass(frozen=True, slots=True)
class Noop(Message):
    pass


@dataclass(frozen=True, slots=True)
class QueueOne(Message):
    """Tell the actor itself a `Noop` from inside the handler: it is queued."""


class Bench(Actor):
    def __init__(self) -> None:
        self.ref: ActorRef[Bench] | None = None
        self.handled = 0

    def receive(self, message: Message) -> object:
        self.handled += 1
        if type(message) is Ping:
            return 1
        if type(message) is QueueOne:
            assert self.ref is not None
            self.ref.tell_nowait(Noop())
        return None


# -- timed loops: one per contender, the same shape each ----------------------------

Timer = Callable[[int], Awaitable[float]]


async def trivial() -> int:
    return 1


async def time_await(ops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(ops):
        await trivial()
    return (time.perf_counter_ns() - start) / ops / 1000


def timers(ref: ActorRef[Bench]) -> dict[str, Timer]:
    ping, noop, queue_one = Ping(), Noop(), QueueOne()
    ask, tell_nowait = ref.ask, ref.tell_nowait

    async def time_ask(ops: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(ops):
            await ask(ping)
        return (time.perf_counter_ns() - start) / ops / 1000

    ask_nowait = ref.ask_nowait

    async def time_ask_nowait(ops: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(ops):
            ask_nowait(ping)
        return (time.perf_counter_ns() - start) / ops / 1000

    async def time_tell_nowait(ops: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(ops):
            tell_nowait(noop)
        return (time.perf_counter_ns() - start) / ops / 1000

    async def time_queued_ask(ops: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(ops):
            tell_nowait(queue_one)  # leaves one Noop pending
            await ask(ping)  # so this one queues behind it
        return (time.perf_counter_ns() - start) / ops / 1000

    return {
        "await coro() (baseline)": time_await,
        "ask (idle actor, fast path)": time_ask,
        "ask_nowait (idle actor)": time_ask_nowait,
        "tell_nowait (idle actor)": time_tell_nowait,
        "ask (queued behind 1 message)": time_queued_ask,
    }


@dataclass
class Row:
    backend: str
    name: str
    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)


async def measure(backend: str, rounds: int, ops: int) -> list[Row]:
    async with ActorSystem("bench") as system:
        behaviour = Bench()
        ref = system.spawn(lambda: behaviour, name="bench")
        behaviour.ref = ref
        contenders = timers(ref)
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for timer in contenders.values():  # warm-up
            await timer(max(ops // 4, 1))
        for _ in range(rounds):
            gc.collect()
            for name, timer in contenders.items():
                samples[name].append(await timer(ops))
        assert behaviour.handled > 0
        assert ref.stopped is None
    return [Row(backend, name, values) for name, values in samples.items()]


# -- report ---------------------------------------------------------------------------


def machine() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return f"`uname -m` {platform.machine()}, nproc {usable}"


def report(rows: list[Row], rounds: int, ops: int, command: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Actor runtime: cost of one message",
        "",
        f"- command: `{command}`",
        f"- date: {now}",
        f"- python {platform.python_version()}, anyio {version('anyio')}, trio {version('trio')}",
        f"- machine: {machine()}; load average at the end {os.getloadavg()[0]:.2f} "
        "(other jobs share this machine: the fastest round shows the quiet cost)",
        f"- method: {rounds} rounds of {ops:,} ops per contender after a warm-up, "
        "contenders interleaved per round; per-op cost in µs; the median over rounds, "
        "with the fastest and slowest round; ratio = median / median of the baseline "
        "measured in the same run",
        "",
        "| backend | operation | median µs | fastest µs | slowest µs | ratio to await |",
        "|---|---|---:|---:|---:|---:|",
    ]
    baselines = {row.backend: row.median for row in rows if "baseline" in row.name}
    for row in rows:
        ratio = row.median / baselines[row.backend]
        lines.append(
            f"| {row.backend} | {row.name} | {row.median:.3f} | {min(row.rounds):.3f} "
            f"| {max(row.rounds):.3f} | {ratio:.2f} |"
        )
    lines += ["", f"Goal: fast-path `ask` <= {GOAL_ASK_US:g} µs median on both backends."]
    for backend in BACKENDS:
        [ask] = [r for r in rows if r.backend == backend and r.name.startswith("ask (idle")]
        verdict = "met" if ask.median <= GOAL_ASK_US else "MISSED"
        lines.append(f"- {backend}: {ask.median:.3f} µs, {verdict}")
    lines += [
        "",
        "The queued `ask` row is one `tell_nowait` whose handler queues a message for the",
        "actor itself, plus the `ask` that waits behind it: the asker parks, the actor",
        "loop task handles both messages and wakes it (two task switches).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows: list[Row] = []
    for backend in BACKENDS:
        rows += anyio.run(measure, backend, args.rounds, args.ops, backend=backend)
    command = " ".join(["python", "benchmarks/bench_runtime.py", *sys.argv[1:]])
    text = report(rows, args.rounds, args.ops, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
