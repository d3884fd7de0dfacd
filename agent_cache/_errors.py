"""The exceptions agent_cache raises to its users."""

from __future__ import annotations

__all__ = ["RuntimeClosedError"]


class RuntimeClosedError(RuntimeError):
    """Raised when a tool is called in the context of an `agent_cache.Runtime`
    whose ``async with`` block has already ended.

    A task that outlives the block it was started in still sees that runtime in
    its context. Start such tasks inside the block, or do not use an explicit
    runtime (the implicit one lives as long as the event loop).
    """
