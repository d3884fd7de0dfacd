"""The actor system: hosts actor loops in one task group, owns the root supervisor.

Two lifetimes:

* ``async with ActorSystem():`` -- structured: the actor loops run in a task
  group of the caller's, and leaving the block stops every actor (queued asks
  fail with `ActorStoppedError`) before the task group closes.
* `ActorSystem.start_background` -- for code that calls into the system with no
  setup: the task group lives in a system task of the event loop
  (`_backend.spawn_system_task`) and ends when the loop shuts down.

Actors can be spawned before the task group exists: their loops start as soon
as it does. Inline asks (see `actor`) need no loop at all, so a system is usable
from the moment it is made.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from ._backend import Gate, gate_factory, spawn_system_task
from .actor import Actor, ActorCell, ActorRef
from .supervisor import RestartIntensity, Supervisor

__all__ = ["ActorSystem"]

logger = logging.getLogger("agent_cache")

A = TypeVar("A", bound=Actor)


_DEFAULT_INTENSITY = RestartIntensity()


class ActorSystem:
    """Hosts actors and their root supervisor.

    Args:
        name: used in actor and error names.
        clock: seconds as a float, for restart intensity; defaults to
            `time.monotonic`.
        intensity: the root supervisor's restart intensity.
    """

    def __init__(
        self,
        name: str = "agent_cache",
        *,
        clock: Callable[[], float] = time.monotonic,
        intensity: RestartIntensity = _DEFAULT_INTENSITY,
    ) -> None:
        self.name = name
        self.clock = clock
        self.root = Supervisor(f"{name}.root", self, intensity=intensity)
        self.closed = False
        self._task_group: TaskGroup | None = None
        self._unstarted: list[ActorCell[Actor]] = []
        self._entered = False
        self._gate_class: Callable[[], Gate] | None = None

    def new_gate(self) -> Gate:
        """A fresh `Gate` for the running backend, which is looked up on the
        first call only: a system serves one event loop."""
        make = self._gate_class
        if make is None:
            make = self._gate_class = gate_factory()
        return make()

    def spawn(
        self, factory: Callable[[], A], *, name: str, mailbox_size: float = math.inf
    ) -> ActorRef[A]:
        """Start an actor under the root supervisor."""
        return self.root.spawn(factory, name=name, mailbox_size=mailbox_size)

    def _start(self, cell: ActorCell[Actor]) -> None:
        if self._task_group is None:
            self._unstarted.append(cell)
        else:
            self._task_group.start_soon(cell.run, name=f"actor {cell.name}")

    # -- structured lifetime -----------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._entered:
            raise RuntimeError(f"actor system {self.name!r} can only be entered once")
        self._entered = True
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        unstarted, self._unstarted = self._unstarted, []
        for cell in unstarted:
            self._start(cell)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.shutdown("actor system closed")
        assert self._task_group is not None
        # Every loop ends by itself once its mailbox is closed, so the task
        # group only waits. Keep the body's error out of it: a task group wraps
        # what it is handed in an ExceptionGroup, and ``async with`` around a
        # failing tool call must let ``except ToolError`` still match.
        await self._task_group.__aexit__(None, None, None)
        return None

    def shutdown(self, reason: str) -> None:
        """Stop every actor now (their loops then end by themselves)."""
        self.closed = True
        self.root.stop(reason)
        for cell in self._unstarted:
            cell.stop(reason)
        self._unstarted.clear()

    # -- background lifetime -----------------------------------------------

    def start_background(self, on_exit: Callable[[], None] | None = None) -> None:
        """Host this system in a task of the event loop itself.

        The system shuts down when the loop does (``asyncio.run`` cancels its
        remaining tasks; trio cancels system tasks when the main task ends),
        and then calls ``on_exit``.
        """

        async def host() -> None:
            try:
                async with self:
                    await anyio.sleep_forever()
            except Exception:  # pragma: no cover - a bug; never crash the loop
                logger.exception("background actor system %r failed", self.name)
            finally:
                if on_exit is not None:
                    on_exit()

        spawn_system_task(host, name=f"{self.name} actor system")
