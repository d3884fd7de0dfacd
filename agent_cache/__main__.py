"""The ``agent-cache`` command (also ``python -m agent_cache``).

``agent-cache demo`` (the default) runs a simulated agent swarm on the
in-memory cache and prints a report; ``--json`` prints it for machines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from ._demo import DemoConfig, run_demo


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-cache",
        description="Caching, invalidation and loop detection for AI agent tools.",
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run a simulated agent swarm (the default)")
    for p in (parser, demo):
        p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
        p.add_argument("--agents", type=_positive_int, default=300, help="agents (300)")
        p.add_argument(
            "--duration", type=_non_negative, default=5.0, help="seconds of agent work (5)"
        )
        p.add_argument(
            "--latency", type=_non_negative, default=0.02, help="backend seconds a call (0.02)"
        )
        p.add_argument("--seed", type=int, default=1, help="random seed (1)")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _print_report(report: dict[str, Any]) -> None:
    saved = report["backend_calls_without_cache"] - report["backend_calls"]
    lines = [
        f"agent_cache swarm demo on {report['backend']}: {report['agents']} agents, "
        f"{report['elapsed_s']} s",
        f"  tool calls               {report['tool_calls']:>8}",
        f"  backend calls            {report['backend_calls']:>8}  "
        f"(without the cache: {report['backend_calls_without_cache']}, saved {saved})",
        f"  coalesced calls          {report['coalesced']:>8}  (joined a load already running)",
        f"  stale results discarded  {report['stale_results_discarded']:>8}  "
        "(loads overtaken by a write, never served)",
        f"  stale reads              {report['stale_reads']:>8}  (must be 0)",
        "  loops caught             "
        + (", ".join(f"{k}: {v}" for k, v in report["loops_caught"].items()) or "none"),
        "  hit rate per resource    "
        + ", ".join(f"{r}: {f['hit_rate']:.1%}" for r, f in report["resources"].items()),
    ]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 if any read was stale)."""
    args = _parser().parse_args(argv)
    config = DemoConfig(
        agents=args.agents,
        duration=args.duration,
        latency=args.latency,
        seed=args.seed,
        loopers=min(6, args.agents),
        progress=True,
    )
    report = anyio.run(run_demo, config, backend=args.backend)
    report = {"backend": args.backend, **report}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        _print_report(report)
    return 0 if report["stale_reads"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
