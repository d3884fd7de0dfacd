"""The registry of decorated read tools, by resource.

An invalidator with ``key_fn`` must turn the read arguments it names into the
key of every read tool of the resource, so it needs those tools' key makers.
Decoration happens at import time, before any event loop: this registry holds
definitions only (immutable after decoration), never per-loop state. Entries
are weak, so tools made by a factory and dropped do not pile up.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import final

from ._keys import KeyMaker
from ._loading import ToolLoads
from .actors.loop_detector import ToolSite
from .actors.resource_cache import TableSpec

__all__ = ["ToolDef", "next_tool_id", "register", "tools_of"]

_ids = itertools.count(1)
_lock = threading.Lock()
_by_resource: dict[tuple[str, str], weakref.WeakSet[ToolDef]] = {}


@final
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class ToolDef:
    """What the library knows of one decorated read tool."""

    spec: TableSpec
    keys: KeyMaker
    resource: str
    scope: str
    site: ToolSite
    #: its miss path (spec and resource again, with the messages around a load)
    loads: ToolLoads


def next_tool_id() -> int:
    """A process-unique id: two tools never share entries, whatever their names."""
    return next(_ids)


def register(tool: ToolDef) -> None:
    """Record ``tool`` under its resource and scope."""
    with _lock:
        _by_resource.setdefault((tool.resource, tool.scope), weakref.WeakSet()).add(tool)


def tools_of(resource: str, scope: str) -> list[ToolDef]:
    """The live read tools of ``resource`` in ``scope``."""
    with _lock:
        found = _by_resource.get((resource, scope))
        return list(found) if found is not None else []
