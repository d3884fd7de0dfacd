"""Agent frameworks see a decorated tool exactly as the undecorated one.

Frameworks build a tool's schema from ``inspect.signature`` and
``typing.get_type_hints`` and call it from their own tasks with keyword
arguments and pydantic model instances. Optional: install the
``frameworks`` extra (``pip install -e ".[dev,frameworks]"``); each test skips
when its framework is missing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agent_cache import AgentCache, Runtime

pytestmark = pytest.mark.anyio


class Item(BaseModel):
    sku: str
    qty: int = 1


CALLS: list[str] = []


async def lookup(query: str, item: Item, limit: int = 10) -> list[str]:
    """Look things up in the catalogue.

    Args:
        query: what to look for.
        item: the item the customer holds.
        limit: how many results.
    """
    CALLS.append(query)
    return [query, item.sku] * limit


cached_lookup = AgentCache(resource="catalog")(lookup)
ARGUMENTS = {"query": "q", "item": {"sku": "a"}, "limit": 1}


@pytest.fixture(autouse=True)
async def fresh() -> AsyncIterator[None]:
    CALLS.clear()
    async with Runtime():
        yield


def same_schema(make: Callable[[Any], Any]) -> None:
    plain, cached = make(lookup), make(cached_lookup)
    assert json.dumps(plain, sort_keys=True, default=str) == json.dumps(
        cached, sort_keys=True, default=str
    )


async def test_mcp_sdk() -> None:
    mcp_server = pytest.importorskip("mcp.server")
    servers = []

    async def schema(fn: Any) -> Any:
        server = mcp_server.MCPServer("test")
        server.tool()(fn)
        servers.append(server)
        return [t.model_dump(exclude_none=True) for t in await server.list_tools()]

    assert await schema(lookup) == await schema(cached_lookup)
    for _ in range(2):
        result = await servers[-1].call_tool("lookup", ARGUMENTS)
        assert result.structured_content == {"result": ["q", "a"]}
    assert CALLS == ["q"]


async def test_langchain(anyio_backend: tuple[str, dict[str, Any]]) -> None:
    tools = pytest.importorskip("langchain_core.tools")
    same_schema(lambda fn: tools.StructuredTool.from_function(coroutine=fn).args)
    if anyio_backend[0] != "asyncio":
        return  # LangChain's ainvoke itself needs asyncio
    tool = tools.StructuredTool.from_function(coroutine=cached_lookup)
    for _ in range(2):
        assert await tool.ainvoke(ARGUMENTS) == ["q", "a"]
    assert CALLS == ["q"]


async def test_openai_agents_sdk() -> None:
    agents = pytest.importorskip("agents")
    same_schema(lambda fn: agents.function_tool(fn).params_json_schema)
    same_schema(lambda fn: agents.function_tool(fn).description)


async def test_pydantic_ai() -> None:
    pydantic_ai = pytest.importorskip("pydantic_ai")
    same_schema(lambda fn: pydantic_ai.Tool(fn).tool_def.parameters_json_schema)
    same_schema(lambda fn: pydantic_ai.Tool(fn).tool_def.description)
