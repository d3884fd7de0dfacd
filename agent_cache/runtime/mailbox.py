"""An actor's mailbox: a bounded FIFO on an anyio memory object stream.

The mailbox counts what it holds itself. anyio hands an item straight to a
receiver that is already parked, so the stream's own statistics can read empty
while a message is still on its way to the actor loop; the runtime's fast path
(run the handler in the asker's task when the mailbox is empty and the actor
idle) must not see such a message as absent, or it would overtake it.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """FIFO of envelopes with an exact count of undelivered items."""

    __slots__ = ("_closed", "_receive", "_send", "capacity", "pending")

    def __init__(self, capacity: float = math.inf) -> None:
        self.capacity = capacity
        self.pending = 0
        self._closed = False
        self._send: MemoryObjectSendStream[T]
        self._receive: MemoryObjectReceiveStream[T]
        self._send, self._receive = anyio.create_memory_object_stream[T](capacity)

    def __len__(self) -> int:
        return self.pending

    def put_nowait(self, item: T) -> None:
        """Enqueue ``item``; raises ``anyio.WouldBlock`` when full,
        ``anyio.ClosedResourceError`` once closed."""
        self._send.send_nowait(item)
        self.pending += 1

    async def put(self, item: T) -> None:
        """Enqueue ``item``, waiting for room when the mailbox is full."""
        # Count before the await: while we wait for room the item is already
        # ahead of any ask that arrives, and that ask must queue behind it.
        self.pending += 1
        try:
            await self._send.send(item)
        except BaseException:
            if not self._closed:
                self.pending -= 1
            raise

    async def get(self) -> T:
        """Wait for the next item.

        Raises ``anyio.EndOfStream`` or ``anyio.ClosedResourceError`` once closed.
        An item handed to this ``get`` while it was parked is returned even if
        `close` ran before it resumed (see `close`).
        """
        item = await self._receive.receive()
        if not self._closed:  # close() already zeroed the count
            self.pending -= 1
        return item

    def close(self) -> list[T]:
        """Close both ends and return what was still queued, oldest first.

        An item already handed to a parked `get` is not in the list: that ``get``
        still returns it, so its caller must check whether it closed meanwhile.
        """
        self._closed = True
        self._send.close()
        drained: list[T] = []
        while True:
            try:
                drained.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        self._receive.close()
        self.pending = 0
        return drained
