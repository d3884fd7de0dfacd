"""Message base types.

Messages are small frozen dataclasses, one per request kind. A `Request[R]`
names its reply type, so ``await ref.ask(Lookup(...))`` is typed as the reply.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Message", "Request"]

R = TypeVar("R", covariant=True)


class Message:
    """Base of everything an actor receives. Subclasses are frozen dataclasses."""

    __slots__ = ()


class Request(Message, Generic[R]):
    """A message that expects a reply of type ``R``.

    `reply_dropped` lets a request undo an obligation its reply created when the
    asker is gone (cancelled or timed out) before it could read the reply. The
    cache uses it so that a cancelled caller that was elected to run a load
    abandons the load instead of stranding the callers that joined it.
    """

    __slots__ = ()

    def reply_dropped(self, reply: R) -> Message | None:  # type: ignore[misc]
        """Return a message to send to the actor when ``reply`` found no asker."""
        return None
