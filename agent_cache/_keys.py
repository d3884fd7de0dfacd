"""Cache keys: a call's arguments bound to the tool's signature, defaults applied.

``search("q")``, ``search("q", page=1)`` and ``search(query="q")`` must be one
key. `inspect.Signature.bind` gets that right but costs microseconds, more than
a whole cache hit may. So, as dataclasses and attrs do for ``__init__``, we
compile a *binder*: a function with the tool's own parameter list whose body
returns the tuple of its parameters. Calling it makes CPython do the binding
(positional, keyword, defaults, errors) at C speed. Where the signature is plain
(positional parameters only) and the caller passed every argument positionally,
the key is ``args`` itself and no binder runs at all.

Values that are not hashable (lists, dicts, sets, plain dataclasses, pydantic
models) are frozen into hashable, type-tagged equivalents. Two values that
compare equal give equal keys; a list and a tuple with the same items do not.
An argument that cannot be frozen gets a `TypeError` naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable, Hashable
from typing import Any, final

__all__ = ["KeyMaker", "SignatureCode", "freeze"]

_P = inspect.Parameter


@final
class _Tagged:
    """A frozen unhashable value: ``tag`` says what it was, ``items`` what it held."""

    __slots__ = ("_hash", "items", "tag")

    def __init__(self, tag: object, items: Hashable) -> None:
        self.tag = tag
        self.items = items
        self._hash = hash((tag, items))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return type(other) is _Tagged and self.tag == other.tag and self.items == other.items

    def __repr__(self) -> str:
        tag = self.tag if isinstance(self.tag, str) else getattr(self.tag, "__name__", self.tag)
        return f"{tag}{self.items!r}"


def freeze(value: object) -> Hashable:
    """Return a hashable value equal for equal inputs.

    Raises:
        TypeError: ``value`` (or something inside it) cannot be made hashable.
    """
    if isinstance(value, (str, bytes, int, float, bool, type(None), enum.Enum)):
        return value
    if isinstance(value, tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, list):
        return _Tagged("list", tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return _Tagged("dict", frozenset((freeze(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = tuple((f.name, freeze(getattr(value, f.name))) for f in dataclasses.fields(value))
        return _Tagged(type(value), fields)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):  # pydantic v2 model
        return _Tagged(type(value), freeze(dump()))
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"a {type(value).__qualname__} cannot be part of a cache key: it is not "
            "hashable and is not a list, dict, set, dataclass or pydantic model"
        ) from None
    return value


@final
class SignatureCode:
    """Python source fragments that mirror one tool's signature.

    The binder and the compiled tool wrapper (``_wrappers.py``) are both built
    from these, so the two always agree on what a call's key is.

    Attributes:
        params: the parameter list, defaults named ``_ac_default<i>_``.
        key: the key expression: the single parameter itself when only one
            is keyed (no tuple to build and hash on every hit), else a tuple.
        call_args, call_kwargs: expressions to call the tool with the very
            arguments received.
        call: the same as an argument list, ``tool({call})`` (no tuple or
            dict is built for it).
        namespace: the default values (and helpers) the fragments refer to.
        names: the parameter names, to check for clashes with generated names.
    """

    __slots__ = (
        "call",
        "call_args",
        "call_kwargs",
        "key",
        "names",
        "namespace",
        "params",
        "single",
    )

    def __init__(self, sig: inspect.Signature, skip: int) -> None:
        params = list(sig.parameters.values())
        last_posonly = max(
            (i for i, p in enumerate(params) if p.kind is _P.POSITIONAL_ONLY), default=-1
        )
        names: list[str] = []
        keyed: list[str] = []
        positional_args: list[str] = []
        keyword_args: list[str] = []
        direct_keywords: list[str] = []
        self.namespace: dict[str, Any] = {"_ac_sorted_": _sorted_items}
        positional = 0
        star = False
        for i, p in enumerate(params):
            # Parameter names are identifiers (Python checked them when it
            # compiled the tool); defaults travel in the namespace, never as text.
            name = p.name
            if p.kind is _P.VAR_POSITIONAL:
                names.append(f"*{name}")
                star = True
                positional_args.append(f"*{name}")
                # skip_args beyond the named positional parameters eats into *args.
                extra = max(0, skip - positional)
                keyed.append(f"{name}[{extra}:]" if extra else name)
                continue
            if p.kind is _P.VAR_KEYWORD:
                names.append(f"**{name}")
                keyword_args.append(f"**{name}")
                direct_keywords.append(f"**{name}")
                keyed.append(f"_ac_sorted_({name})")
                continue
            if p.kind is _P.KEYWORD_ONLY and not star:
                names.append("*")
                star = True
            if p.default is _P.empty:
                names.append(name)
            else:
                self.namespace[f"_ac_default{i}_"] = p.default
                names.append(f"{name}=_ac_default{i}_")
            if i == last_posonly:
                names.append("/")
            if p.kind is _P.KEYWORD_ONLY:
                keyword_args.append(f"{name!r}: {name}")
                direct_keywords.append(f"{name}={name}")
            else:
                positional_args.append(name)
                positional += 1
                if positional <= skip:
                    continue
            keyed.append(name)
        self.names = [p.name for p in params]
        self.params = ", ".join(names)
        plain = len(keyed) == 1 and not any(
            p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD) for p in params
        )
        self.single = plain
        self.key = keyed[0] if plain else f"({''.join(k + ', ' for k in keyed)})"
        self.call_args = f"({''.join(a + ', ' for a in positional_args)})"
        self.call_kwargs = f"{{{', '.join(keyword_args)}}}"
        self.call = ", ".join(positional_args + direct_keywords)


def _sorted_items(kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(kwargs.items()))


def _compile_binder(code: SignatureCode, tool: str) -> Callable[..., Hashable]:
    """Compile ``def bind(<signature>): return <key>``."""
    namespace = dict(code.namespace)
    exec(f"def bind({code.params}):\n    return {code.key}\n", namespace)
    bind = namespace["bind"]
    # A call with the wrong arguments fails here first: make the error name the
    # tool ("get_cart() missing 1 required positional argument"), not "bind()".
    bind.__qualname__ = tool
    return bind  # type: ignore[no-any-return]


@final
class KeyMaker:
    """Turns one tool's call arguments into its cache key.

    Attributes:
        code: the signature as source fragments (shared with the wrapper).
        fast_arity: when a call passes exactly this many positional arguments
            and no keyword arguments, the key comes straight from ``args``; -1
            when defaults, ``*args``, keyword-only or ``**kwargs`` parameters
            make that shortcut unsafe.
        skip: how many leading arguments (``self``, a client) are left out.
    """

    __slots__ = ("_sig", "bind", "code", "fast_arity", "skip", "tool")

    def __init__(self, func: Callable[..., object], skip: int, tool: str) -> None:
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        named_positional = sum(
            p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in params
        )
        has_varargs = any(p.kind is _P.VAR_POSITIONAL for p in params)
        if skip > named_positional and not has_varargs:
            raise ValueError(
                f"skip_args={skip} but {tool} takes only {named_positional} positional argument(s)"
            )
        self._sig = sig
        self.tool = tool
        self.skip = skip
        self.code = SignatureCode(sig, skip)
        self.bind = _compile_binder(self.code, tool)
        plain = all(p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in params)
        self.fast_arity = len(params) if plain else -1

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        """The key of one call, hashable. Raises TypeError as the tool would."""
        key: Hashable
        if kwargs or len(args) != self.fast_arity:
            key = self.bind(*args, **kwargs)
        elif self.code.single:
            key = args[self.skip]
        else:
            key = args[self.skip :] if self.skip else args
        return self.hashable(key, args, kwargs)

    def hashable(self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        """Return ``key`` if hashable, else its frozen form; name a bad argument."""
        try:
            hash(key)
        except TypeError:
            pass
        else:
            return key
        try:
            return freeze(key)
        except TypeError as exc:
            raise TypeError(f"{self.tool}: argument {self._culprit(args, kwargs)}: {exc}") from None

    def _culprit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = self._sig.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            try:
                freeze(value)
            except TypeError:
                return repr(name)
        return "?"  # pragma: no cover - freeze(key) failed, so one argument must

    def try_bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        """The key for these arguments, or None when they do not fit the signature."""
        try:
            key = self.bind(*args, **kwargs)
        except TypeError:
            return None
        return self.hashable(key, args, kwargs)
