"""Tests for agent_cache/runtime/mailbox.py: FIFO order and the exact pending count."""

from __future__ import annotations

import anyio
import pytest

from agent_cache.runtime.mailbox import Mailbox

# -- synchronous: no event loop needed ---------------------------------------


def test_put_nowait_counts_and_close_drains_oldest_first() -> None:
    mailbox: Mailbox[str] = Mailbox()
    for item in "abc":
        mailbox.put_nowait(item)
    assert len(mailbox) == mailbox.pending == 3
    assert mailbox.close() == ["a", "b", "c"]
    assert len(mailbox) == 0


def test_put_nowait_when_full_raises_wouldblock_and_does_not_count() -> None:
    mailbox: Mailbox[int] = Mailbox(2)
    mailbox.put_nowait(1)
    mailbox.put_nowait(2)
    with pytest.raises(anyio.WouldBlock):
        mailbox.put_nowait(3)
    assert len(mailbox) == 2
    assert mailbox.close() == [1, 2]


def test_put_nowait_after_close_raises_closed() -> None:
    mailbox: Mailbox[int] = Mailbox()
    assert mailbox.close() == []
    with pytest.raises(anyio.ClosedResourceError):
        mailbox.put_nowait(1)
    assert len(mailbox) == 0


def test_close_twice_is_harmless() -> None:
    mailbox: Mailbox[int] = Mailbox()
    mailbox.put_nowait(1)
    assert mailbox.close() == [1]
    assert mailbox.close() == []


# -- asynchronous -------------------------------------------------------------


@pytest.mark.anyio
async def test_get_returns_items_in_put_order() -> None:
    mailbox: Mailbox[int] = Mailbox()
    for item in range(5):
        mailbox.put_nowait(item)
    await mailbox.put(5)
    assert [await mailbox.get() for _ in range(6)] == list(range(6))
    assert len(mailbox) == 0
    mailbox.close()


@pytest.mark.anyio
async def test_item_handed_to_parked_get_still_counts_until_get_resumes() -> None:
    # anyio hands the item straight to the parked receiver, so the stream's own
    # statistics read empty; the mailbox must not, or an inline ask would
    # overtake this item.
    mailbox: Mailbox[str] = Mailbox()
    got: list[str] = []

    async def getter() -> None:
        got.append(await mailbox.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(getter)
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("a")
            assert mailbox._receive.statistics().current_buffer_used == 0
            assert len(mailbox) == 1
    assert got == ["a"]
    assert len(mailbox) == 0
    mailbox.close()


@pytest.mark.anyio
async def test_put_waits_for_room_and_counts_while_waiting() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(1)
    done = anyio.Event()

    async def putter() -> None:
        await mailbox.put(2)
        done.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(putter)
            await anyio.wait_all_tasks_blocked()
            # Counted before it is in: an ask arriving now must queue behind it.
            assert len(mailbox) == 2
            assert not done.is_set()
            assert await mailbox.get() == 1
            await done.wait()
            assert await mailbox.get() == 2
    assert len(mailbox) == 0
    mailbox.close()


@pytest.mark.anyio
async def test_cancelled_put_is_uncounted() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(1)

    async def putter(scope: anyio.CancelScope) -> None:
        with scope:
            await mailbox.put(2)

    scope = anyio.CancelScope()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(putter, scope)
            await anyio.wait_all_tasks_blocked()
            assert len(mailbox) == 2
            scope.cancel()
    assert len(mailbox) == 1
    assert mailbox.close() == [1]


@pytest.mark.anyio
async def test_close_wakes_a_parked_get() -> None:
    mailbox: Mailbox[int] = Mailbox()

    async def getter() -> None:
        with pytest.raises((anyio.EndOfStream, anyio.ClosedResourceError)):
            await mailbox.get()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(getter)
            await anyio.wait_all_tasks_blocked()
            assert mailbox.close() == []


@pytest.mark.anyio
async def test_get_after_close_raises() -> None:
    mailbox: Mailbox[int] = Mailbox()
    mailbox.put_nowait(1)
    mailbox.close()
    with pytest.raises((anyio.EndOfStream, anyio.ClosedResourceError)):
        await mailbox.get()


@pytest.mark.anyio
async def test_close_withdraws_a_put_waiting_for_room() -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    mailbox.put_nowait(1)

    async def putter() -> None:
        with pytest.raises(anyio.ClosedResourceError):
            await mailbox.put(2)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(putter)
            await anyio.wait_all_tasks_blocked()
            assert mailbox.close() == [1]
    assert len(mailbox) == 0


@pytest.mark.anyio
async def test_item_handed_to_parked_get_before_close_is_returned_uncounted() -> None:
    # Regression: close() cannot drain an item already handed to a parked get;
    # that get returns it after close, and used to drive the count to -1.
    mailbox: Mailbox[str] = Mailbox()
    got: list[str] = []

    async def getter() -> None:
        got.append(await mailbox.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(getter)
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("a")
            assert mailbox.close() == []
            assert len(mailbox) == 0
    assert got == ["a"]
    assert len(mailbox) == 0
