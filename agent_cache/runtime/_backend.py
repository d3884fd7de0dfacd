"""The one module that knows which event loop is running.

Why it exists: a decorated tool must work with no setup at all (users of the
seed call tools with no context manager around them). Its actors then need a
home whose lifetime is the event loop's, not any caller's task group -- a task
that nobody awaits, which the loop cancels when it shuts down. anyio has no
public API for such a task, so this module makes one per backend:

* trio: ``trio.lowlevel.spawn_system_task``, cancelled when the main task ends;
* asyncio: ``loop.create_task``, cancelled by ``asyncio.run`` at shutdown. The
  task gets a fresh ``contextvars.Context`` so the caller's context variables
  (an active session, say) do not leak into it, as with trio's system tasks.

It also makes `Gate`, the one-shot broadcast that callers of a running load
wait on, from each backend's own parking primitive. ``anyio.Event`` would do,
but making one measured 1.9 us here (it looks the backend up on every
construction) against 0.2 us for a future, and asyncio's ``Event.wait`` removes
each woken waiter from a deque (O(waiters) each): in the swarm benchmark the
anyio.Event version of an otherwise minimal cache ran 16% slower on asyncio.

Everything else in agent_cache uses anyio only.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Gate", "current_backend", "gate_factory", "spawn_system_task"]

# asyncio only keeps weak references to tasks: hold them until they finish.
_asyncio_tasks: set[Any] = set()


def current_backend() -> str:
    """Name the running backend: ``"trio"`` or ``"asyncio"``.

    anyio no longer depends on sniffio, so ask the loops themselves; trio only
    when something already imported it.
    """
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return "trio"
    asyncio.get_running_loop()  # raises RuntimeError outside any loop
    return "asyncio"


def spawn_system_task(fn: Callable[[], Awaitable[None]], *, name: str) -> None:
    """Run ``fn()`` in a task owned by the event loop itself.

    ``fn`` must not raise anything but cancellation (trio treats an error in a
    system task as a crash of the whole run).
    """
    backend = current_backend()
    if backend == "trio":
        import trio

        trio.lowlevel.spawn_system_task(fn, name=name)
    else:

        async def main() -> None:
            await fn()

        task = asyncio.get_running_loop().create_task(
            main(), name=name, context=contextvars.Context()
        )
        _asyncio_tasks.add(task)
        task.add_done_callback(_asyncio_tasks.discard)


class Gate(Protocol):
    """A one-shot broadcast: tasks wait until it is opened, and `open` wakes
    every one of them. It never closes again.

    Cancelling a waiting task ends its own wait only: the gate, and every other
    waiter, are untouched (the seed's shared future let one cancelled waiter
    cancel the result for all). Waiting on an open gate returns at once,
    without a checkpoint. Made inside the event loop it serves.
    """

    def open(self) -> None:
        """Open the gate and wake every waiter (idempotent; never blocks)."""

    def wait(self) -> Awaitable[None]:
        """An awaitable that completes once the gate is open.

        Await it at once: on asyncio it is a bare future, not a coroutine
        (one frame fewer for every caller that joins a load).
        """


class _AsyncioGate:
    # One future per waiter: a cancelled task cancels only the future it
    # awaits, so a shared one would let one waiter cancel the wait of all.
    __slots__ = ("_loop", "_opened", "_waiters")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._opened = False
        self._waiters: list[asyncio.Future[None]] = []

    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():  # cancelled waiters stay listed until now
                future.set_result(None)

    def wait(self) -> Awaitable[None]:
        future = self._loop.create_future()
        if self._opened:
            future.set_result(None)
            return future
        waiters = self._waiters
        if len(waiters) >= 64 and len(waiters) & (len(waiters) - 1) == 0:
            # At each power of two, forget cancelled waiters, so one long load
            # that waiters keep timing out on cannot grow the list unboundedly.
            waiters[:] = [f for f in waiters if not f.done()]
        waiters.append(future)
        return future


# trio's parking functions, bound by gate_factory (trio is imported only when it runs).
_trio_lowlevel: Any = None


class _TrioGate:
    __slots__ = ("_opened", "_tasks")

    def __init__(self) -> None:
        self._opened = False
        self._tasks: dict[Any, None] = {}

    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        reschedule = _trio_lowlevel.reschedule
        tasks, self._tasks = self._tasks, {}
        for task in tasks:
            reschedule(task)

    async def wait(self) -> None:
        if self._opened:
            return
        lowlevel = _trio_lowlevel
        task = lowlevel.current_task()
        tasks = self._tasks
        tasks[task] = None

        def abort(_: object) -> Any:
            # trio calls this only while we are still parked, so never after
            # open() rescheduled us: no wake-up is lost or doubled.
            del tasks[task]
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)


def gate_factory() -> Callable[[], Gate]:
    """The `Gate` class of the running backend (ask once per event loop)."""
    global _trio_lowlevel
    if current_backend() == "trio":
        import trio

        _trio_lowlevel = trio.lowlevel
        return _TrioGate
    return _AsyncioGate
