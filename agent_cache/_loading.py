"""The caller's side of a miss: join the running load of a key, or lead one.

The actor decides who loads (see ``actors/resource_cache.py``); the tool runs
here, in the caller's task, never in a handler, so a tool that calls another
cached tool cannot deadlock its own actor, and the tool sees the caller's
context variables (its session, say).

Two shapes of the same protocol:

* the compiled wrapper (``_wrappers.py``) inlines the common misses of a
  runtime's caches -- join the key's running load, or ask the actor to start
  one and lead it around its own ``await tool(...)``, reporting with
  `ToolLoads.loaded` and `ToolLoads.failed` (a load that an invalidation
  detached meanwhile it settles itself) -- with no coroutine layer and no
  argument packing on the way to the tool;
* `load_through` serves the others: in a session, on a tool's first call in a
  runtime, with an argument to freeze, or when the actor is busy.

Messages per miss: the `Flight` itself, asked of the actor to start the load,
and a `Complete` only if the load is still attached when it returns. A caller
that finds a running load joins it without a message, as a hit reads an entry
(Caffeine's readers await the future they find in the map).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar, final

from anyio import WouldBlock

from ._caches import CacheHost
from .actors.counters import CacheCounters
from .actors.resource_cache import (
    ABANDONED,
    DONE,
    FAILED,
    RUNNING,
    Abandon,
    Complete,
    Entry,
    Fail,
    Flight,
    LookupReply,
    ResourceCache,
    TableSpec,
)
from .runtime import ActorRef, ActorStoppedError, Gate, Message

__all__ = ["ToolLoads", "load_through", "rejoin", "tell_quietly"]

logger = logging.getLogger("agent_cache")

T = TypeVar("T")


def tell_quietly(ref: ActorRef[ResourceCache] | None, message: Message) -> None:
    """Tell, ignoring a stopped actor: its tables are gone, nothing to update."""
    if ref is not None:
        with contextlib.suppress(ActorStoppedError):
            ref.tell_nowait(message)


@final
class ToolLoads:
    """The miss path of one cached tool: the messages around a load it leads.

    Args:
        spec: the tool's table spec.
        resource: the resource whose cache holds the table.
    """

    __slots__ = ("resource", "spec")

    def __init__(self, spec: TableSpec, resource: str) -> None:
        self.spec = spec
        self.resource = resource

    def out_of_service(
        self, host: CacheHost, exc: Exception, session_counters: CacheCounters | None = None
    ) -> None:
        """Count and log a call the cache cannot take: it is out of service
        (its supervisor gave up), or crashed on this very lookup (it restarts
        empty). The caller runs the tool uncached: a cache that fails never
        fails the call (DESIGN.md invariant 9)."""
        host.counters(self.resource).misses += 1
        if session_counters is not None:
            session_counters.misses += 1
        logger.warning("agent_cache: %s runs uncached: %r", self.spec.name, exc)

    def loaded(
        self, host: CacheHost, flight: Flight, value: object
    ) -> Coroutine[Any, Any, None] | None:
        """The load the caller led returned ``value``: store it if still
        attached, and hand it to the waiters.

        Returns None when done, or a coroutine the caller must await when the
        actor is busy (it finishes the job, even if cancelled).
        """
        table = host.tables.get(self.spec.tool_id)
        if table is None or table.flights.get(flight.key) is not flight:
            # Detached: an invalidation overtook the load (invariant 2), or the
            # actor restarted or stopped. Nothing may be stored, so no message:
            # the actor would only find the flight gone. Exact, as the hit path
            # is: only the actor detaches flights, and we do not await here.
            if table is not None:
                table.counters.stale_discarded += 1
            flight.resolve(value)
            return None
        complete = Complete(flight, value)
        ref = host.existing(self.resource)
        try:
            if ref is not None:
                ref.ask_nowait(complete)
        except WouldBlock:
            assert ref is not None
            return self._complete_queued(ref, complete)
        except Exception:
            pass  # stopped, or crashed and restarted empty: nothing to store into
        flight.resolve(value)
        return None

    async def _complete_queued(self, ref: ActorRef[ResourceCache], complete: Complete) -> None:
        try:
            await ref.ask(complete)
        except Exception:
            pass  # as in `loaded`
        finally:
            # Even if the Complete could not be delivered, the waiters get the value.
            complete.flight.resolve(complete.value)

    def failed(self, host: CacheHost, flight: Flight, error: BaseException) -> None:
        """The load the caller led raised ``error``: nothing is stored."""
        ref = host.existing(self.resource)
        if isinstance(error, Exception):
            flight.reject(error)  # every waiter gets the error (invariant 4)
            tell_quietly(ref, Fail(flight))
        else:
            # Cancelled (or KeyboardInterrupt): not an answer for the others.
            # They wake and one of them takes the load over (invariant 3).
            flight.abandon()
            tell_quietly(ref, Abandon(flight))


async def load_through(
    loads: ToolLoads,
    host: CacheHost,
    key: Hashable,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    session_counters: CacheCounters | None = None,
) -> T:
    """Serve one call that found no fresh entry through ``host``'s cache:
    join the running load of ``key``, or have the actor start one and run it
    here. ``session_counters``, when given, count the call as well.
    """
    spec = loads.spec
    asked: Flight | None = None
    table = host.tables.get(spec.tool_id)
    flight = table.flights.get(key) if table is not None else None
    if flight is not None and flight.state == RUNNING:
        # The pending load is the entry: join it with no message.
        assert table is not None
        table.counters.coalesced += 1
        if session_counters is not None:
            session_counters.coalesced += 1
    else:
        asked = Flight(spec, key)
        try:
            ref = host.cache(loads.resource)
            try:
                reply = ref.ask_nowait(asked)  # no coroutine when the actor is idle
            except WouldBlock:
                reply = await ref.ask(asked)
        except Exception as exc:
            loads.out_of_service(host, exc, session_counters)
            return await func(*args, **kwargs)
        if session_counters is not None:
            if type(reply) is Entry:
                session_counters.hits += 1
            elif reply is asked:
                session_counters.misses += 1
            else:
                session_counters.coalesced += 1
        if type(reply) is Entry:
            return reply.value  # type: ignore[return-value]
        flight = reply

    if flight is not asked:
        # Another caller's load: wait while it runs (a queued ask may resume
        # after it settled, and a gate made then would never open).
        if flight.state == RUNNING:
            await _gate(host, flight).wait()
        if flight.state == DONE:
            return flight.value  # type: ignore[return-value]
        return await rejoin(loads, host, flight, key, args, kwargs, func=func)

    return await _lead(loads, host, flight, func, args, kwargs)


async def rejoin(
    loads: ToolLoads,
    host: CacheHost,
    flight: Flight,
    key: Hashable,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    func: Callable[..., Awaitable[T]],
) -> T:
    """After waiting on another caller's ``flight``, which did not load a
    value: raise its error, or, if its leader was cancelled, look again.

    A woken waiter of an abandoned load leads the next one or joins it
    (invariant 3); the retried lookup is not counted again.
    """
    spec = loads.spec
    while True:
        # A cancelled waiter never gets here: it stops waiting (the flight is
        # not its own) and its cancellation propagates.
        if flight.state == DONE:
            return flight.value  # type: ignore[return-value]
        if flight.state == FAILED:
            assert flight.error is not None
            raise flight.error.with_traceback(flight.error_tb)
        assert flight.state == ABANDONED
        asked = Flight(spec, key, retry=True)
        try:
            reply = await _ask(host, loads.resource, asked)
        except Exception:
            return await func(*args, **kwargs)
        if type(reply) is Entry:
            return reply.value  # type: ignore[return-value]
        flight = reply
        if flight is asked:
            break
        if flight.state == RUNNING:
            await _gate(host, flight).wait()
    return await _lead(loads, host, flight, func, args, kwargs)


async def _lead(
    loads: ToolLoads,
    host: CacheHost,
    flight: Flight,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Run the load of ``flight`` here, in the caller's task, and report it."""
    try:
        value = await func(*args, **kwargs)
    except BaseException as exc:
        loads.failed(host, flight, exc)
        raise
    later = loads.loaded(host, flight, value)
    if later is not None:
        await later
    return value


def _gate(host: CacheHost, flight: Flight) -> Gate:
    """The gate of a running ``flight``, made by its first waiter. (The compiled
    wrapper does the same inline.) Only for a running flight: a gate made
    after it settled would never open."""
    gate = flight.gate
    if gate is None:
        gate = flight.gate = host.new_gate()
    return gate


async def _ask(host: CacheHost, resource: str, flight: Flight) -> LookupReply:
    ref = host.cache(resource)
    try:
        return ref.ask_nowait(flight)
    except WouldBlock:
        return await ref.ask(flight)
