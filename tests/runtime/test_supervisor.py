"""Tests for agent_cache/runtime/supervisor.py: restart, restart intensity, stop order.

Supervision is a set of synchronous transitions (a crash report is a direct
call from the crashing cell), so most of these run without an event loop: an
inline ``tell_nowait`` to an idle actor runs its handler on the spot.
"""

from __future__ import annotations

import math
import re

import anyio
import pytest

from agent_cache.runtime import ActorStoppedError, ActorSystem, RestartIntensity

from ._recorder import Boom, Incr, Note, Send, Take, spawn_recorder
from ._recorder import Count as Count
from ._recorder import FakeClock as FakeClock


def exact(message: str) -> str:
    return rf"^{re.escape(message)}$"


def gave_up(crashes: int, within: float, supervisor: str, last: str) -> str:
    return (
        f"{crashes} crashes within {within}s exceeded the restart intensity of "
        f"supervisor {supervisor!r}; last: {last}"
    )


# -- RestartIntensity ------------------------------------------------------------


def test_restart_intensity_defaults() -> None:
    assert RestartIntensity() == RestartIntensity(max_restarts=3, within=5.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_restarts": -1}, "max_restarts must be an int >= 0, not -1"),
        ({"max_restarts": 1.5}, "max_restarts must be an int >= 0, not 1.5"),
        ({"within": 0}, "within must be > 0 seconds, not 0"),
        ({"within": -2.0}, "within must be > 0 seconds, not -2.0"),
        ({"within": math.nan}, "within must be > 0 seconds, not nan"),
    ],
)
def test_restart_intensity_rejects_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=exact(message)):
        RestartIntensity(**kwargs)  # type: ignore[arg-type]


# -- restart ------------------------------------------------------------------------


def test_crash_restarts_the_child_with_a_fresh_behaviour() -> None:
    system = ActorSystem("test", clock=FakeClock())
    ref, world = spawn_recorder(system)
    ref.tell_nowait(Incr())
    ref.tell_nowait(Boom())
    assert world.started == 2
    assert system.root.restarts == 1
    assert ref.stopped is None
    assert system.root.children[0].actor.count == 0  # type: ignore[union-attr]
    system.shutdown("done")


def test_crashes_within_intensity_restart_and_one_more_stops() -> None:
    clock = FakeClock()
    system = ActorSystem("test", clock=clock, intensity=RestartIntensity(2, within=10))
    ref, world = spawn_recorder(system)
    for _ in range(2):
        ref.tell_nowait(Boom())
        clock.advance(1)
    assert (world.started, system.root.restarts, ref.stopped) == (3, 2, None)
    ref.tell_nowait(Boom("last"))
    reason = gave_up(3, 10, "test.root", "ValueError('boom last')")
    assert ref.stopped == reason
    assert system.root.stopped == reason
    assert world.stops == [reason]
    assert world.started == 3  # no restart for the crash that gave up
    assert system.root.children == []


def test_zero_restarts_stops_on_the_first_crash() -> None:
    system = ActorSystem("test", clock=FakeClock(), intensity=RestartIntensity(0))
    ref, world = spawn_recorder(system)
    ref.tell_nowait(Boom())
    assert ref.stopped == gave_up(1, 5.0, "test.root", "ValueError('boom x')")
    assert world.started == 1


def test_crashes_further_apart_than_the_window_never_add_up() -> None:
    clock = FakeClock()
    system = ActorSystem("test", clock=clock, intensity=RestartIntensity(1, within=10))
    ref, world = spawn_recorder(system)
    for _ in range(5):
        ref.tell_nowait(Boom())
        clock.advance(10)  # exactly `within`: the earlier crash has left the window
    assert ref.stopped is None
    assert (world.started, system.root.restarts) == (6, 5)
    clock.advance(-0.5)  # 9.5 s after the last crash
    ref.tell_nowait(Boom())
    assert ref.stopped is not None
    assert ref.stopped.startswith("2 crashes within 10s exceeded")


def test_crashes_of_siblings_share_the_supervisors_intensity() -> None:
    system = ActorSystem("test", clock=FakeClock(), intensity=RestartIntensity(1))
    a, _ = spawn_recorder(system, "a")
    b, _ = spawn_recorder(system, "b")
    a.tell_nowait(Boom())
    assert a.stopped is None
    b.tell_nowait(Boom("b"))
    assert a.stopped == b.stopped == gave_up(2, 5.0, "test.root", "ValueError('boom b')")


# -- giving up and stopping --------------------------------------------------------


def test_giving_up_stops_every_child_in_reverse_start_order() -> None:
    stop_order: list[str] = []
    system = ActorSystem("test", clock=FakeClock(), intensity=RestartIntensity(0))
    for name in "abc":
        spawn_recorder(system, name, stop_order=stop_order)
    b = system.root.children[1]
    b.tell_nowait(Boom())  # type: ignore[union-attr]
    assert stop_order == ["c", "b", "a"]


def test_stop_stops_a_subtree_in_reverse_start_order() -> None:
    stop_order: list[str] = []
    system = ActorSystem("test", clock=FakeClock())
    spawn_recorder(system, "a", stop_order=stop_order)
    sub = system.root.supervisor("test.sub")
    spawn_recorder(sub, "b", stop_order=stop_order)
    spawn_recorder(sub, "c", stop_order=stop_order)
    spawn_recorder(system, "d", stop_order=stop_order)
    system.shutdown("bye")
    assert stop_order == ["d", "c", "b", "a"]
    assert sub.stopped == "bye"
    assert system.root.children == []


def test_child_supervisor_gives_up_alone_and_is_forgotten() -> None:
    system = ActorSystem("test", clock=FakeClock(), intensity=RestartIntensity(5))
    sibling, _ = spawn_recorder(system, "sibling")
    sub = system.root.supervisor("test.sub", intensity=RestartIntensity(0))
    assert repr(sub) == "<Supervisor 'test.sub' children=0>"
    child, _ = spawn_recorder(sub, "child")
    child.tell_nowait(Boom())
    assert child.stopped == gave_up(1, 5.0, "test.sub", "ValueError('boom x')")
    assert sub.stopped == child.stopped
    assert sub not in system.root.children
    assert sibling.stopped is None
    assert system.root.stopped is None
    system.shutdown("done")


def test_child_supervisor_inherits_its_parents_intensity() -> None:
    intensity = RestartIntensity(7, within=1.5)
    system = ActorSystem("test", intensity=intensity)
    assert system.root.supervisor("test.sub").intensity is intensity
    system.shutdown("done")


def test_stopped_supervisor_refuses_children() -> None:
    system = ActorSystem("test")
    sub = system.root.supervisor("test.sub")
    sub.stop("bye")
    message = exact("actor 'test.sub' is stopped (bye)")
    with pytest.raises(ActorStoppedError, match=message):
        spawn_recorder(sub)
    with pytest.raises(ActorStoppedError, match=message):
        sub.supervisor("test.sub.sub")
    sub.stop("again")  # stopping twice changes nothing
    assert sub.stopped == "bye"
    system.shutdown("done")


def test_remove_stops_one_child_and_forgets_it() -> None:
    system = ActorSystem("test")
    a, world_a = spawn_recorder(system, "a")
    b, _ = spawn_recorder(system, "b")
    system.root.remove(a, "not needed")
    assert a.stopped == "not needed"
    assert world_a.stops == ["not needed"]
    assert b.stopped is None
    assert len(system.root.children) == 1
    system.root.remove(a)  # twice: nothing more happens
    assert world_a.stops == ["not needed"]
    system.shutdown("done")


def test_crash_reported_to_a_stopped_supervisor_stops_the_child() -> None:
    # The handler stops its own supervisor, then crashes: no restart.
    system = ActorSystem("test", clock=FakeClock())
    sub = system.root.supervisor("test.sub")
    ref, world = spawn_recorder(sub)
    ref.tell_nowait(Boom(before=lambda: sub.stop("bye")))
    assert world.started == 1
    assert ref.stopped == "bye"
    system.shutdown("done")


# -- the same, observed by askers ---------------------------------------------------


@pytest.mark.anyio
async def test_intensity_exceeded_fails_queued_and_later_asks_at_once() -> None:
    intensity = RestartIntensity(1, within=10)
    system = ActorSystem("test", clock=FakeClock(), intensity=intensity)  # not entered yet
    ref, world = spawn_recorder(system)
    reason = gave_up(2, 10, "test.root", "ValueError('boom 2')")
    stopped = f"actor 'rec' is stopped ({reason})"
    ref.tell_nowait(Send((Boom("1"), Note("a"))))
    errors: dict[str, BaseException] = {}

    async def asker(request: Boom | Take) -> None:
        try:
            await ref.ask(request)
        except (ValueError, ActorStoppedError) as exc:
            errors[type(request).__name__] = exc

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(asker, Boom("2"))
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(asker, Take(1))  # queued behind the fatal crash
            await anyio.wait_all_tasks_blocked()
            ref.tell_nowait(Note("b"))
            assert world.log == ["send"]
            async with system:  # the loop runs the mailbox
                await anyio.wait_all_tasks_blocked()
                assert ref.stopped == reason
    # The ask that crashed it gets the handler's error; the one behind it
    # ActorStoppedError; the tell behind them is dropped.
    assert {name: (type(e), str(e)) for name, e in errors.items()} == {
        "Boom": (ValueError, "boom 2"),
        "Take": (ActorStoppedError, stopped),
    }
    assert world.log == ["send", "boom 1", "a", "boom 2"]
    with anyio.CancelScope() as scope:
        scope.cancel()  # ActorStoppedError, not Cancelled: it never waits
        with pytest.raises(ActorStoppedError, match=exact(stopped)):
            await ref.ask(Take(2))
    with pytest.raises(ActorStoppedError, match=exact(stopped)):
        ref.tell_nowait(Note("c"))
    with pytest.raises(ActorStoppedError, match=exact(f"actor 'test.root' is stopped ({reason})")):
        spawn_recorder(system, "late")
