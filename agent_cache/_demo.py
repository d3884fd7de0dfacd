"""The swarm demo behind ``agent-cache demo``: simulated agents on a fake slow backend.

Each agent runs in its own `AgentCacheSession` and makes the calls a support
or shopping agent makes: look up a customer, read a cart, search the catalogue,
add to the cart (a write that invalidates the cart). A few agents are broken on
purpose: one repeats the same search, one oscillates between reading and
writing the same thing, one never stops. Loop detection stops them.

The report compares the backend calls made with the calls that would have been
made without the cache, and checks the cache's promise: a read that started
after a write had returned never saw data older than that write.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from ._decorators import AgentCache, AgentCacheInvalidator
from ._errors import AgentLoopDetectedError
from ._metrics import get_metrics
from ._runtime import Runtime
from ._session import AgentCacheSession

__all__ = ["DemoConfig", "run_demo"]

RESOURCES = ("crm", "cart", "catalog")


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs."""

    agents: int = 300
    duration: float = 5.0
    latency: float = 0.02
    users: int = 200
    seed: int = 1
    loopers: int = 6
    progress: bool = True


@dataclass
class _Backend:
    """The fake slow datastore: counts calls, versions each cart."""

    latency: float
    calls: Counter[str] = field(default_factory=Counter)
    carts: dict[str, int] = field(default_factory=dict)

    async def io(self, kind: str) -> None:
        self.calls[kind] += 1
        await anyio.sleep(self.latency)


def _zipf_user(rng: random.Random, users: int) -> str:
    return f"u{min(int(rng.paretovariate(1.1)), users)}"


async def run_demo(config: DemoConfig, out: TextIO = sys.stderr) -> dict[str, Any]:
    """Run the swarm and return its report (plain data, JSON-ready)."""
    backend = _Backend(config.latency)
    rng = random.Random(config.seed)

    @AgentCache(resource="crm", ttl=300, maxsize=10_000)
    async def get_customer(user: str) -> dict[str, str]:
        await backend.io("crm")
        return {"id": user, "tier": "gold" if user.endswith("7") else "basic"}

    @AgentCache(resource="cart", ttl=60, maxsize=10_000)
    async def get_cart(user: str) -> int:
        version = backend.carts.get(user, 0)
        await backend.io("cart")
        return version

    @AgentCache(resource="catalog", ttl=600, maxsize=10_000)
    async def search_catalog(query: str, page: int = 1) -> list[str]:
        await backend.io("catalog")
        return [f"{query}-{page}-{i}" for i in range(3)]

    @AgentCacheInvalidator(resource="cart", key_fn=lambda args, kwargs: args[0])
    async def add_to_cart(user: str, item: str) -> None:
        await backend.io("cart-write")
        backend.carts[user] = backend.carts.get(user, 0) + 1

    calls = Counter[str]()
    stale = 0
    written: dict[str, int] = {}  # user -> cart version once its write returned
    loops = Counter[str]()
    deadline = time.monotonic() + config.duration

    async def read_cart(user: str) -> None:
        nonlocal stale
        calls["tool calls"] += 1
        floor = written.get(user, 0)  # what a write had returned before this read began
        if await get_cart(user) < floor:
            stale += 1

    async def write_cart(user: str, item: str) -> None:
        calls["tool calls"] += 1
        await add_to_cart(user, item)
        calls["writes"] += 1
        written[user] = max(written.get(user, 0), backend.carts[user])

    async def read(tool: Any, *args: Any, **kwargs: Any) -> None:
        calls["tool calls"] += 1
        await tool(*args, **kwargs)

    async def ticket(agent_rng: random.Random) -> None:
        """One agent run: a customer's ticket."""
        user = _zipf_user(agent_rng, config.users)
        await read(get_customer, user)
        await read_cart(user)
        for _ in range(agent_rng.randrange(1, 4)):
            query = f"q{min(int(agent_rng.paretovariate(1.2)), 300)}"
            await read(search_catalog, query, page=agent_rng.choice((1, 1, 2)))
            await anyio.sleep(agent_rng.uniform(0, 0.005))  # the model thinking
        if agent_rng.random() < 0.3:
            await write_cart(user, f"item{agent_rng.randrange(50)}")
            await read_cart(user)  # check the work

    async def honest(agent: int) -> None:
        agent_rng = random.Random(rng.random())
        while time.monotonic() < deadline:
            try:
                # Each ticket is one agent run, in a session of its own.
                async with AgentCacheSession(session_id=f"agent-{agent}"):
                    await ticket(agent_rng)
            except AgentLoopDetectedError as exc:  # would be a false positive
                loops[f"false positive: {exc.kind}"] += 1

    async def looper(agent: int) -> None:
        style = ("repeat", "cycle", "depth")[agent % 3]
        try:
            # No deadline: loop detection is what stops these (within the
            # default depth budget of 50 calls at the latest).
            async with AgentCacheSession(session_id=f"looper-{agent}"):
                for step in range(10**6):
                    if style == "repeat":
                        await read(search_catalog, "the same thing")
                    elif style == "cycle":
                        if step % 2:
                            await write_cart(f"u{agent}", "the same item")
                        else:
                            await read_cart(f"u{agent}")
                    else:
                        await read(get_customer, f"u{step}")
                    await anyio.sleep(0.001)
        except AgentLoopDetectedError as exc:
            loops[exc.kind] += 1

    async def progress() -> None:
        start = time.monotonic()
        while True:
            done = min(1.0, (time.monotonic() - start) / max(config.duration, 1e-9))
            bar = "#" * int(done * 30)
            out.write(
                f"\r[{bar:<30}] {done:4.0%}  tool calls {calls['tool calls']:>7}  "
                f"backend calls {sum(backend.calls.values()):>6}"
            )
            out.flush()
            if done >= 1.0:
                out.write("\n")
                return
            await anyio.sleep(0.1)

    before = {r: get_metrics(r) for r in RESOURCES}
    start = time.perf_counter()
    async with Runtime(), anyio.create_task_group() as tg:
        if config.progress and out.isatty():
            tg.start_soon(progress)
        for i in range(config.loopers):
            tg.start_soon(looper, i)
        for i in range(config.agents - config.loopers):
            tg.start_soon(honest, i)
    elapsed = time.perf_counter() - start

    per_resource: dict[str, dict[str, float]] = {}
    totals = Counter[str]()
    for resource in RESOURCES:
        now = get_metrics(resource)
        figures = {
            k: now[k] - before[resource][k]
            for k in ("hits", "misses", "coalesced", "invalidations", "stale_discarded")
        }
        n = figures["hits"] + figures["misses"] + figures["coalesced"]
        figures["calls"] = n
        figures["hit_rate"] = round(figures["hits"] / n, 4) if n else 0.0
        per_resource[resource] = figures
        totals.update({k: int(v) for k, v in figures.items() if k != "hit_rate"})
    backend_calls = sum(backend.calls.values())
    return {
        "agents": config.agents,
        "elapsed_s": round(elapsed, 3),
        "tool_calls": calls["tool calls"],
        "writes": calls["writes"],
        "backend_calls": backend_calls,
        "backend_calls_without_cache": calls["tool calls"],
        "saved_ratio": round(1 - backend_calls / max(calls["tool calls"], 1), 4),
        "coalesced": totals["coalesced"],
        "stale_results_discarded": totals["stale_discarded"],
        "stale_reads": stale,
        "loops_caught": dict(sorted(loops.items())),
        "resources": per_resource,
        "throughput_calls_per_s": math.floor(calls["tool calls"] / elapsed) if elapsed else 0,
    }
