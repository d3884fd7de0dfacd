"""The caller's side of a miss: look up, then lead a load or join one.

The actor decides (see ``actors/resource_cache.py``); the tool runs here, in
the caller's task, never in a handler, so a tool that calls another cached
tool cannot deadlock its own actor, and the tool sees the caller's context
variables (its session, say).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from .actors.counters import CacheCounters
from .actors.resource_cache import (
    DONE,
    FAILED,
    Abandon,
    Complete,
    Fail,
    Flight,
    Hit,
    Lead,
    Lookup,
    ResourceCache,
    TableSpec,
)
from .runtime import ActorRef, ActorStoppedError, Message

__all__ = ["load_through", "tell_quietly"]

logger = logging.getLogger("agent_cache")

T = TypeVar("T")


def tell_quietly(ref: ActorRef[ResourceCache], message: Message) -> None:
    """Tell, ignoring a stopped actor: its tables are gone, nothing to update."""
    try:
        ref.tell_nowait(message)
    except ActorStoppedError:
        pass


async def load_through(
    ref: ActorRef[ResourceCache] | None,
    counters: CacheCounters,
    spec: TableSpec,
    key: Hashable,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Serve one call through the cache actor ``ref``.

    ``ref`` None, or an actor that has stopped for good, means the cache is
    out of service: the tool runs uncached (counted as a miss and logged), as
    DESIGN.md invariant 9 asks of every optional part.
    """
    try:
        if ref is None:
            raise ActorStoppedError(f"cache:{spec.name}", "not started")
        reply = await ref.ask(Lookup(spec, key))
    except ActorStoppedError as exc:
        counters.misses += 1
        logger.warning("agent_cache: %s runs uncached: %s", spec.name, exc)
        return await func(*args, **kwargs)
    while True:
        if type(reply) is Hit:
            return reply.value  # type: ignore[no-any-return]
        flight: Flight = reply.flight  # type: ignore[union-attr]
        if type(reply) is Lead:
            return await _lead(ref, spec, flight, func, args, kwargs)
        assert flight.event is not None
        # A cancelled waiter just stops waiting: the flight is not its own.
        await flight.event.wait()
        if flight.state == DONE:
            return flight.value  # type: ignore[return-value]
        if flight.state == FAILED:
            assert flight.error is not None
            raise flight.error
        # ABANDONED: the leader was cancelled. Look again: one of the woken
        # waiters leads the next load, the others join it (invariant 3).
        try:
            reply = await ref.ask(Lookup(spec, key, retry=True))
        except ActorStoppedError:
            return await func(*args, **kwargs)


async def _lead(
    ref: ActorRef[ResourceCache],
    spec: TableSpec,
    flight: Flight,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    try:
        value = await func(*args, **kwargs)
    except Exception as exc:
        flight.reject(exc)
        tell_quietly(ref, Fail(spec, flight))
        raise
    except BaseException:
        # Cancelled (or KeyboardInterrupt): not an answer for the others.
        flight.abandon()
        tell_quietly(ref, Abandon(spec, flight))
        raise
    try:
        await ref.ask(Complete(spec, flight, value))
    except ActorStoppedError:
        pass
    finally:
        # Even if the Complete could not be delivered, the waiters get the value.
        flight.resolve(value)
    return value
