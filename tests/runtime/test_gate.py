"""Tests for the `Gate` of agent_cache/runtime/_backend.py, on both backends.

The gate is what callers of a running load wait on: open wakes them all, and a
cancelled waiter must leave without disturbing the others (the seed's shared
future handed one waiter's cancellation to everyone).
"""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from agent_cache.runtime import ActorSystem, Gate

pytestmark = pytest.mark.anyio


def new_gate() -> Gate:
    return ActorSystem("test").new_gate()


async def test_open_wakes_every_waiter() -> None:
    gate = new_gate()
    woke: list[int] = []

    async def waiter(i: int) -> None:
        await gate.wait()
        woke.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(waiter, i)
            await wait_all_tasks_blocked()
            assert woke == []
            gate.open()
    assert sorted(woke) == list(range(20))


async def test_wait_on_an_open_gate_returns_at_once() -> None:
    gate = new_gate()
    gate.open()
    gate.open()  # idempotent
    with anyio.fail_after(5):
        await gate.wait()
        await gate.wait()


async def test_a_cancelled_waiter_leaves_and_the_others_still_wake() -> None:
    gate = new_gate()
    woke: list[str] = []
    cancelled = anyio.CancelScope()

    async def waiter(name: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            await gate.wait()
            woke.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "a")
            tg.start_soon(waiter, "victim", cancelled)
            tg.start_soon(waiter, "b")
            await wait_all_tasks_blocked()
            cancelled.cancel()
            await wait_all_tasks_blocked()
            assert woke == []  # the cancellation woke nobody else
            gate.open()
    assert cancelled.cancelled_caught
    assert sorted(woke) == ["a", "b"]


async def test_a_waiter_cancelled_after_open_gets_its_own_cancellation() -> None:
    # Opened and cancelled before the waiter resumed: it leaves cancelled,
    # which is its own cancellation, and the others are unaffected.
    gate = new_gate()
    woke: list[str] = []
    cancelled = anyio.CancelScope()

    async def waiter(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await gate.wait()
            woke.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "victim", cancelled)
            tg.start_soon(waiter, "other", anyio.CancelScope())
            await wait_all_tasks_blocked()
            gate.open()
            cancelled.cancel()
    assert "other" in woke


async def test_waiters_that_keep_timing_out_do_not_pile_up() -> None:
    # One long load, waiters that time out and come back: the gate forgets
    # the cancelled ones instead of holding one entry per attempt forever.
    gate = new_gate()
    with anyio.fail_after(5):
        for _ in range(1000):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await gate.wait()
    held = getattr(gate, "_waiters", None)
    if held is None:  # trio's gate removes a cancelled waiter at once
        held = gate._tasks  # type: ignore[attr-defined]
    assert len(held) <= 128
