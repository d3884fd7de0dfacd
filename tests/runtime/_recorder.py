"""A test actor that records what it handles, and its messages.

`Recorder` appends one line per handled message to `World.log`, which outlives
restarts (the behaviour's own state, `count`, does not). `Send` makes the actor
tell itself messages from inside a handler: the actor is busy then, so they are
queued, which is how the tests get messages into a mailbox without sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from agent_cache.runtime import Actor, ActorRef, ActorSystem, Message, Request, Supervisor

__all__ = [
    "Boom",
    "Count",
    "FakeClock",
    "Incr",
    "Note",
    "Recorder",
    "Send",
    "Snapshot",
    "Take",
    "Undo",
    "Where",
    "World",
    "park_loop",
    "spawn_recorder",
]


@dataclass(frozen=True, slots=True)
class Note(Message):
    """Logged as its tag."""

    tag: str


@dataclass(frozen=True, slots=True)
class Send(Message):
    """Tell each of ``messages`` to the actor itself, from inside the handler."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Incr(Message):
    """Add one to the behaviour's `count` (reset by a restart)."""


@dataclass(frozen=True, slots=True)
class Count(Request[int]):
    """Reply: the behaviour's `count`."""


@dataclass(frozen=True, slots=True)
class Snapshot(Request[tuple[str, ...]]):
    """Reply: the log so far, this message included."""


@dataclass(frozen=True, slots=True)
class Where(Request[int]):
    """Reply: the id of the task that runs the handler."""


@dataclass(frozen=True, slots=True)
class Boom(Request[None]):
    """Call ``before`` (if any), then raise ``ValueError(f"boom {tag}")``."""

    tag: str = "x"
    before: Callable[[], object] | None = None


@dataclass(frozen=True, slots=True)
class Take(Request[int]):
    """Call ``before`` (if any), reply ``value``; a dropped reply becomes `Undo`."""

    value: int
    before: Callable[[], object] | None = None

    def reply_dropped(self, reply: int) -> Message | None:
        return Undo(reply)


@dataclass(frozen=True, slots=True)
class Undo(Message):
    """The compensation for a `Take` whose asker was gone."""

    value: int


@dataclass
class World:
    """What outlives one behaviour: the log, and how many were made."""

    log: list[str] = field(default_factory=list)
    started: int = 0
    stops: list[str] = field(default_factory=list)
    ref: ActorRef[Recorder] | None = None


class Recorder(Actor):
    """Logs every message it handles; see the message classes for replies."""

    def __init__(self, world: World, name: str, stop_order: list[str] | None) -> None:
        world.started += 1
        self.world = world
        self.name = name
        self.stop_order = stop_order
        self.count = 0

    def receive(self, message: Message) -> object:
        log = self.world.log
        match message:
            case Note(tag=tag):
                log.append(tag)
            case Send(messages=messages):
                log.append("send")
                assert self.world.ref is not None
                for queued in messages:
                    self.world.ref.tell_nowait(queued)
            case Incr():
                log.append("incr")
                self.count += 1
            case Count():
                log.append("count")
                return self.count
            case Snapshot():
                log.append("snapshot")
                return tuple(log)
            case Where():
                log.append("where")
                return anyio.get_current_task().id
            case Boom(tag=tag, before=before):
                log.append(f"boom {tag}")
                if before is not None:
                    before()
                raise ValueError(f"boom {tag}")
            case Take(value=value, before=before):
                log.append(f"take {value}")
                if before is not None:
                    before()
                return value
            case Undo(value=value):
                log.append(f"undo {value}")
            case _:
                raise TypeError(f"Recorder got an unexpected message: {message!r}")
        return None

    def on_stop(self, reason: str) -> None:
        self.world.stops.append(reason)
        if self.stop_order is not None:
            self.stop_order.append(self.name)


def spawn_recorder(
    parent: ActorSystem | Supervisor,
    name: str = "rec",
    *,
    mailbox_size: float = math.inf,
    stop_order: list[str] | None = None,
) -> tuple[ActorRef[Recorder], World]:
    """Spawn a `Recorder` under ``parent``; return its ref and its world."""
    world = World()
    ref = parent.spawn(
        lambda: Recorder(world, name, stop_order), name=name, mailbox_size=mailbox_size
    )
    world.ref = ref
    return ref, world


async def park_loop(ref: ActorRef[Recorder], world: World) -> None:
    """Make sure the actor's loop task is running and parked on an empty mailbox.

    Then the next queued message is handed straight to it. Clears the log.
    """
    ref.tell_nowait(Send((Note("warm-up"),)))  # queued: the loop must run
    await ref.ask(Count())  # queued behind it: only the loop answers
    await anyio.wait_all_tasks_blocked()
    world.log.clear()


class FakeClock:
    """A clock for restart intensity that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
