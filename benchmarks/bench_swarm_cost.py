"""The work each cache does in the swarm mix, counted in instructions: noise-free.

Run alone (never collected by pytest), with valgrind installed (Debian's
``valgrind`` package):

    pip install -e '.[bench]'
    python benchmarks/bench_swarm_cost.py          # ~6 min, writes results/swarm_cost.md
    python benchmarks/bench_swarm_cost.py --quick  # a smaller swarm, ~3 min, writes nothing

Why: the swarm of ``bench_cache.py`` is CPU-bound, and on these shared
machines the same swarm took anywhere from 2.8 to 4.7 s in one process, so a
few percent between two caches is below what wall-clock medians can tell. Here
the swarm runs in *virtual time* -- every 1 ms load and write takes 1 ms of a
clock that only the event loop moves (trio's ``MockClock``, a small virtual
selector loop on asyncio) -- so its schedule does not depend on how fast the
machine is, and valgrind's callgrind counts the instructions it executes:
repeatable to within about 1% (trio's scheduler shuffles its batches), however
busy the machine. Each figure is one process running one swarm, minus a
process that builds the same plan and runs no swarm.

Contenders: no cache, agent_cache, the peers that run on the backend and are
fast enough to run under callgrind (aiocache and cashews take minutes), and
the floor (``bench_cache.make_floor``): the least work a correct single-flight
cache can do here. The gap between it and agent_cache is what agent_cache's
guarantees and structure cost.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cache as bc

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "swarm_cost.md"
BACKENDS = ("asyncio", "trio")
CONTENDERS = {
    "asyncio": ["no cache", bc.FLOOR, "agent_cache", "asyncstdlib lru_cache", "async-lru"],
    "trio": ["no cache", bc.FLOOR, "agent_cache", "asyncstdlib lru_cache"],
}
FULL = (500, 40)  # agents, calls each: 20,000 calls, every 20th a write
QUICK = (200, 20)


# -- virtual time ---------------------------------------------------------------


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock moves only when it would otherwise sleep."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        real = self._selector  # type: ignore[has-type]
        loop = self

        class Selector:
            def select(self, timeout: float | None = None) -> Any:
                events = real.select(0)
                if not events and timeout is not None and timeout > 0:
                    loop._now += timeout  # sleep by moving the clock instead
                return events

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        self._selector = Selector()  # type: ignore[assignment]

    def time(self) -> float:
        return self._now


def backend_options(backend: str) -> dict[str, Any]:
    if backend == "trio":
        import trio.testing

        # trio shuffles each batch of runnable tasks with this generator; seed
        # it so reruns schedule alike (private, hence the guard).
        generator = getattr(getattr(trio, "_core", None), "_run", None)
        if generator is not None and hasattr(generator, "_r"):
            generator._r.seed(0)
        return {"clock": trio.testing.MockClock(autojump_threshold=0)}
    return {"loop_factory": VirtualTimeLoop}


# -- one measured process --------------------------------------------------------


def child(backend: str, name: str, agents: int, calls: int) -> None:
    """Run one swarm (``name`` "skip": none) and print what it did."""
    params = dataclasses.replace(bc.FULL, swarm_agents=agents, swarm_calls=calls)
    plan = bc.swarm_plan(params)
    if name == "skip":
        return
    contender = None if name == "no cache" else name
    result = anyio.run(
        bc.swarm_once, params, plan, contender, backend=backend,
        backend_options=backend_options(backend),
    )  # fmt: skip
    print(f"loads={result.loads} stale={result.stale} calls={result.calls}")


_COLLECTED = re.compile(r"Collected : (\d+)")


def measure(backend: str, name: str, agents: int, calls: int) -> tuple[int, str]:
    """Instructions of one child process, and what it printed."""
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--child", backend, name, str(agents), str(calls),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{name} on {backend} failed: {' / '.join(tail)}")
    return int(found.group(1)), done.stdout.strip()


def run(agents: int, calls: int, progress: Callable[[str], None]) -> list[str]:
    rows: list[str] = []
    for backend in BACKENDS:
        base, _ = measure(backend, "skip", agents, calls)
        results: dict[str, tuple[int, str]] = {}
        for name in CONTENDERS[backend]:
            progress(f"{name} on {backend}")
            try:
                total, out = measure(backend, name, agents, calls)
            except RuntimeError as exc:
                rows.append(f"| {name} | {backend} | n/a: {exc} | | | |")
                continue
            results[name] = (total - base, out)
        plain = results.get("no cache", (0, ""))[0]
        for name, (work, out) in results.items():
            fields = dict(item.split("=") for item in out.split())
            versus = f"{work / plain:.3f}x" if plain else "n/a"
            rows.append(
                f"| {name} | {backend} | {work / 1e6:,.0f} M | {versus} "
                f"| {int(fields['loads']):,} | {int(fields['stale']):,} |"
            )
    return rows


def render(rows: list[str], agents: int, calls: int, argv: list[str]) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Work per swarm, in instructions (virtual time, callgrind)",
            "",
            f"- command: `{' '.join(['python', 'benchmarks/bench_swarm_cost.py', *argv])}`",
            f"- date: {date}",
            f"- code: {bc.measured_code()}",
            f"- machine: {platform.machine()}, {cores} cores, python {platform.python_version()}",
            f"- swarm: {agents} agents x {calls} calls, Zipf keys as in bench_cache.py, every "
            f"{bc.WRITE_EVERY}th call a write clearing the resource; 1 ms loads and writes in "
            "virtual time. Instructions of the process minus one that runs no swarm.",
            "",
            'Lower is better; "x no cache" is the work against the same swarm with no cache.',
            "",
            "| contender | backend | instructions | x no cache | loads | stale reads |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        backend, name, agents, calls = argv[1:5]
        child(backend, name, int(agents), int(calls))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller swarm; writes nothing")
    parser.add_argument("--output", type=Path, help=f"default: {RESULTS.relative_to(HERE.parent)}")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("bench_swarm_cost.py needs valgrind (Debian: apt install valgrind)")
    agents, calls = QUICK if args.quick else FULL
    rows = run(agents, calls, bc.progress)
    text = render(rows, agents, calls, argv)
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        output.write_text(text)
        bc.progress(f"written to {output}")


if __name__ == "__main__":
    main()
