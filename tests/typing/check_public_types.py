"""Checked by mypy only (not collected by pytest): decorated tools keep their types."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from agent_cache import AgentCache, AgentCacheInvalidator, AgentCacheSession, LoopEvent
from agent_cache.actors.resource_cache import Flight, LookupReply
from agent_cache.runtime import ActorRef


@AgentCache(resource="cart", ttl=60)
async def get_cart(user_id: str, page: int = 1) -> list[str]:
    return [user_id] * page


@AgentCacheInvalidator(resource=["cart", "totals"])
async def add_to_cart(user_id: str, item: str) -> bool:
    return bool(item)


async def use(ref: ActorRef[Any], flight: Flight) -> None:
    call: Coroutine[Any, Any, list[str]] = get_cart("u1")
    call.close()
    assert_type(await get_cart("u1", page=2), list[str])
    assert_type(await add_to_cart("u1", "x"), bool)
    assert_type(get_cart.resource, str)
    assert_type(add_to_cart.resources, tuple[str, ...])
    assert_type(await ref.ask(flight), LookupReply)
    async with AgentCacheSession() as session:
        assert_type(session, AgentCacheSession)
        assert_type(session.loop_events, list[LoopEvent])
    await get_cart(3)  # type: ignore[arg-type]
