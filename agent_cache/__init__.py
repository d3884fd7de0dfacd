"""agent_cache: caching, invalidation and loop detection for the tools of AI agents.

General layout (as in trio): the public API is what this module re-exports;
every other module of this package is private. ``runtime/`` is a small,
generic actor runtime on anyio; ``actors/`` holds the concrete actors; the
``_*.py`` modules here are the public face built on them. Imports go downward
only: public face -> actors -> runtime -> anyio.
"""

from ._decorators import AgentCache as AgentCache
from ._decorators import AgentCacheInvalidator as AgentCacheInvalidator
from ._decorators import Args as Args
from ._decorators import CachedTool as CachedTool
from ._decorators import InvalidatorTool as InvalidatorTool
from ._errors import AgentLoopDetectedError as AgentLoopDetectedError
from ._errors import RuntimeClosedError as RuntimeClosedError
from ._metrics import get_metrics as get_metrics
from ._metrics import reset_metrics as reset_metrics
from ._runtime import Runtime as Runtime
from ._session import AgentCacheSession as AgentCacheSession
from .actors.loop_detector import LoopEvent as LoopEvent
from .actors.session import TraceEntry as TraceEntry

__all__ = [
    "AgentCache",
    "AgentCacheInvalidator",
    "AgentCacheSession",
    "AgentLoopDetectedError",
    "Args",
    "CachedTool",
    "InvalidatorTool",
    "LoopEvent",
    "Runtime",
    "RuntimeClosedError",
    "TraceEntry",
    "get_metrics",
    "reset_metrics",
]

# Tracebacks and reprs read agent_cache.X, not agent_cache._module.X.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("agent_cache."):
        _obj.__module__ = "agent_cache"
del _name, _obj
