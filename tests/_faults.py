"""Fault injection shared by the example tests."""

from __future__ import annotations

from typing import Any

import pytest

from agent_cache.actors.resource_cache import ResourceCache


def crash_next_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next `ResourceCache.on_lookup`, of any cache, raise once."""
    original = ResourceCache.on_lookup
    crashes = [1]

    def flaky(self: ResourceCache, msg: Any) -> Any:
        if crashes:
            crashes.pop()
            raise RuntimeError("injected crash")
        return original(self, msg)

    monkeypatch.setattr(ResourceCache, "on_lookup", flaky)
