"""`AgentCacheSession`: one agent run's trace, loop detection and private caches.

The session lives in a context variable. Tasks started inside the ``async
with`` block inherit it (anyio task groups copy the context), so sub-agents
fanned out in a task group record into the one session. Agent frameworks that
run tool bodies in tasks of their own (an MCP server, an agents SDK) must open
the session where the tools run: on the server side of an MCP transport, open
it inside the request handler or the tool itself, not in the client.

Nested sessions: a session opened inside another is independent. While it is
open the calls of its block go to it alone -- its own trace, budgets and
session-scoped caches -- and the parent sees none of them. Leaving it returns
the context to the parent, untouched.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeAlias, final

from anyio import WouldBlock

from ._caches import CacheHost
from ._errors import AgentLoopDetectedError
from ._loading import load_through
from ._metrics import as_report, hub
from ._runtime import Runtime, _current, current_runtime
from ._tools import ToolDef
from .actors.counters import CacheCounters
from .actors.loop_detector import LoopEvent, LoopLimits, ToolSite
from .actors.session import RecordCall, Refuse, SessionActor, SessionRecord, TraceEntry
from .runtime import ActorRef, Supervisor

__all__ = ["AgentCacheSession", "OnLoop", "SessionCall", "current_session", "session_call"]

logger = logging.getLogger("agent_cache")

LoopAction: TypeAlias = Literal["raise", "warn", "short_circuit"]
OnLoop: TypeAlias = LoopAction | Callable[[LoopEvent], "LoopAction | None"]
_ACTIONS = ("raise", "warn", "short_circuit")


def current_session() -> AgentCacheSession | None:
    """The session of the calling task's context, if any."""
    ctx = _current.get()
    return ctx if ctx is not None and type(ctx) is not Runtime else None


def _positive(value: object, name: str, *, minimum: int = 1, none_ok: bool = False) -> Any:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        allowed = f"an int >= {minimum}" + (" or None" if none_ok else "")
        raise TypeError(f"AgentCacheSession: {name} must be {allowed}, not {value!r}")
    if value < minimum:
        raise ValueError(f"AgentCacheSession: {name} must be >= {minimum}, not {value!r}")
    return value


def _tool_name(tool: object) -> str:
    inner = getattr(tool, "__agent_cache_tool__", None)
    if isinstance(inner, ToolDef):
        return inner.spec.name
    if isinstance(tool, str) and tool:
        return tool
    raise TypeError(
        f"AgentCacheSession: tool_repeats keys must be tool names or decorated tools, not {tool!r}"
    )


@final
class AgentCacheSession:
    """An agent session: execution trace, loop detection, session-scoped caches.

    ``async with AgentCacheSession() as session:`` around an agent's run.
    Every decorated tool called inside (in this task or tasks started in the
    block) is recorded and checked for loops; tools with ``scope="session"``
    cache privately here, and those entries vanish when the block ends.

    Args:
        session_id: a name for logs and errors; a fresh UUID by default.
        loop_detection: check calls for loops (the trace is kept either way).
        max_tool_repeats: how often one tool may be called with the same
            arguments with no write to its resource in between.
        max_execution_depth: how many calls the session may make in all.
        on_loop: what a detected loop does. ``"raise"``: the call raises
            `AgentLoopDetectedError` and the tool does not run; ``"warn"``:
            log a warning on logger ``agent_cache`` and go on; ``"short_circuit"``:
            return the cached value, or None, without running the tool; or a
            callable that receives the `LoopEvent` and returns one of these (or
            None: go on silently). After "raise" or "short_circuit" the tool
            stays refused for the rest of the session.
        tool_repeats: per-tool overrides of ``max_tool_repeats``, keyed by
            decorated tool or by tool name.
        repeat_window: count repeats only over the last this many calls
            (None: the whole session).
        max_cycle_length: longest pattern of calls checked for cycles (1
            turns cycle detection off).
        cycle_repeats: how many back-to-back repetitions of a pattern make a
            cycle.
        trace_limit: how many of the latest calls `get_execution_trace` keeps.

    Raises:
        TypeError, ValueError: for a bad argument, naming it.
    """

    def __init__(
        self,
        session_id: str | None = None,
        loop_detection: bool = True,
        max_tool_repeats: int = 5,
        max_execution_depth: int = 50,
        on_loop: OnLoop = "raise",
        *,
        tool_repeats: Mapping[Any, int] | None = None,
        repeat_window: int | None = None,
        max_cycle_length: int = 10,
        cycle_repeats: int = 2,
        trace_limit: int = 10_000,
    ) -> None:
        if session_id is not None and not isinstance(session_id, str):
            raise TypeError(
                f"AgentCacheSession: session_id must be a str or None, not {session_id!r}"
            )
        if not isinstance(loop_detection, bool):
            raise TypeError(
                f"AgentCacheSession: loop_detection must be a bool, not {loop_detection!r}"
            )
        if not callable(on_loop) and on_loop not in _ACTIONS:
            raise ValueError(
                "AgentCacheSession: on_loop must be 'raise', 'warn' or 'short_circuit' "
                f"or a callable, not {on_loop!r}"
            )
        overrides = {
            _tool_name(tool): _positive(limit, f"tool_repeats[{tool!r}]")
            for tool, limit in (tool_repeats or {}).items()
        }
        self.session_id = session_id or str(uuid.uuid4())
        self.loop_detection = loop_detection
        self.max_tool_repeats = _positive(max_tool_repeats, "max_tool_repeats")
        self.max_execution_depth = _positive(max_execution_depth, "max_execution_depth")
        self.on_loop = on_loop
        self._limits = LoopLimits(
            max_repeats=self.max_tool_repeats,
            max_depth=self.max_execution_depth,
            window=_positive(repeat_window, "repeat_window", none_ok=True),
            max_cycle=_positive(max_cycle_length, "max_cycle_length"),
            cycle_repeats=_positive(cycle_repeats, "cycle_repeats", minimum=2),
            tool_repeats=overrides,
        )
        self._record = SessionRecord(_positive(trace_limit, "trace_limit", minimum=0), 1000)
        #: this session's own figures: every call made in it, either scope
        self.counters = CacheCounters()
        self._state: Literal["new", "open", "closed"] = "new"
        self._runtime: Runtime | None = None
        self._supervisor: Supervisor | None = None
        self._ref: ActorRef[SessionActor] | None = None
        self._host: CacheHost | None = None
        self._token: contextvars.Token[Runtime | AgentCacheSession | None] | None = None

    def __repr__(self) -> str:
        return f"<AgentCacheSession {self.session_id!r} {self._state}>"

    # -- lifetime ---------------------------------------------------------------

    async def __aenter__(self) -> AgentCacheSession:
        if self._state != "new":
            raise RuntimeError(f"session {self.session_id!r} can only be entered once")
        rt = self._runtime = current_runtime()
        supervisor = self._supervisor = rt.system.root.supervisor(f"session:{self.session_id}")
        sid, limits, record, detect = (
            self.session_id,
            self._limits,
            self._record,
            self.loop_detection,
        )
        self._ref = supervisor.spawn(
            lambda: SessionActor(sid, limits, record, detect=detect), name=f"session:{sid}"
        )
        self._host = CacheHost(f"session:{sid}", supervisor, rt.clock, on_new_cache=self._announce)
        self._state = "open"
        self._token = _current.set(self)
        return self

    def _announce(self, resource: str, host: CacheHost) -> None:
        # A global write must reach this session's entries of the resource.
        assert self._runtime is not None
        self._runtime.session_hosts.setdefault(resource, set()).add(host)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # left in another context (an async fixture)
                _current.set(self._runtime)
            self._token = None
        self._state = "closed"
        assert self._supervisor is not None
        assert self._host is not None
        assert self._runtime is not None
        self._supervisor.stop("session closed")
        for resource in self._host.resources:
            hosts = self._runtime.session_hosts.get(resource)
            if hosts is not None:
                hosts.discard(self._host)
                if not hosts:
                    del self._runtime.session_hosts[resource]
        self._host.close()

    # -- what users read --------------------------------------------------------

    def get_execution_trace(self) -> list[TraceEntry]:
        """The session's calls in order, as ``(tool_name, args_key)`` pairs.

        ``tool_name`` is the tool's ``__qualname__``; calls with equal bound
        arguments have equal ``args_key``. Only the latest ``trace_limit``
        calls are kept. Still readable after the session has ended.
        """
        return [TraceEntry(name, key) for name, key in self._record.trace]

    def get_metrics(self) -> dict[str, float]:
        """This session's figures: ``hits``, ``misses``, ``coalesced``,
        ``invalidations``, ``loop_detections``, ``hit_rate`` and the rest of
        `agent_cache.get_metrics`'s keys, over every call made in the session.

        Calls refused for a loop reach no cache: they count in
        ``loop_detections`` only.
        """
        return as_report(self.counters, self._record.loop_detections)

    @property
    def loop_events(self) -> list[LoopEvent]:
        """The loops detected so far (the latest 1000), oldest first."""
        return list(self._record.events)

    @property
    def looping(self) -> bool:
        """True once any loop was detected in this session."""
        return self._record.loop_detections > 0

    # -- what tools call --------------------------------------------------------

    async def _record_call(self, site: ToolSite, key: Hashable) -> Literal["go", "short_circuit"]:
        """Record a write tool's call: "go", or "short_circuit"; raises for "raise".

        (Read tools do the same inline, in `session_call`.)
        """
        ref = self._ref
        if ref is None or self._state != "open":
            return "go"
        message = RecordCall(site, key)
        try:
            try:
                event = ref.ask_nowait(message)
            except WouldBlock:
                event = await ref.ask(message)
        except Exception:
            logger.exception("agent_cache: session %s could not record a call", self.session_id)
            return "go"
        if event is None:
            return "go"
        return self._act_on(event, site)

    def _act_on(self, event: LoopEvent, site: ToolSite) -> Literal["go", "short_circuit"]:
        hub.loop_detections += 1
        action: LoopAction | None
        if callable(self.on_loop):
            action = self.on_loop(event)
            if action is not None and action not in _ACTIONS:
                raise ValueError(
                    "on_loop callable must return 'raise', 'warn', 'short_circuit' or None, "
                    f"not {action!r}"
                )
        else:
            action = self.on_loop
        if action is None:
            return "go"
        if action == "warn":
            logger.warning("agent loop detected in session %s: %s", self.session_id, event.message)
            return "go"
        assert self._ref is not None
        self._ref.tell_nowait(Refuse(site.tool_id))
        if action == "raise":
            raise AgentLoopDetectedError(event)
        return "short_circuit"

    @property
    def runtime(self) -> Runtime | None:
        """The runtime this session runs in (None before it is entered)."""
        return self._runtime

    @property
    def open_host(self) -> CacheHost | None:
        """This session's own caches while it is open."""
        return self._host if self._state == "open" else None


SessionCall = Callable[
    [AgentCacheSession, Hashable, tuple[Any, ...], dict[str, Any]], Coroutine[Any, Any, Any]
]


def session_call(tool: ToolDef, func: Callable[..., Awaitable[Any]]) -> SessionCall:
    """Build the in-session path of one read tool: record, judge, then cache.

    The compiled wrapper awaits it directly: every coroutine layer between a
    tool call and its hit costs ~0.2 us, against a budget of 3 us.
    """
    keys, spec, site, loads = tool.keys, tool.spec, tool.site, tool.loads
    own_scope = tool.scope == "session"

    async def in_session(
        session: AgentCacheSession, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            hash(key)
        except TypeError:
            key = keys.hashable(key, args, kwargs)
        short_circuit = False
        ref = session._ref
        if session._state == "open" and ref is not None:
            message = RecordCall(site, key)
            try:
                try:
                    event = ref.ask_nowait(message)  # no coroutine when idle
                except WouldBlock:
                    event = await ref.ask(message)
            except Exception:
                # A crashed session actor restarts with a fresh detector: the
                # call goes on (loop detection is a safety net, not a failure).
                logger.exception(
                    "agent_cache: session %s could not record a call", session.session_id
                )
                event = None
            if event is not None:
                short_circuit = session._act_on(event, site) == "short_circuit"
        host = session._host if own_scope else session._runtime.host  # type: ignore[union-attr]
        assert host is not None
        entry = host.hit(spec, key, count=not short_circuit)
        if short_circuit:
            return entry.value if entry is not None else None
        if entry is not None:
            session.counters.hits += 1
            return entry.value
        return await load_through(
            loads, host, key, func, args, kwargs, session_counters=session.counters
        )

    return in_session
