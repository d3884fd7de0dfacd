"""The exceptions agent_cache raises to its users."""

from __future__ import annotations

from .actors.loop_detector import LoopEvent

__all__ = ["AgentLoopDetectedError", "RuntimeClosedError"]


class RuntimeClosedError(RuntimeError):
    """Raised when a tool is called in the context of an `agent_cache.Runtime`
    whose ``async with`` block has already ended.

    A task that outlives the block it was started in still sees that runtime in
    its context. Start such tasks inside the block, or do not use an explicit
    runtime (the implicit one lives as long as the event loop).
    """


class AgentLoopDetectedError(Exception):
    """Raised by a tool call when its session detects an agent loop and
    ``on_loop`` is ``"raise"`` (or an ``on_loop`` callable decided so).

    The tool did not run. The session stays marked: later calls of the same
    tool are refused too (kind ``"blocked"``), and the loops can be read after
    the run from `AgentCacheSession.loop_events`.

    Attributes:
        event: the structured `LoopEvent` (kind, tool, arguments, pattern,
            count, limit, session id).
        tool: the tool's plain name.
        session: the session id.
        count: how many times the call or pattern repeated (calls, for depth).
        kind: ``"repeat"``, ``"cycle"``, ``"depth"`` or ``"blocked"``.
    """

    def __init__(self, event: LoopEvent) -> None:
        super().__init__(f"agent loop detected in session {event.session_id}: {event.message}")
        self.event = event
        self.tool = event.tool
        self.session = event.session_id
        self.count = event.count
        self.kind = event.kind
