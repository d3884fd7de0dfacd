"""Errors raised by the actor runtime.

The runtime knows nothing of caching; the public face translates these where a
user could meet them.
"""

from __future__ import annotations

__all__ = ["ActorStoppedError", "MailboxFullError"]


class ActorStoppedError(RuntimeError):
    """Raised by ``ask``/``tell`` to an actor that has stopped, and to every ask
    still queued in its mailbox when it stopped.

    An actor stops when its supervisor stops it (on exit, or because a child
    crashed more often than the restart intensity allows). An ask never waits on
    a stopped actor: it fails at once with this error, naming the actor and why
    it stopped.
    """

    def __init__(self, actor: str, reason: str) -> None:
        super().__init__(f"actor {actor!r} is stopped ({reason})")
        self.actor = actor
        self.reason = reason


class MailboxFullError(RuntimeError):
    """Raised by ``tell_nowait`` when the actor's mailbox is at capacity.

    Use the async ``tell`` to wait for room instead.
    """

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")
        self.actor = actor
        self.capacity = capacity
