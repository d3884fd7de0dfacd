"""Compiled tool wrappers: the hit fast path, specialised to one tool's signature.

A generic ``async def wrapper(*args, **kwargs)`` pays for packing the
arguments, for binding them to build a key, and for unpacking them again to
call the tool: measured here, about 1.3x the cost of awaiting the bare
coroutine, out of a budget of 4x for a whole hit. So, as dataclasses and attrs
do for ``__init__``, the wrapper is compiled from source with the tool's own
parameter list: CPython binds the call, applies the defaults, and the key is
the parameters themselves (see `_keys.SignatureCode`, shared with the binder
so both always make the same key).

The generated function reads the context once. In a session it awaits the
tool's in-session path directly (`_session.session_call`). In an entered
runtime it does the hit itself: find the tool's published table, check the
entry (and its expiry, only if the tool has a TTL), count it and return. It
also leads the common miss itself -- no entry and no running load: ask the
actor for a new `Flight`, await the tool with the very arguments it got, and
report back (`ToolLoads.loaded`, `ToolLoads.failed`; a load that an
invalidation detached meanwhile, as most loads of a write-heavy swarm are, it
settles without a call) -- because every coroutine layer and every repacking
of the arguments shows on a miss, and in a swarm most calls are misses. A
call that finds the key loading joins the load right there; a task's first
call finds (or starts) the runtime and goes on the same way. Everything else
-- an unhashable argument, a busy actor, a closed runtime -- goes to
``slow(ctx, key, args, kwargs)``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from anyio import WouldBlock

from ._keys import KeyMaker
from ._loading import rejoin
from ._runtime import Runtime, _current, current_runtime
from ._session import AgentCacheSession, SessionCall
from ._tools import ToolDef
from .actors.resource_cache import DONE, RUNNING, Entry, Flight
from .runtime import ActorStoppedError

__all__ = ["SlowPath", "compile_wrapper"]

SlowPath = Callable[[object, Hashable, tuple[Any, ...], dict[str, Any]], Coroutine[Any, Any, Any]]

_FAST = """\
async def {name}({params}):
    _ac_key_ = {key}
    _ac_ctx_ = _ac_get_ctx_()
    if _ac_type_(_ac_ctx_) is not _ac_Runtime_:
        if _ac_type_(_ac_ctx_) is _ac_Session_:
            return await _ac_in_session_(_ac_ctx_, _ac_key_, {call_args}, {call_kwargs})
        if _ac_ctx_ is not None:
            return await _ac_slow_(_ac_ctx_, _ac_key_, {call_args}, {call_kwargs})
        # This task's first call: find (or make) the runtime, and go on inline.
        _ac_ctx_ = _ac_current_runtime_()
    # A closed runtime has no tables: its calls take the slow path.
    _ac_table_ = _ac_ctx_.tables.get(_ac_tool_id_)
    if _ac_table_ is not None:
        try:
            if _ac_key_ in _ac_table_.entries:
                _ac_entry_ = _ac_table_.entries[_ac_key_]
{hit}
            _ac_flight_ = _ac_table_.flights.get(_ac_key_)
        except _ac_TypeError_:  # an unhashable argument: the slow path freezes it
            pass
        else:
            if _ac_flight_ is None:
                # Nobody loads it: have the actor start a load, and lead it.
                _ac_ref_ = _ac_ctx_.refs.get(_ac_resource_)
                if _ac_ref_ is not None:
                    _ac_flight_ = _ac_Flight_(_ac_spec_, _ac_key_)
                    try:
                        _ac_reply_ = _ac_ref_.ask_nowait(_ac_flight_)
                    except _ac_not_now_:  # busy or stopped: the slow path
                        _ac_reply_ = None
                    except _ac_Exception_ as _ac_error_:
                        _ac_out_of_service_(_ac_ctx_.host, _ac_error_)
                        return await _ac_tool_({call})
                    if _ac_reply_ is _ac_flight_:
                        try:
                            _ac_value_ = await _ac_tool_({call})
                        except _ac_BaseException_ as _ac_error_:
                            _ac_failed_(_ac_ctx_.host, _ac_flight_, _ac_error_)
                            raise
                        # The table the flight was attached to: if the actor
                        # restarted meanwhile, ToolLoads.loaded looks again.
                        if _ac_table_.flights.get(_ac_key_) is not _ac_flight_:
                            # Detached: an invalidation overtook the load. What
                            # ToolLoads.loaded does first, inline: in a
                            # write-heavy swarm most loads end here.
                            _ac_table_.counters.stale_discarded += 1
                            _ac_flight_.resolve(_ac_value_)
                            return _ac_value_
                        _ac_later_ = _ac_loaded_(_ac_ctx_.host, _ac_flight_, _ac_value_)
                        if _ac_later_ is not None:
                            await _ac_later_
                        return _ac_value_
                    if _ac_type_(_ac_reply_) is _ac_Entry_:
                        return _ac_reply_.value  # fresh to the actor after all
            elif _ac_flight_.state == _ac_RUNNING_:
                # A load is running: join it (see _loading.py).
                _ac_table_.counters.coalesced += 1
                _ac_gate_ = _ac_flight_.gate
                if _ac_gate_ is None:
                    _ac_gate_ = _ac_flight_.gate = _ac_ctx_.host.new_gate()
                await _ac_gate_.wait()
                if _ac_flight_.state == _ac_DONE_:
                    return _ac_flight_.value
                return await _ac_rejoin_(
                    _ac_ctx_.host, _ac_flight_, _ac_key_, {call_args}, {call_kwargs}
                )
    return await _ac_slow_(_ac_ctx_, _ac_key_, {call_args}, {call_kwargs})
"""

# Session scope: no hit path outside a session (the tool just runs there).
_SESSION_SCOPE = """\
async def {name}({params}):
    _ac_ctx_ = _ac_get_ctx_()
    if _ac_type_(_ac_ctx_) is _ac_Session_:
        return await _ac_in_session_(_ac_ctx_, {key}, {call_args}, {call_kwargs})
    return await _ac_slow_(_ac_ctx_, None, {call_args}, {call_kwargs})
"""

# The hit, inside the wrapper's ``if key in entries:``; with a TTL, only if fresh.
_HIT = """\
                _ac_table_.reads.append(_ac_key_)
                _ac_table_.counters.hits += 1
                return _ac_entry_.value"""
_HIT_TTL = """\
                if _ac_ctx_.clock() < _ac_entry_.expires:
                    _ac_table_.reads.append(_ac_key_)
                    _ac_table_.counters.hits += 1
                    return _ac_entry_.value"""


def compile_wrapper(
    func: Callable[..., Awaitable[Any]],
    tool: ToolDef,
    slow: SlowPath,
    in_session: SessionCall,
    *,
    global_scope: bool,
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Build the wrapper of ``func``: ``in_session`` serves calls made in a
    session; with ``global_scope``, hits and the common miss in a runtime are
    served inline; the rest goes to ``slow``."""
    keys = tool.keys
    code = keys.code
    if any(name.startswith("_ac_") for name in code.names):
        # A parameter would shadow a generated name.
        return _generic(keys, slow, in_session)
    template = _FAST if global_scope else _SESSION_SCOPE
    name = getattr(func, "__name__", "")
    if not name.isidentifier() or name.startswith("_ac_"):
        name = "tool"  # the wrapper's name must not shadow a generated one either
    source = template.format(
        name=name,
        params=code.params,
        key=code.key,
        call_args=code.call_args,
        call_kwargs=code.call_kwargs,
        call=code.call,
        hit=_HIT_TTL if tool.spec.ttl is not None else _HIT,
    )
    namespace: dict[str, Any] = dict(code.namespace)
    namespace.update(
        _ac_get_ctx_=_current.get,
        _ac_Runtime_=Runtime,
        _ac_current_runtime_=current_runtime,
        _ac_Session_=AgentCacheSession,
        _ac_tool_id_=tool.spec.tool_id,
        _ac_slow_=slow,
        _ac_in_session_=in_session,
        _ac_tool_=func,
        _ac_Flight_=Flight,
        _ac_Entry_=Entry,
        _ac_spec_=tool.spec,
        _ac_resource_=tool.resource,
        _ac_not_now_=(WouldBlock, ActorStoppedError),
        _ac_out_of_service_=tool.loads.out_of_service,
        _ac_loaded_=tool.loads.loaded,
        _ac_failed_=tool.loads.failed,
        _ac_rejoin_=functools.partial(rejoin, tool.loads, func=func),
        _ac_RUNNING_=RUNNING,
        _ac_DONE_=DONE,
        # Builtins under generated names too: a parameter called ``type`` or
        # ``Exception`` would otherwise shadow them inside the wrapper.
        _ac_type_=type,
        _ac_TypeError_=TypeError,
        _ac_Exception_=Exception,
        _ac_BaseException_=BaseException,
    )
    exec(source, namespace)
    return namespace[name]  # type: ignore[no-any-return]


def _generic(
    keys: KeyMaker, slow: SlowPath, in_session: SessionCall
) -> Callable[..., Coroutine[Any, Any, Any]]:
    get_ctx = _current.get

    async def tool(*args: Any, **kwargs: Any) -> Any:
        ctx = get_ctx()
        key = keys.bind(*args, **kwargs)
        if type(ctx) is AgentCacheSession:
            return await in_session(ctx, key, args, kwargs)
        return await slow(ctx, key, args, kwargs)

    return tool
