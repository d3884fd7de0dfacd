"""Actors: a behaviour (`Actor`), the cell that runs it, and the ref callers hold.

Theory of operation
-------------------
An `Actor` owns its state and changes it only in `receive`, a *synchronous*
state transition that returns the reply. Because a handler never awaits, no
other message can interleave with it, and slow work (I/O, the user's tool) runs
elsewhere and reports back as a message, as in an OTP gen_server.

Each actor lives in an `ActorCell`: the current behaviour instance, a mailbox
(an anyio memory object stream) and a loop task that receives from it, started
when the first message is queued. Two ways in:

* ``tell`` enqueues and returns; the loop task delivers it later. A handler
  error from a tell goes to the supervisor only.
* ``ask`` sends a `Request` and waits for its reply. **Fast path:** when the
  mailbox is empty and the actor idle, the asker runs the handler itself, in its
  own task, right away. That is observably the same as enqueueing the message
  and having the loop deliver it at once -- nothing is queued that it could
  overtake, and nothing can run between the two because the handler does not
  await -- but it costs a function call instead of two context switches (a
  round trip through a memory stream measured 28 us on asyncio and 39 us on
  trio here; the inline call is under 1 us). Otherwise the request joins the
  mailbox and the asker parks on a `Gate` until the loop replies.

Crash and stop
--------------
A handler that raises has crashed the actor. The error goes back to the asker
(for a tell, nowhere but the log) and the supervisor decides: restart (a fresh
behaviour from the factory; the mailbox and every queued message are kept, so
no caller is stranded) or stop. A stopped actor answers every queued ask, and
every later ask or tell, with `ActorStoppedError` at once: nothing ever waits
on a dead actor.

A cancelled or timed-out asker leaves its request in the mailbox; when the
reply comes it has nobody to go to, and the request's `reply_dropped` hook may
turn it into a compensating message (see `Request`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from .errors import ActorStoppedError, MailboxFullError
from .mailbox import Mailbox
from .messages import Message, Request

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["Actor", "ActorCell", "ActorRef"]

logger = logging.getLogger("agent_cache")

R = TypeVar("R")
A = TypeVar("A", bound="Actor")

# Reply slot states.
_WAITING, _DONE, _ABANDONED = range(3)


class Actor:
    """A behaviour: state plus a synchronous `receive`.

    Subclasses implement `receive` (dispatch with ``match`` or a dict; an
    unknown message is a bug and must raise) and may implement `on_stop`.
    """

    def receive(self, message: Message) -> object:
        """Handle one message and return the reply (``None`` for a tell).

        Must not await, block or call back into another actor's ``ask``.
        """
        raise NotImplementedError

    def on_stop(self, reason: str) -> None:
        """Called once when the actor stops for good (not on restart)."""


class _Reply:
    """One ask's reply slot: filled by the actor, read by the asker."""

    __slots__ = ("cell", "error", "gate", "request", "state", "value")

    def __init__(self, cell: ActorCell[Actor], request: Request[object]) -> None:
        self.cell = cell
        self.request = request
        # A Gate, not an anyio.Event: making one costs a tenth (see _backend.py).
        self.gate = cell.supervisor.system.new_gate()
        self.state = _WAITING
        self.value: object = None
        self.error: BaseException | None = None

    def resolve(self, value: object) -> None:
        if self.state == _ABANDONED:
            self._compensate(value)
            return
        self.value = value
        self.state = _DONE
        self.gate.open()

    def fail(self, error: BaseException) -> None:
        if self.state == _ABANDONED:
            return
        self.error = error
        self.state = _DONE
        self.gate.open()

    def abandon(self) -> None:
        """The asker is gone. A reply already delivered is compensated now;
        one still to come is compensated when it arrives."""
        if self.state == _DONE and self.error is None:
            self._compensate(self.value)
        self.state = _ABANDONED

    def _compensate(self, value: object) -> None:
        undo = self.request.reply_dropped(value)
        if undo is None or self.cell.stopped is not None:
            return
        try:
            self.cell.tell_nowait(undo)
        except (MailboxFullError, ActorStoppedError):
            # Never let an undo replace the asker's own cancellation or crash
            # the loop. Requests must tolerate a lost undo (the cache does:
            # its lookups treat a settled flight as absent).
            logger.exception("actor %r: undo %r lost", self.cell.name, undo)


class ActorCell(Generic[A]):
    """Runtime-internal home of one actor: behaviour, mailbox, status.

    Not for callers: they hold an `ActorRef`.
    """

    __slots__ = (
        "_factory",
        "actor",
        "busy",
        "crashes",
        "loop_started",
        "mailbox",
        "name",
        "stopped",
        "supervisor",
    )

    def __init__(
        self,
        name: str,
        factory: Callable[[], A],
        supervisor: Supervisor,
        *,
        mailbox_size: float = math.inf,
    ) -> None:
        self.name = name
        self._factory = factory
        self.actor: A = factory()
        self.supervisor = supervisor
        self.mailbox: Mailbox[tuple[Message, _Reply | None]] = Mailbox(mailbox_size)
        self.busy = False
        self.crashes = 0
        self.loop_started = False
        # None while running; the reason once stopped.
        self.stopped: str | None = None

    # -- handling ------------------------------------------------------------

    def invoke(self, message: Message) -> object:
        """Run the handler for ``message`` now; on error, crash and re-raise."""
        self.busy = True
        try:
            reply = self.actor.receive(message)
        except BaseException as exc:
            self.busy = False
            if isinstance(exc, Exception):
                self._crashed(message, exc)
            raise
        self.busy = False
        return reply

    def _crashed(self, message: Message, exc: Exception) -> None:
        self.crashes += 1
        logger.error(
            "actor %r crashed handling %s", self.name, type(message).__name__, exc_info=exc
        )
        self.supervisor.child_crashed(self, exc)

    def restart(self) -> None:
        """Replace the behaviour with a fresh one; the mailbox is kept."""
        self.actor = self._factory()

    def enqueue(self, message: Message, reply: _Reply | None) -> None:
        if self.stopped is not None:
            raise ActorStoppedError(self.name, self.stopped)
        try:
            self.mailbox.put_nowait((message, reply))
        except anyio.WouldBlock:
            raise MailboxFullError(self.name, int(self.mailbox.capacity)) from None
        self.ensure_loop()

    def ensure_loop(self) -> None:
        """Start the actor loop if it is not running yet.

        Loops start on the first queued message, not at spawn: most messages
        take the inline path and never queue, so most actors never need a
        task at all (thousands of sessions cost no idle tasks), and a loop
        task can never be cancelled before its first step at shutdown
        unless it had work.
        """
        if not self.loop_started:
            self.loop_started = True
            self.supervisor.system._start(self)  # type: ignore[arg-type]

    def tell_nowait(self, message: Message) -> None:
        if not self.busy and not self.mailbox.pending and self.stopped is None:
            # Not contextlib.suppress: on this hot path it doubled the cost of
            # an inline tell_nowait (0.82 us against 0.29 us, bench_runtime.py).
            try:  # noqa: SIM105
                self.invoke(message)
            except Exception:
                pass  # a crash: reported to the supervisor by invoke
        else:
            self.enqueue(message, None)

    def _deliver(self, message: Message, reply: _Reply | None) -> None:
        try:
            value = self.invoke(message)
        except Exception as exc:
            if reply is not None:
                reply.fail(exc)
            return
        if reply is not None:
            reply.resolve(value)

    async def run(self) -> None:
        """The actor loop: deliver queued messages in order until stopped."""
        while True:
            try:
                message, reply = await self.mailbox.get()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            if self.stopped is not None:
                # The mailbox handed this message straight to our parked `get`
                # and `stop` ran before we resumed, so its drain missed it. Treat
                # it as queued at the stop: never run a handler after `on_stop`.
                if reply is not None:
                    reply.fail(ActorStoppedError(self.name, self.stopped))
                return
            self._deliver(message, reply)

    def stop(self, reason: str) -> None:
        """Stop for good: fail every queued ask, drop queued tells, close."""
        if self.stopped is not None:
            return
        self.stopped = reason
        error = ActorStoppedError(self.name, reason)
        for _message, reply in self.mailbox.close():
            if reply is not None:
                reply.fail(error)
        try:
            self.actor.on_stop(reason)
        except Exception:
            logger.exception("actor %r failed in on_stop", self.name)


class ActorRef(Generic[A]):
    """What callers hold: ``tell`` and ``ask``, no reach into the actor."""

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell[A]) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        state = "running" if self._cell.stopped is None else "stopped"
        return f"<ActorRef {self._cell.name!r} {state}>"

    @property
    def name(self) -> str:
        """The actor's name, as given at spawn."""
        return self._cell.name

    @property
    def stopped(self) -> str | None:
        """``None`` while the actor runs; the reason once it has stopped."""
        return self._cell.stopped

    # The timeout is the request's, not only a cancel scope of the caller's: a
    # fast-path ask ignores it (it never waits), a queued one abandons the
    # request when it fires. Hence a parameter, against ASYNC109.
    async def ask(self, request: Request[R], *, timeout: float | None = None) -> R:  # noqa: ASYNC109
        """Send ``request`` and return the actor's reply.

        Runs the handler at once in the calling task when the actor is idle and
        its mailbox empty (no scheduling, so this is not a checkpoint);
        otherwise queues behind the earlier messages and waits.

        Raises:
            ActorStoppedError: the actor is stopped, or stopped before replying.
            TimeoutError: no reply within ``timeout`` seconds. The request stays
                queued; its reply, when it comes, goes to `Request.reply_dropped`.
            Exception: whatever the handler raised (the actor crashed on it).
        """
        cell = self._cell
        if not cell.busy and not cell.mailbox.pending and cell.stopped is None:
            return cell.invoke(request)  # type: ignore[return-value]
        return await self._ask_queued(request, timeout)

    def ask_nowait(self, request: Request[R]) -> R:
        """`ask` without waiting: the reply if the actor can handle ``request``
        right now (idle, mailbox empty), in the calling task.

        For hot paths that want to skip creating a coroutine; fall back to
        ``await ask(request)`` on `anyio.WouldBlock`.

        Raises:
            anyio.WouldBlock: the actor is busy or has queued messages.
            ActorStoppedError: the actor is stopped.
            Exception: whatever the handler raised (the actor crashed on it).
        """
        cell = self._cell
        if not cell.busy and not cell.mailbox.pending and cell.stopped is None:
            return cell.invoke(request)  # type: ignore[return-value]
        if cell.stopped is not None:
            raise ActorStoppedError(cell.name, cell.stopped)
        raise anyio.WouldBlock

    async def _ask_queued(self, request: Request[R], timeout: float | None) -> R:  # noqa: ASYNC109
        cell = self._cell
        reply = _Reply(cell, request)  # type: ignore[arg-type]
        cell.enqueue(request, reply)
        try:
            if timeout is None:
                await reply.gate.wait()  # fail_after(None) alone costs 20-30 us
            else:
                with anyio.fail_after(timeout):
                    await reply.gate.wait()
        except BaseException:
            reply.abandon()
            raise
        if reply.error is not None:
            raise reply.error
        return reply.value  # type: ignore[return-value]

    def tell_nowait(self, message: Message) -> None:
        """Deliver ``message`` without waiting for its handling to be reported.

        Like `ask`, an idle actor with an empty mailbox handles it at once in
        the calling task; otherwise it is queued for the actor loop. Either
        way a handler error goes to the supervisor, never to the teller.

        Raises:
            ActorStoppedError: the actor is stopped.
            MailboxFullError: the mailbox is at capacity (use `tell` to wait).
        """
        self._cell.tell_nowait(message)

    async def tell(self, message: Message) -> None:
        """Queue ``message``, waiting for room if the mailbox is full.

        Raises:
            ActorStoppedError: the actor is stopped.
        """
        cell = self._cell
        if cell.stopped is not None:
            raise ActorStoppedError(cell.name, cell.stopped)
        cell.ensure_loop()
        try:
            await cell.mailbox.put((message, None))
        except anyio.ClosedResourceError:
            raise ActorStoppedError(cell.name, cell.stopped or "stopped") from None
