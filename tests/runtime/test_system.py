"""Tests for agent_cache/runtime/system.py (and _backend.py, which it uses).

Both lifetimes: ``async with ActorSystem()`` and `ActorSystem.start_background`,
the latter driven by a fresh ``anyio.run`` per backend so that the loop's own
shutdown is what ends it.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import re
import warnings
from typing import Any

import anyio
import pytest

from agent_cache.runtime import ActorStoppedError, ActorSystem
from agent_cache.runtime._backend import current_backend

from ._recorder import Note, Send, Snapshot, Take, park_loop, spawn_recorder


def exact(message: str) -> str:
    return rf"^{re.escape(message)}$"


# -- async with -------------------------------------------------------------------


@pytest.mark.anyio
async def test_actor_spawned_before_enter_gets_its_loop_on_enter() -> None:
    system = ActorSystem("test")
    ref, world = spawn_recorder(system)
    ref.tell_nowait(Send((Note("a"), Note("b"))))
    await anyio.wait_all_tasks_blocked()
    assert world.log == ["send"]  # no loop yet: still queued
    with anyio.fail_after(5):
        async with system:
            assert await ref.ask(Snapshot()) == ("send", "a", "b", "snapshot")


@pytest.mark.anyio
async def test_actor_spawned_inside_gets_its_loop_at_once() -> None:
    with anyio.fail_after(5):
        async with ActorSystem("test") as system:
            ref, _ = spawn_recorder(system)
            ref.tell_nowait(Send((Note("a"),)))
            assert await ref.ask(Snapshot()) == ("send", "a", "snapshot")


@pytest.mark.anyio
async def test_leaving_stops_every_actor_and_the_system() -> None:
    async with ActorSystem("test") as system:
        a, world_a = spawn_recorder(system, "a")
        b, world_b = spawn_recorder(system, "b")
        assert not system.closed
    assert system.closed
    assert a.stopped == b.stopped == "actor system closed"
    assert world_a.stops == world_b.stops == ["actor system closed"]
    with pytest.raises(
        ActorStoppedError, match=exact("actor 'a' is stopped (actor system closed)")
    ):
        await a.ask(Take(1))
    with pytest.raises(
        ActorStoppedError, match=exact("actor 'test.root' is stopped (actor system closed)")
    ):
        spawn_recorder(system, "late")


@pytest.mark.anyio
async def test_leaving_with_messages_in_flight_fails_asks_and_drops_tells() -> None:
    system = ActorSystem("test")
    ref, world = spawn_recorder(system)
    ref.tell_nowait(Send((Note("a"), Note("b"))))
    outcomes: list[str] = []

    async def asker(value: int) -> None:
        try:
            await ref.ask(Take(value))
        except ActorStoppedError as exc:
            outcomes.append(str(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for value in range(3):
                tg.start_soon(asker, value)
            await anyio.wait_all_tasks_blocked()
            ref.tell_nowait(Note("c"))
            async with system:
                pass  # the loop has not run yet: everything is still queued
    assert outcomes == ["actor 'rec' is stopped (actor system closed)"] * 3
    assert world.log == ["send"]


@pytest.mark.anyio
async def test_leaving_stops_even_a_loop_holding_a_message() -> None:
    async with ActorSystem("test") as system:
        ref, world = spawn_recorder(system)
        await park_loop(ref, world)
        ref.tell_nowait(Send((Note("a"),)))  # "a" goes straight to the parked loop
    assert world.log == ["send"]


@pytest.mark.anyio
async def test_entering_twice_raises() -> None:
    system = ActorSystem("twice")
    async with system:
        with pytest.raises(RuntimeError, match=r"^actor system 'twice' can only be entered once$"):
            await system.__aenter__()
    with pytest.raises(RuntimeError, match=r"^actor system 'twice' can only be entered once$"):
        async with system:
            pass


@pytest.mark.anyio
async def test_error_in_the_body_propagates_and_actors_stop() -> None:
    system = ActorSystem("test")
    ref, _ = spawn_recorder(system)
    with pytest.raises(ValueError, match=r"^body$"):
        async with system:
            raise ValueError("body")
    assert ref.stopped == "actor system closed"


@pytest.mark.anyio
async def test_cancelled_body_leaves_cleanly() -> None:
    with anyio.CancelScope() as scope:
        async with ActorSystem("test") as system:
            ref, _ = spawn_recorder(system)
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert ref.stopped == "actor system closed"


def test_shutdown_without_entering_stops_unstarted_actors() -> None:
    system = ActorSystem("test")
    ref, world = spawn_recorder(system)
    ref.tell_nowait(Send((Note("a"),)))
    system.shutdown("bye")
    assert system.closed
    assert ref.stopped == "bye"
    assert world.stops == ["bye"]
    assert world.log == ["send"]
    system.shutdown("again")  # idempotent
    assert ref.stopped == "bye"


# -- the background lifetime --------------------------------------------------------

caller_var: contextvars.ContextVar[str] = contextvars.ContextVar("caller_var", default="unset")


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        pytest.param("asyncio", {"debug": True}, id="asyncio"),
        pytest.param("trio", {}, id="trio"),
    ],
)
def test_background_system_runs_loops_and_shuts_down_with_the_loop(
    backend: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    exits: list[str] = []
    seen_by_loop: list[str] = []
    found: dict[str, Any] = {}

    async def main() -> None:
        caller_var.set("caller")
        system = ActorSystem("bg")
        system.start_background(on_exit=lambda: exits.append("exit"))
        ref, world = spawn_recorder(system)
        ref.tell_nowait(Send((Note("a"), Note("b"))))
        with anyio.fail_after(5):
            # Queued behind a and b: only a running actor loop can answer.
            assert await ref.ask(Take(1, before=lambda: seen_by_loop.append(caller_var.get()))) == 1
            assert await ref.ask(Snapshot()) == ("send", "a", "b", "take 1", "snapshot")
        ref.tell_nowait(Send((Note("in flight"),)))  # left queued at loop shutdown
        found.update(system=system, ref=ref, world=world, exits_before=list(exits))

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        anyio.run(main, backend=backend, backend_options=options)
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert found["exits_before"] == []
    assert exits == ["exit"]
    assert found["system"].closed
    assert found["ref"].stopped == "actor system closed"
    assert found["world"].stops == ["actor system closed"]
    # The loop task got a fresh context: the caller's variables do not leak in.
    assert seen_by_loop == ["unset"]


# -- _backend ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_current_backend_names_the_running_loop(anyio_backend_name: str) -> None:
    assert current_backend() == anyio_backend_name


def test_current_backend_outside_a_loop_raises() -> None:
    with pytest.raises(RuntimeError, match=r"^no running event loop$"):
        current_backend()
