"""The session actor: one agent session's execution trace and loop detector.

A session is a supervisor subtree: a `Supervisor` whose children are this
actor and the session-scoped resource caches (``resource_cache.py``). Leaving
the session stops the subtree; a crashed cache is restarted empty.

State
-----
``detector``: a `LoopDetector`; ``record``: a `SessionRecord` holding the last
``trace_limit`` calls as `TraceEntry` (tool qualname, bound arguments), the
last loops detected, and how many in all. The record is published: the
session's public face reads it without a message, and it survives a restart
(the detector starts afresh).

Messages
--------
``RecordCall`` -> ``LoopEvent | None``: append to the trace and, with loop
detection on, judge the call. ``Refuse`` (tell): a loop verdict was acted on
(raise or short-circuit): block the tool for the rest of the session.

Invariants
----------
Calls are recorded in the order their ``RecordCall`` is handled, which is the
order the calls reached their tool wrappers: handled inline, with no await
before it, so concurrent sub-agent tasks of one session share one well-defined
order, the same under asyncio and trio for the same sequence of calls. Every
transition costs O(1) and the state is bounded (see `loop_detector`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple, final

from ..runtime import Actor, Message, Request
from .loop_detector import LoopDetector, LoopEvent, LoopLimits, ToolSite

__all__ = ["RecordCall", "Refuse", "SessionActor", "SessionRecord", "TraceEntry"]


class TraceEntry(NamedTuple):
    """One call in a session's execution trace."""

    tool_name: str
    args_key: Hashable


@final
class SessionRecord:
    """What a session has seen, published by its actor for the public face to
    read (and kept across a restart of the actor).

    Only the session actor writes it.
    """

    __slots__ = ("events", "loop_detections", "trace")

    def __init__(self, trace_limit: int, event_limit: int) -> None:
        self.trace: deque[tuple[str, Hashable]] = deque(maxlen=trace_limit)
        self.events: deque[LoopEvent] = deque(maxlen=event_limit)
        self.loop_detections = 0


@final
@dataclass(slots=True)  # not frozen: on every call of a session (see resource_cache)
class RecordCall(Request["LoopEvent | None"]):
    """Record a call of ``site`` with arguments ``key``; reply: the loop it
    makes, if any (and detection is on)."""

    site: ToolSite
    key: Hashable


@final
@dataclass(frozen=True, slots=True)
class Refuse(Message):
    """A loop on ``tool_id`` was acted on: refuse the tool from now on."""

    tool_id: int


@final
class SessionActor(Actor):
    """Trace and loop detector of one session."""

    def __init__(
        self, session_id: str, limits: LoopLimits, record: SessionRecord, *, detect: bool
    ) -> None:
        self.session_id = session_id
        self.detect = detect
        self.detector = LoopDetector(limits, session_id)
        self.record = record

    def receive(self, message: Message) -> object:
        # RecordCall is on every tool call of a session: handled right here,
        # without a second dispatch (a hit in a session must stay under 3 us).
        if type(message) is RecordCall:
            record = self.record
            # A plain tuple (the public face makes TraceEntry on reading):
            # building a NamedTuple costs as much as the rest of this handler.
            record.trace.append((message.site.qualname, message.key))
            if not self.detect:
                return None
            event = self.detector.record(message.site, message.key)
            if event is not None:
                record.loop_detections += 1
                record.events.append(event)
            return event
        if type(message) is Refuse:
            self.detector.block(message.tool_id)
            return None
        raise TypeError(f"SessionActor {self.session_id!r} got unknown message {message!r}")
