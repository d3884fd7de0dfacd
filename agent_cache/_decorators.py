"""`AgentCache` and `AgentCacheInvalidator`: the decorators users apply to tools."""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, cast, final

import anyio
from anyio import WouldBlock

from ._caches import CacheHost
from ._keys import KeyMaker
from ._loading import ToolLoads, load_through
from ._runtime import Runtime, current_runtime
from ._session import AgentCacheSession, current_session, session_call
from ._tools import ToolDef, next_tool_id, register, tools_of
from ._wrappers import compile_wrapper
from .actors.loop_detector import ToolSite
from .actors.resource_cache import Invalidate, ResourceCache, TableSpec
from .runtime import ActorRef

__all__ = ["AgentCache", "AgentCacheInvalidator", "Args", "CachedTool", "InvalidatorTool"]

logger = logging.getLogger("agent_cache")

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Scope = Literal["global", "session"]
_SCOPES = ("global", "session")


class CachedTool(Protocol[P, T_co]):
    """A tool decorated with `AgentCache`: the same call signature, plus tags."""

    resource: str
    scope: Scope

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T_co]: ...


class InvalidatorTool(Protocol[P, T_co]):
    """A tool decorated with `AgentCacheInvalidator`."""

    resource: str | tuple[str, ...]
    resources: tuple[str, ...]
    scope: Scope

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T_co]: ...


@final
class Args:
    """The arguments of one read-tool call, for a ``key_fn`` to return.

    ``Args("u1", currency="eur")`` names the call ``get_total("u1",
    currency="eur")``. A ``key_fn`` may also return a tuple (positional
    arguments), a dict (keyword arguments), a single other value (the one
    positional argument) or a list of any of these (several calls).
    """

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"Args({', '.join(parts)})"


# -- validation (DESIGN.md invariant 10: bad input fails at decoration) -------


def _check_resource(resource: object, who: str) -> str:
    if not isinstance(resource, str):
        raise TypeError(f"{who}: resource must be a str, not {type(resource).__name__}")
    if not resource:
        raise ValueError(f"{who}: resource must be a non-empty str")
    return resource


def _check_scope(scope: object, who: str) -> Scope:
    if scope not in _SCOPES:
        raise ValueError(f"{who}: scope must be 'global' or 'session', not {scope!r}")
    return cast(Scope, scope)


def _check_count(value: object, name: str, who: str, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        allowed = "an int >= 0 or None" if allow_none else "an int >= 0"
        raise TypeError(f"{who}: {name} must be {allowed}, not {value!r}")
    if value < 0:
        raise ValueError(f"{who}: {name} must be >= 0, not {value!r}")
    return value


def _check_ttl(ttl: object, who: str) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"{who}: ttl must be a number of seconds >= 0 or None, not {ttl!r}")
    if not ttl >= 0 or math.isnan(ttl):
        raise ValueError(f"{who}: ttl must be >= 0 seconds or None, not {ttl!r}")
    return float(ttl)


def display_name(func: object) -> str:
    """The tool's name for messages: its qualname without the ``<locals>`` path."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return str(name).rpartition("<locals>.")[2]


def _check_async(func: object, who: str) -> None:
    if not callable(func):
        raise TypeError(f"{who} decorates async functions, not {func!r}")
    if not inspect.iscoroutinefunction(func):
        name = getattr(func, "__qualname__", repr(func))
        raise TypeError(
            f"{who} decorates 'async def' functions; {name} is not one "
            "(make it 'async def', or call a sync function through anyio.to_thread)"
        )


# -- AgentCache ---------------------------------------------------------------


@final
class AgentCache:
    """Cache an async read tool's results, tagged with the resource they read.

    Concurrent calls with equal arguments share one run of the tool
    (single-flight); an `AgentCacheInvalidator` on the same resource makes
    every later call load afresh. Arguments are compared after binding to the
    tool's signature with defaults applied: ``search("q")``, ``search("q",
    page=1)`` and ``search(query="q")`` are one entry. Errors are never cached.

    Args:
        resource: the tag that invalidators name.
        scope: ``"global"``, shared by every caller in the runtime, or
            ``"session"``, private to the enclosing `AgentCacheSession` and
            dropped with it (outside any session the tool just runs).
        ttl: seconds an entry stays fresh, counted from the start of the load
            that produced it; ``None`` keeps entries until evicted or
            invalidated; ``0`` stores nothing but still shares a running load
            among concurrent callers.
        maxsize: most entries kept for this tool (least recently used go
            first); ``None`` for no bound; ``0`` stores nothing.
        skip_args: leading arguments left out of the key (``self``, a client).

    Raises:
        TypeError, ValueError: at decoration, for a bad argument or a tool that
            is not an ``async def`` function.
    """

    __slots__ = ("maxsize", "resource", "scope", "skip_args", "ttl")

    def __init__(
        self,
        resource: str,
        scope: Scope = "global",
        ttl: float | None = None,
        maxsize: int | None = 128,
        skip_args: int = 0,
    ) -> None:
        who = "AgentCache"
        self.resource = _check_resource(resource, who)
        self.scope = _check_scope(scope, who)
        self.ttl = _check_ttl(ttl, who)
        self.maxsize = _check_count(maxsize, "maxsize", who, allow_none=True)
        self.skip_args = cast(int, _check_count(skip_args, "skip_args", who, allow_none=False))

    def __call__(self, func: Callable[P, Awaitable[T]]) -> CachedTool[P, T]:
        _check_async(func, "AgentCache")
        name = display_name(func)
        try:
            keys = KeyMaker(func, self.skip_args, name)
        except ValueError as exc:
            raise ValueError(f"AgentCache: {exc}") from None
        spec = TableSpec(next_tool_id(), name, self.ttl, self.maxsize)
        qualname = getattr(func, "__qualname__", name)
        site = ToolSite(spec.tool_id, name, qualname, reads=(self.resource,))
        loads = ToolLoads(spec, self.resource)
        tool = ToolDef(spec, keys, self.resource, self.scope, site, loads)
        register(tool)
        if self.scope == "session":
            wrapper = _session_scoped(func, tool)
        else:
            wrapper = _global_scoped(func, tool)
        functools.update_wrapper(wrapper, func)
        wrapper.resource = self.resource  # type: ignore[attr-defined]
        wrapper.scope = self.scope  # type: ignore[attr-defined]
        # Keep the ToolDef alive as long as the tool: the registry holds it weakly.
        wrapper.__agent_cache_tool__ = tool  # type: ignore[attr-defined]
        return cast(CachedTool[P, T], wrapper)


def _global_scoped(
    func: Callable[..., Awaitable[Any]], tool: ToolDef
) -> Callable[..., Coroutine[Any, Any, Any]]:
    keys, spec, loads = tool.keys, tool.spec, tool.loads

    async def slow(
        ctx: object, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # No runtime in context yet, an unhashable argument, a load to join,
        # or a busy actor.
        rt = current_runtime()
        key = keys.hashable(key, args, kwargs)
        entry = rt.host.hit(spec, key)
        if entry is not None:
            return entry.value
        return await load_through(loads, rt.host, key, func, args, kwargs)

    return compile_wrapper(func, tool, slow, session_call(tool, func), global_scope=True)


def _session_scoped(
    func: Callable[..., Awaitable[Any]], tool: ToolDef
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def outside_sessions(
        ctx: object, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return await func(*args, **kwargs)  # outside any session: just run

    return compile_wrapper(
        func, tool, outside_sessions, session_call(tool, func), global_scope=False
    )


# -- AgentCacheInvalidator ----------------------------------------------------


@final
class AgentCacheInvalidator:
    """Mark an async write tool: calling it makes cached reads of its resources fresh.

    The guarantee (DESIGN.md invariant 2): once the write tool has returned or
    raised, no read that starts afterwards returns data loaded before the
    write finished, and no such read joins a load that began before it. When
    the tool ends (returns, raises or is cancelled), its cached entries are
    dropped and the loads still running are detached: they finish for the
    callers already waiting on them but are never stored. A read that overlaps
    the write may see the data before or after it, as with any concurrent
    read.

    Args:
        resource: the resource, or a list of resources, the tool writes.
        scope: ``"global"``: the runtime's entries of those resources, and the
            entries of every open session (users expect a write to make every
            cached read fresh). ``"session"``: only the enclosing session's.
        skip_args: not supported (it silently produced wrong keys in the seed);
            anything but 0 raises TypeError. Use ``key_fn``.
        clear_all: drop every entry of the resource. The default: True unless
            ``key_fn`` is given.
        key_fn: ``key_fn(args, kwargs)`` gets the write tool's positional and
            keyword arguments and returns the *read* calls to drop, as read-tool
            arguments: an `Args`, a tuple, a dict, a single value, or a list of
            them. Read tools of the resource whose signature does not fit those
            arguments are cleared entirely: a wrong guess never leaves stale
            data behind.

    Raises:
        TypeError, ValueError: at decoration, for bad arguments.
    """

    __slots__ = ("clear_all", "key_fn", "resources", "scope")

    def __init__(
        self,
        resource: str | Sequence[str],
        scope: Scope = "global",
        skip_args: int = 0,
        clear_all: bool | None = None,
        key_fn: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
    ) -> None:
        who = "AgentCacheInvalidator"
        if skip_args != 0:
            raise TypeError(
                f"{who}: skip_args is not supported on invalidators (it silently "
                "produced wrong keys); use key_fn to map the write's arguments to "
                "the read tool's arguments"
            )
        if isinstance(resource, str):
            self.resources: tuple[str, ...] = (_check_resource(resource, who),)
        elif isinstance(resource, Sequence) and resource:
            self.resources = tuple(_check_resource(r, who) for r in resource)
        else:
            raise TypeError(
                f"{who}: resource must be a str or a non-empty list of str, not {resource!r}"
            )
        self.scope = _check_scope(scope, who)
        if key_fn is not None and not callable(key_fn):
            raise TypeError(f"{who}: key_fn must be callable, not {key_fn!r}")
        if clear_all is None:
            clear_all = key_fn is None
        elif not isinstance(clear_all, bool):
            raise TypeError(f"{who}: clear_all must be a bool, not {clear_all!r}")
        if clear_all and key_fn is not None:
            raise ValueError(f"{who}: clear_all=True and key_fn contradict; pass one")
        if not clear_all and key_fn is None:
            raise ValueError(f"{who}: clear_all=False needs a key_fn naming what to drop")
        self.clear_all = clear_all
        self.key_fn = key_fn

    def __call__(self, func: Callable[P, Awaitable[T]]) -> InvalidatorTool[P, T]:
        _check_async(func, "AgentCacheInvalidator")
        resources, scope, key_fn = self.resources, self.scope, self.key_fn
        name = display_name(func)
        keys = KeyMaker(func, 0, name)
        qualname = getattr(func, "__qualname__", name)
        site = ToolSite(next_tool_id(), name, qualname, writes=resources)
        clear_plans = dict.fromkeys(resources, _CLEAR_ALL)

        async def agent_cache_invalidator(*args: Any, **kwargs: Any) -> Any:
            session = current_session()
            if session is not None:
                key = keys(args, kwargs)
                if await session._record_call(site, key) == "short_circuit":
                    return None  # a looping write is not run again
            if key_fn is None:
                plans = clear_plans
            else:
                plans = {r: _plan(r, key_fn, scope, args, kwargs) for r in resources}
            try:
                return await func(*args, **kwargs)
            finally:
                # After the write, even when it failed or was cancelled. Not
                # before: entries and loads from before the write are dropped
                # here all the same, and a read *during* the write may see
                # either state; clearing twice only threw away more loads
                # (6-7% more in the swarm benchmark) for no guarantee.
                waiting = _invalidate_nowait(scope, session, plans)
                if waiting:
                    # Only a busy actor makes us wait, and a cancelled write
                    # must still invalidate: shield that wait. (Not always: a
                    # shielded scope costs 9 us on asyncio, 19 us on trio.)
                    with anyio.CancelScope(shield=True):
                        for ref, plan in waiting:
                            await _ask_invalidate(ref, plan)

        functools.update_wrapper(agent_cache_invalidator, func)
        wrapper: Any = agent_cache_invalidator
        wrapper.resource = resources[0] if len(resources) == 1 else resources
        wrapper.resources = resources
        wrapper.scope = scope
        return cast(InvalidatorTool[P, T], wrapper)


def _calls(result: object) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Normalise what a key_fn returned into (args, kwargs) pairs."""
    if isinstance(result, list):
        return [pair for item in result for pair in _calls(item)]
    if isinstance(result, Args):
        return [(result.args, result.kwargs)]
    if isinstance(result, tuple):
        return [(result, {})]
    if isinstance(result, dict):
        return [((), result)]
    return [((result,), {})]


_CLEAR_ALL = Invalidate()  # messages are immutable: one serves every clear_all write


def _plan(
    resource: str,
    key_fn: Callable[[tuple[Any, ...], dict[str, Any]], Any],
    scope: Scope,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Invalidate:
    """What a key_fn write drops in ``resource``: the keys its calls name, and
    whole tables of read tools whose signature does not fit them."""
    calls = _calls(key_fn(args, kwargs))
    keys: dict[int, tuple[Hashable, ...]] = {}
    whole: set[int] = set()
    scopes = _SCOPES if scope == "global" else (scope,)
    for tool in (t for s in scopes for t in tools_of(resource, s)):
        found = [tool.keys.try_bind(a, kw) for a, kw in calls]
        if any(k is None for k in found):
            whole.add(tool.spec.tool_id)
        else:
            keys[tool.spec.tool_id] = tuple(k for k in found if k is not None)
    return Invalidate(keys, frozenset(whole))


def _invalidate_nowait(
    scope: Scope, session: AgentCacheSession | None, plans: dict[str, Invalidate]
) -> list[tuple[ActorRef[ResourceCache], Invalidate]]:
    """Apply ``plans`` to every cache the write reaches (see the scope argument
    of `AgentCacheInvalidator`), counting one invalidation per resource.

    Returns the caches that were busy: the caller must still ask those.
    """
    rt: Runtime | None = None
    if scope == "session":
        primary = session.open_host if session is not None else None
        if primary is None:
            return []  # a session-scoped write outside any session has nothing to drop
    else:
        rt = (session.runtime if session is not None else None) or current_runtime()
        primary = rt.host
    waiting: list[tuple[ActorRef[ResourceCache], Invalidate]] = []
    for resource, plan in plans.items():
        primary.counters(resource).invalidations += 1
        if session is not None:
            session.counters.invalidations += 1
        _send_invalidate(primary, resource, plan, waiting)
        if rt is not None:
            for host in rt.session_hosts.get(resource, ()):
                _send_invalidate(host, resource, plan, waiting)
    return waiting


def _send_invalidate(
    host: CacheHost,
    resource: str,
    plan: Invalidate,
    waiting: list[tuple[ActorRef[ResourceCache], Invalidate]],
) -> None:
    """Invalidate ``host``'s cache of ``resource`` now, or add it to ``waiting``
    when it is busy."""
    ref = host.existing(resource)
    if ref is None:
        return
    try:
        ref.ask_nowait(plan)
    except WouldBlock:
        waiting.append((ref, plan))
    except Exception:
        _log_failed_invalidation(resource)


async def _ask_invalidate(ref: ActorRef[ResourceCache], plan: Invalidate) -> None:
    try:
        await ref.ask(plan)
    except Exception:
        _log_failed_invalidation(ref.name)


def _log_failed_invalidation(what: str) -> None:
    # The cache crashed on it and restarted empty (or stopped, its tables
    # unpublished): nothing stale is left to serve.
    logger.exception("agent_cache: invalidating %r failed", what)
