"""The public API: names, modules, docstrings, and the direction of imports."""

from __future__ import annotations

import ast
import pathlib

import pytest

import agent_cache

PACKAGE = pathlib.Path(agent_cache.__file__).parent


def test_all_names_exist_and_read_as_agent_cache() -> None:
    for name in agent_cache.__all__:
        obj = getattr(agent_cache, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "agent_cache", name
        assert obj.__doc__, f"{name} has no docstring"


def test_seed_names_are_public() -> None:
    for name in (
        "AgentCache",
        "AgentCacheInvalidator",
        "AgentCacheSession",
        "AgentLoopDetectedError",
        "get_metrics",
    ):
        assert name in agent_cache.__all__


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()


def _imports(path: pathlib.Path) -> set[str]:
    """Modules imported by ``path``: absolute names, relative ones as '..x'."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


# What each layer may import from agent_cache: only what lies below it.
_ALLOWED = {
    "runtime": lambda m: m.startswith(".") and not m.startswith(".."),
    "actors": lambda m: (m.startswith(".") and not m.startswith("..")) or m.startswith("..runtime"),
}


@pytest.mark.parametrize("layer", sorted(_ALLOWED))
def test_imports_go_downward_only(layer: str) -> None:
    for path in (PACKAGE / layer).glob("*.py"):
        for module in _imports(path):
            ours = module.startswith(".") or module.split(".")[0] == "agent_cache"
            if ours:
                assert _ALLOWED[layer](module), f"{layer}/{path.name} imports {module}"


def test_only_the_backend_module_imports_asyncio_or_trio() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_backend.py":
            continue
        for module in _imports(path):
            assert module.split(".")[0] not in {"asyncio", "trio"}, f"{path} imports {module}"
