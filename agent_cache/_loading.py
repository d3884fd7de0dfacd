"""The caller's side of a miss: look up, then lead a load or join one.

The actor decides (see ``actors/resource_cache.py``); the tool runs here, in
the caller's task, never in a handler, so a tool that calls another cached
tool cannot deadlock its own actor, and the tool sees the caller's context
variables (its session, say).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from anyio import WouldBlock

from ._caches import CacheHost
from .actors.counters import CacheCounters
from .actors.resource_cache import (
    DONE,
    FAILED,
    Abandon,
    Complete,
    Entry,
    Fail,
    Flight,
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
    with contextlib.suppress(ActorStoppedError):
        ref.tell_nowait(message)


async def load_through(
    host: CacheHost,
    resource: str,
    spec: TableSpec,
    key: Hashable,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    session_counters: CacheCounters | None = None,
) -> T:
    """Serve one call through ``host``'s cache actor of ``resource``.

    A cache that is out of service never fails the call: the tool runs
    uncached (counted as a miss and logged), as DESIGN.md invariant 9 asks of
    every optional part. ``session_counters``, when given, counts the call as
    well (a session's own figures).
    """
    lookup = Lookup(spec, key)
    try:
        ref = host.cache(resource)
        try:
            reply = ref.ask_nowait(lookup)  # no coroutine when the actor is idle
        except WouldBlock:
            reply = await ref.ask(lookup)
    except Exception as exc:
        # The cache is out of service (its supervisor gave up), or crashed on
        # this very lookup (it restarts empty): serve the call from the tool.
        host.counters(resource).misses += 1
        if session_counters is not None:
            session_counters.misses += 1
        logger.warning("agent_cache: %s runs uncached: %r", spec.name, exc)
        return await func(*args, **kwargs)
    if session_counters is not None:
        if type(reply) is Entry:
            session_counters.hits += 1
        elif reply.lookup is lookup:
            session_counters.misses += 1
        else:
            session_counters.coalesced += 1
    while True:
        if type(reply) is Entry:
            return reply.value  # type: ignore[return-value]
        flight: Flight = reply
        if flight.lookup is lookup:
            break  # ours to lead
        assert flight.event is not None
        # A cancelled waiter just stops waiting: the flight is not its own.
        await flight.event.wait()
        if flight.state == DONE:
            return flight.value  # type: ignore[return-value]
        if flight.state == FAILED:
            assert flight.error is not None
            raise flight.error.with_traceback(flight.error_tb)
        # ABANDONED: the leader was cancelled. Look again: one of the woken
        # waiters leads the next load, the others join it (invariant 3).
        lookup = Lookup(spec, key, retry=True)
        try:
            reply = await ref.ask(lookup)
        except Exception:
            return await func(*args, **kwargs)

    # Lead the load, here in the caller's task (in this function, not another
    # coroutine: each layer costs on every miss).
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
    complete = Complete(spec, flight, value)
    try:
        try:
            ref.ask_nowait(complete)
        except WouldBlock:
            await ref.ask(complete)
    except Exception:
        pass  # stopped, or crashed and restarted empty: nothing to store into
    finally:
        # Even if the Complete could not be delivered, the waiters get the value.
        flight.resolve(value)
    return value
