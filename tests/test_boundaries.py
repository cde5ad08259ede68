"""The layers' import boundaries, checked on the source (AST), not on trust.

- `schemas/` imports nothing of ours;
- `worker/rules/` imports only `schemas/`, itself, the standard library, `holidays` and
  `pydantic` (its state is made of the same pydantic models as the schemas);
- Celery and kombu are imported only by the modules listed in CELERY_MODULES;
- no import cycle among our modules, counting imports inside functions too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("schemas", "worker", "tasks")

CELERY_MODULES = {
    # the entry points Celery runs: thin tasks, and their typed decorator
    "tasks.deadlines",
    "tasks.inbound",
    "tasks.labels",
    "tasks.typed",
    "tasks.errors",  # kombu's OperationalError is a transient failure
    # the shell: configuration, hooks, consumer, transport, task request
    "worker.celery",
    "worker.shell.hooks",
    "worker.shell.consumer",
    "worker.shell.transport",
    "worker.shell.redaction",
    "worker.shell.beat",  # the tick's schedule: Celery's interval, skipping idle ticks
    "worker.adapters.topology",  # the contract's queues and exchanges, as kombu entities
    "worker.adapters.amqp",  # RabbitMQ: its queues, options and app class
    # adapters that speak to the broker
    "worker.adapters.publisher",
    "worker.adapters.queues",
    "worker.adapters.direct_publish",  # kombu's routing and envelope, pushed by the commit
    # producers and command-line tools
    "worker.contract.client",
    "worker.cli.main",
    "worker.cli.ops",
    "worker.cli.demo.target",
}
"""Every module of ours that imports celery or kombu, and why. worker/runtime.py (the
wiring) may too; today it reaches Celery only through worker.celery."""

WIRING = {"worker.runtime"}

RULES_THIRD_PARTY = {"holidays", "pydantic"}


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


def test_schemas_import_nothing_of_ours() -> None:
    for name, path in MODULES.items():
        if top(name) == "schemas":
            ours = {m for m in imported(path) if top(m) in OURS and top(m) != "schemas"}
            assert not ours, f"{name} imports {sorted(ours)}"


def test_rules_import_only_schemas_the_standard_library_and_pure_libraries() -> None:
    for name, path in MODULES.items():
        if not name.startswith("worker.rules"):
            continue
        for module in imported(path):
            allowed = (
                module.startswith(("worker.rules", "schemas"))
                or top(module) in sys.stdlib_module_names
                or top(module) in RULES_THIRD_PARTY
            )
            assert allowed, f"{name} imports {module}"


def test_only_the_shell_imports_celery_or_kombu() -> None:
    importers = {
        name
        for name, path in MODULES.items()
        if any(top(module) in ("celery", "kombu") for module in imported(path))
    }
    assert importers <= CELERY_MODULES | WIRING, sorted(importers - CELERY_MODULES - WIRING)
    assert importers >= CELERY_MODULES, f"no longer import Celery: {CELERY_MODULES - importers}"


def import_graph() -> dict[str, list[str]]:
    return {
        name: sorted({m for m in imported(path) if m in MODULES and m != name})
        for name, path in MODULES.items()
    }


def cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle in `graph` (module -> modules it imports), or None."""
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str] | None:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done:
            return None
        for following in graph[name]:
            found = visit(following, [*trail, name])
            if found:
                return found
        done.add(name)
        return None

    for name in graph:
        found = visit(name, [])
        if found:
            return found
    return None


def test_no_import_cycle() -> None:
    found = cycle(import_graph())
    assert found is None, " -> ".join(found or [])


def test_the_cycle_check_can_fail() -> None:
    assert cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
