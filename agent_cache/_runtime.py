"""`Runtime`: the home of the global-scope caches, and how a tool finds it.

A tool call finds its runtime in a context variable: the one an enclosing
``async with Runtime()`` set, else the event loop's implicit runtime (made on
first use, hosted in a system task, closed when the loop shuts down). State
lives per runtime, never in module globals, so an asyncio test and a trio test
never share an actor.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, final

from anyio.lowlevel import RunVar

from ._caches import CacheHost
from ._errors import RuntimeClosedError
from ._metrics import as_report
from .runtime import ActorSystem, RestartIntensity

if TYPE_CHECKING:
    from ._session import AgentCacheSession

__all__ = ["Runtime", "current_runtime"]

logger = logging.getLogger("agent_cache")

# The calling task's context: an entered Runtime, or an entered session (which
# knows its runtime), or None. One variable for both, because every tool call
# reads it and a second ContextVar read measured ~40 ns of a ~500 ns hit.
_current: contextvars.ContextVar[Runtime | AgentCacheSession | None] = contextvars.ContextVar(
    "agent_cache_context", default=None
)
_implicit: RunVar[Runtime] = RunVar("agent_cache_implicit_runtime")


@final
class Runtime:
    """Hosts the cache actors of the global scope for one event loop.

    Optional: with no runtime around them, decorated tools use an implicit one
    that lives as long as the event loop. Use ``async with Runtime():`` for a
    structured lifetime (leaving the block stops every actor and drops every
    global entry), for isolation between tests, or to set a clock.

    Args:
        clock: seconds as a float, for TTLs and restart intensity. Defaults to
            `time.monotonic` (cheapest). Pass ``anyio.current_time`` to follow
            a virtual test clock such as trio's ``MockClock``.
        restart_intensity: ``(max_restarts, within_seconds)`` for each
            supervisor: the global caches' and every session's. Past it that
            subtree stops: its caches' tools run uncached (a session also
            stops detecting loops); the rest carries on.

    Raises:
        TypeError: ``clock`` is not callable.
        ValueError: ``restart_intensity`` is out of range.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        restart_intensity: tuple[int, float] = (3, 5.0),
    ) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, not {clock!r}")
        max_restarts, within = restart_intensity
        self.clock: Callable[[], float] = clock or time.monotonic
        self.closed = False
        self.implicit = False
        self.system = ActorSystem(
            "agent_cache",
            clock=self.clock,
            intensity=RestartIntensity(max_restarts, within),
        )
        #: the global-scope caches, in a subtree of their own: when they crash
        #: past the restart intensity only they stop (tools then run uncached);
        #: the sessions, siblings under the root, keep their loop detection.
        self.host = CacheHost("cache", self.system.root.supervisor("cache"), self.clock)
        #: tool id -> table of the global scope, read by the hit fast path
        self.tables = self.host.tables
        #: resource -> its cache actor, for the miss fast path
        self.refs = self.host.refs
        #: resource -> the open sessions' hosts with a cache of it (for global writes)
        self.session_hosts: dict[str, set[CacheHost]] = {}
        self._token: contextvars.Token[Runtime | AgentCacheSession | None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<agent_cache.Runtime {state} resources={sorted(self.host.resources)}>"

    async def __aenter__(self) -> Runtime:
        await self.system.__aenter__()
        self._token = _current.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # exited in another context (an async fixture)
                _current.set(None)
            self._token = None
        self._close()
        return await self.system.__aexit__(exc_type, exc, tb)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.system.shutdown("runtime closed")
        self.host.close()

    def statistics(self, resource: str) -> dict[str, float]:
        """This runtime's global-scope metrics for one resource (keys as in
        `agent_cache.get_metrics`)."""
        return as_report(self.host.counters(resource), 0)


def current_runtime() -> Runtime:
    """The runtime of the calling task: an entered `Runtime` (or the runtime of
    an entered session), else the event loop's implicit one.

    Raises:
        RuntimeClosedError: the calling task's context holds a runtime whose
            ``async with`` block has ended.
    """
    ctx = _current.get()
    rt = ctx.runtime if ctx is not None and type(ctx) is not Runtime else ctx
    if rt is not None:
        if not rt.closed:
            return rt
        if not rt.implicit:
            raise RuntimeClosedError(
                "this task runs in the context of an agent_cache.Runtime whose "
                "'async with' block has ended; start the task inside the block"
            )
    rt = _implicit.get(None)
    if rt is None or rt.closed:
        rt = Runtime()
        rt.implicit = True
        rt.system.start_background(on_exit=rt._close)
        _implicit.set(rt)
    if ctx is None or type(ctx) is Runtime:
        # Remember it in this task's context: a RunVar lookup costs ~0.5 us, a
        # ContextVar read ~0.03 us, and the hit path pays this on every call.
        _current.set(rt)
    return rt
