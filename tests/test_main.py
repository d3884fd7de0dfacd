"""The agent-cache command: it runs, exits 0, and its JSON report adds up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_cache", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_json_report_adds_up(backend: str) -> None:
    done = run_cli(
        "demo", "--backend", backend, "--agents", "40", "--duration", "0.5",
        "--latency", "0.005", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == backend
    assert report["agents"] == 40
    assert report["stale_reads"] == 0
    resources = report["resources"]
    assert set(resources) == {"crm", "cart", "catalog"}
    reads = 0
    for figures in resources.values():
        assert figures["hits"] + figures["misses"] + figures["coalesced"] == figures["calls"]
        reads += figures["calls"]
    refused = sum(report["loops_caught"].values())
    assert report["tool_calls"] == reads + report["writes"] + refused
    assert report["backend_calls"] < report["backend_calls_without_cache"]
    assert report["backend_calls_without_cache"] == report["tool_calls"]
    # The six broken agents are all stopped, and no honest agent is.
    assert report["loops_caught"] == {"cycle": 2, "depth": 2, "repeat": 2}


def test_demo_text_report() -> None:
    done = run_cli("--agents", "10", "--duration", "0.2", "--latency", "0.001")
    assert done.returncode == 0, done.stderr
    assert "stale reads                     0  (must be 0)" in done.stdout
    assert "loops caught" in done.stdout


def test_bad_options_are_refused() -> None:
    done = run_cli("demo", "--agents", "0")
    assert done.returncode == 2
    assert "--agents: must be >= 1, not 0" in done.stderr
