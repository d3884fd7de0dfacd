"""Supervisors: one-for-one restart with a bounded restart intensity.

As in OTP: a child that crashes is restarted, unless more than
``max_restarts`` crashes happened among the supervisor's children within
``within`` seconds. Then the supervisor gives up: it stops every child (in
reverse start order) and itself, and tells its parent, which removes it. From
then on every ask to those actors fails at once with `ActorStoppedError`; none
waits.

A supervisor holds no mailbox of its own: crash reports arrive as direct calls
from the crashing cell, in the task where the crash happened, and are handled
synchronously like any other transition.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .actor import Actor, ActorCell, ActorRef
from .errors import ActorStoppedError

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["RestartIntensity", "Supervisor"]

logger = logging.getLogger("agent_cache")

A = TypeVar("A", bound=Actor)


@dataclass(frozen=True, slots=True)
class RestartIntensity:
    """At most ``max_restarts`` restarts within ``within`` seconds."""

    max_restarts: int = 3
    within: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, not {self.max_restarts!r}")
        if not self.within > 0:
            raise ValueError(f"within must be > 0 seconds, not {self.within!r}")


class Supervisor:
    """Starts children, restarts crashed ones, stops them all in order."""

    def __init__(
        self,
        name: str,
        system: ActorSystem,
        *,
        intensity: RestartIntensity,
        parent: Supervisor | None = None,
    ) -> None:
        self.name = name
        self.system = system
        self.intensity = intensity
        self.parent = parent
        self.children: list[ActorCell[Actor] | Supervisor] = []
        self.stopped: str | None = None
        self.restarts = 0
        self._recent: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} children={len(self.children)}>"

    def spawn(
        self, factory: Callable[[], A], *, name: str, mailbox_size: float = math.inf
    ) -> ActorRef[A]:
        """Start an actor under this supervisor and return its ref.

        Raises:
            ActorStoppedError: this supervisor has stopped.
        """
        if self.stopped is not None:
            raise ActorStoppedError(self.name, self.stopped)
        cell = ActorCell(name, factory, self, mailbox_size=mailbox_size)
        self.children.append(cell)  # type: ignore[arg-type]
        return ActorRef(cell)

    def supervisor(self, name: str, *, intensity: RestartIntensity | None = None) -> Supervisor:
        """Start a child supervisor (a subtree that stops as one)."""
        if self.stopped is not None:
            raise ActorStoppedError(self.name, self.stopped)
        child = Supervisor(name, self.system, intensity=intensity or self.intensity, parent=self)
        self.children.append(child)
        return child

    def child_crashed(self, child: ActorCell[A], exc: Exception) -> None:
        """Restart ``child``, or give up if the restart intensity is exceeded."""
        if self.stopped is not None:
            child.stop(f"supervisor {self.name!r} stopped")
            return
        now = self.system.clock()
        recent = self._recent
        recent.append(now)
        horizon = now - self.intensity.within
        while recent and recent[0] <= horizon:
            recent.popleft()
        if len(recent) > self.intensity.max_restarts:
            reason = (
                f"{len(recent)} crashes within {self.intensity.within}s exceeded the "
                f"restart intensity of supervisor {self.name!r}; last: {exc!r}"
            )
            logger.error("supervisor %r gives up: %s", self.name, reason)
            self.stop(reason)
            return
        self.restarts += 1
        child.restart()

    def stop(self, reason: str) -> None:
        """Stop every child in reverse start order, then this supervisor."""
        if self.stopped is not None:
            return
        self.stopped = reason
        children, self.children = self.children, []
        for child in reversed(children):
            child.stop(reason)
        if self.parent is not None:
            self.parent._forget(self)

    def _forget(self, child: Supervisor) -> None:
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    def remove(self, ref: ActorRef[A], reason: str = "stopped") -> None:
        """Stop one child actor and forget it."""
        cell = ref._cell
        cell.stop(reason)
        with contextlib.suppress(ValueError):
            self.children.remove(cell)  # type: ignore[arg-type]
