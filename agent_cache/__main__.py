"""``python -m agent_cache``: a small simulated agent swarm on the in-memory cache.

Agents read a CRM and a cart through cached tools, sometimes add to the cart
(an invalidating write), over a fake backend with latency. At the end the
report says how many backend calls the cache saved and checks that no read
that started after a write returned data older than that write.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence

import anyio

from . import AgentCache, AgentCacheInvalidator, Runtime, get_metrics


class Backend:
    """A fake slow datastore that counts its calls and versions each cart."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0
        self.carts: dict[str, int] = {}
        self.last_write_done: dict[str, int] = {}

    async def read_cart(self, user: str) -> int:
        self.calls += 1
        version = self.carts.get(user, 0)
        await anyio.sleep(self.latency)
        return version

    async def read_customer(self, user: str) -> str:
        self.calls += 1
        await anyio.sleep(self.latency)
        return f"customer {user}"

    async def add_to_cart(self, user: str) -> None:
        self.calls += 1
        await anyio.sleep(self.latency)
        self.carts[user] = self.carts.get(user, 0) + 1


async def run_swarm(
    agents: int, calls: int, users: int, latency: float, seed: int
) -> dict[str, object]:
    """Run the swarm and return its report."""
    backend = Backend(latency)
    rng = random.Random(seed)

    @AgentCache(resource="cart", ttl=60)
    async def get_cart(user: str) -> int:
        return await backend.read_cart(user)

    @AgentCache(resource="crm", ttl=300)
    async def get_customer(user: str) -> str:
        return await backend.read_customer(user)

    @AgentCacheInvalidator(resource="cart", key_fn=lambda args, kwargs: args[0])
    async def add_to_cart(user: str) -> None:
        await backend.add_to_cart(user)

    stale = 0
    uncached_calls = 0
    written: dict[str, int] = {}  # user -> version once the write returned

    async def agent(plan: list[tuple[str, str]]) -> None:
        nonlocal stale, uncached_calls
        for kind, user in plan:
            uncached_calls += 1
            if kind == "write":
                await add_to_cart(user)
                written[user] = backend.carts[user]
            elif kind == "cart":
                floor = written.get(user, 0)
                if await get_cart(user) < floor:
                    stale += 1
            else:
                await get_customer(user)

    plans = []
    for _ in range(agents):
        plan = []
        for _ in range(calls):
            user = f"u{min(int(rng.paretovariate(1.2)), users)}"
            roll = rng.random()
            kind = "write" if roll < 0.05 else "cart" if roll < 0.6 else "crm"
            plan.append((kind, user))
        plans.append(plan)

    before = {r: get_metrics(r) for r in ("cart", "crm")}
    start = time.perf_counter()
    async with Runtime(), anyio.create_task_group() as tg:
        for plan in plans:
            tg.start_soon(agent, plan)
    elapsed = time.perf_counter() - start
    per_resource = {}
    for resource, old in before.items():
        new = get_metrics(resource)
        delta = {k: new[k] - old[k] for k in ("hits", "misses", "coalesced", "invalidations")}
        calls_made = delta["hits"] + delta["misses"] + delta["coalesced"]
        delta["hit_rate"] = round(delta["hits"] / calls_made, 4) if calls_made else 0.0
        per_resource[resource] = delta
    return {
        "agents": agents,
        "tool_calls": uncached_calls,
        "backend_calls": backend.calls,
        "backend_calls_saved": uncached_calls - backend.calls,
        "stale_reads": stale,
        "elapsed_s": round(elapsed, 3),
        "resources": per_resource,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m agent_cache``."""
    parser = argparse.ArgumentParser(prog="python -m agent_cache", description=__doc__)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--calls", type=int, default=50, help="tool calls per agent")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.005, help="backend seconds per call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.calls < 1 or args.users < 1 or args.latency < 0:
        parser.error("--agents, --calls and --users must be >= 1, --latency >= 0")
    report = anyio.run(
        run_swarm,
        args.agents,
        args.calls,
        args.users,
        args.latency,
        args.seed,
        backend=args.backend,
    )
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"agent_cache swarm on {args.backend}: {report['agents']} agents")
        for key, value in report.items():
            if key != "resources":
                print(f"  {key:22} {value}")
        for resource, figures in report["resources"].items():  # type: ignore[attr-defined]
            print(f"  {resource:22} {figures}")
    return 0 if report["stale_reads"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
