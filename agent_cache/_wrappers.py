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
entry (and its expiry, only if the tool has a TTL), count it and return.
Everything else -- no runtime yet, an unhashable argument, a miss -- goes to
``slow(ctx, key, args, kwargs)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from ._keys import KeyMaker
from ._runtime import Runtime, _current
from ._session import AgentCacheSession, SessionCall

__all__ = ["SlowPath", "compile_wrapper"]

SlowPath = Callable[[object, Hashable, tuple[Any, ...], dict[str, Any]], Coroutine[Any, Any, Any]]

_FAST = """\
async def {name}({params}):
    _ac_key_ = {key}
    _ac_ctx_ = _ac_get_ctx_()
    if type(_ac_ctx_) is _ac_Session_:
        return await _ac_in_session_(_ac_ctx_, _ac_key_, {call_args}, {call_kwargs})
    if type(_ac_ctx_) is _ac_Runtime_ and not _ac_ctx_.closed:
        _ac_table_ = _ac_ctx_.tables.get(_ac_tool_id_)
        if _ac_table_ is not None:
            try:
                _ac_entry_ = _ac_table_.entries.get(_ac_key_)
            except TypeError:  # an unhashable argument: the slow path freezes it
                _ac_entry_ = None
            if _ac_entry_ is not None{ttl_check}:
                _ac_table_.reads.append(_ac_key_)
                _ac_table_.counters.hits += 1
                return _ac_entry_.value
    return await _ac_slow_(_ac_ctx_, _ac_key_, {call_args}, {call_kwargs})
"""

# Session scope: no hit path outside a session (the tool just runs there).
_SESSION_SCOPE = """\
async def {name}({params}):
    _ac_ctx_ = _ac_get_ctx_()
    if type(_ac_ctx_) is _ac_Session_:
        return await _ac_in_session_(_ac_ctx_, {key}, {call_args}, {call_kwargs})
    return await _ac_slow_(_ac_ctx_, None, {call_args}, {call_kwargs})
"""

_TTL_CHECK = " and _ac_ctx_.clock() < _ac_entry_.expires"


def compile_wrapper(
    func: Callable[..., Awaitable[Any]],
    keys: KeyMaker,
    tool_id: int,
    slow: SlowPath,
    in_session: SessionCall,
    *,
    global_scope: bool,
    has_ttl: bool,
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Build the wrapper of ``func``: ``in_session`` serves calls made in a
    session; with ``global_scope``, hits in a runtime are served inline; the
    rest goes to ``slow``."""
    code = keys.code
    if any(name.startswith("_ac_") for name in code.names):
        # A parameter would shadow a generated name.
        return _generic(keys, slow, in_session)
    template = _FAST if global_scope else _SESSION_SCOPE
    name = func.__name__ if getattr(func, "__name__", "").isidentifier() else "tool"
    source = template.format(
        name=name,
        params=code.params,
        key=code.key,
        call_args=code.call_args,
        call_kwargs=code.call_kwargs,
        ttl_check=_TTL_CHECK if has_ttl else "",
    )
    namespace: dict[str, Any] = dict(code.namespace)
    namespace.update(
        _ac_get_ctx_=_current.get,
        _ac_Runtime_=Runtime,
        _ac_Session_=AgentCacheSession,
        _ac_tool_id_=tool_id,
        _ac_slow_=slow,
        _ac_in_session_=in_session,
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
