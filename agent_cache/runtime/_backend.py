"""The one module that knows which event loop is running.

Why it exists: a decorated tool must work with no setup at all (users of the
seed call tools with no context manager around them). Its actors then need a
home whose lifetime is the event loop's, not any caller's task group -- a task
that nobody awaits, which the loop cancels when it shuts down. anyio has no
public API for such a task, so this module makes one per backend:

* trio: ``trio.lowlevel.spawn_system_task``, cancelled when the main task ends;
* asyncio: ``loop.create_task``, cancelled by ``asyncio.run`` at shutdown. The
  task gets a fresh ``contextvars.Context`` so the caller's context variables
  (an active session, say) do not leak into it, as with trio's system tasks.

Everything else in agent_cache uses anyio only.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["current_backend", "spawn_system_task"]

# asyncio only keeps weak references to tasks: hold them until they finish.
_asyncio_tasks: set[Any] = set()


def current_backend() -> str:
    """Name the running backend: ``"trio"`` or ``"asyncio"``.

    anyio no longer depends on sniffio, so ask the loops themselves; trio only
    when something already imported it.
    """
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return "trio"
    import asyncio

    asyncio.get_running_loop()  # raises RuntimeError outside any loop
    return "asyncio"


def spawn_system_task(fn: Callable[[], Awaitable[None]], *, name: str) -> None:
    """Run ``fn()`` in a task owned by the event loop itself.

    ``fn`` must not raise anything but cancellation (trio treats an error in a
    system task as a crash of the whole run).
    """
    backend = current_backend()
    if backend == "trio":
        import trio

        trio.lowlevel.spawn_system_task(fn, name=name)
    else:
        import asyncio

        async def main() -> None:
            await fn()

        task = asyncio.get_running_loop().create_task(
            main(), name=name, context=contextvars.Context()
        )
        _asyncio_tasks.add(task)
        task.add_done_callback(_asyncio_tasks.discard)
