"""Every dotted string Celery resolves at run time names something that exists.

worker/celery.py names its parts by string (`include`, `broker_transport`,
`worker_consumer`, the consumer steps) and tasks name their request class the same way;
Celery imports them only when a worker or beat starts, so a moved module would otherwise
fail in the integration tier, minutes later. Here each is resolved the way Celery does
(`kombu.utils.imports.symbol_by_name`, `importlib.import_module` for `include`), in a fresh
interpreter per broker (the app is configured at import, from the environment), and every
task name the app routes, schedules or the contract names is checked to be registered.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kombu.utils.imports import symbol_by_name

from worker.shell.batch import RUNNER

ROOT = Path(__file__).resolve().parents[2]

RESOLVE = r"""
import importlib, json, sys
from kombu.utils.imports import symbol_by_name

from schemas.inbound import TYPES_BY_TASK
from worker.adapters import topology
from worker.celery import app

OURS = ("worker", "tasks", "schemas")


def ours(text):
    return text.split(":")[0].split(".")[0] in OURS and " " not in text


def strings(value):
    if isinstance(value, str):
        if ours(value):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from strings(item)


found, failed = {}, {}


def resolve(where, text, module=False):
    found.setdefault(where, []).append(text)
    try:
        importlib.import_module(text) if module else symbol_by_name(text)
    except Exception as exc:
        failed[text] = f"{where}: {type(exc).__name__}: {exc}"


conf = dict(app.conf)
for name in conf.get("include") or ():
    resolve("include", name, module=True)
for key, value in sorted(conf.items()):
    if key != "include":
        for text in strings(value):
            resolve(f"conf.{key}", text)
for blueprint, steps in app.steps.items():
    for text in strings(steps):
        resolve(f"steps.{blueprint}", text)
for text in sys.argv[1:]:
    resolve("asked", text)

app.loader.import_default_modules()
registered = set(app.tasks)
for task in app.tasks.values():
    for attr, value in sorted(vars(type(task)).items()):
        for text in strings(value):
            resolve(f"task {task.name}.{attr}", text)
named = {
    "task_routes": list(conf.get("task_routes") or {}),
    "beat_schedule": [entry["task"] for entry in (conf.get("beat_schedule") or {}).values()],
    "topology": [v for k, v in vars(topology).items() if k.endswith("_TASK")],
    "contract": list(TYPES_BY_TASK),
}
unregistered = {where: sorted(set(names) - registered) for where, names in named.items()}
print(json.dumps({
    "found": found,
    "failed": failed,
    "named": named,
    "unregistered": {k: v for k, v in unregistered.items() if v},
}))
"""

BROKERS = {
    "redis": {},
    "rabbitmq": {"AFTERSALES_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"},
}


def resolve_in_worker(env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Import worker.celery in a fresh interpreter with `env` and resolve its strings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    done = subprocess.run(
        [sys.executable, "-c", RESOLVE, *extra],
        env={**clean, "AFTERSALES_REDIS_URL": "redis://127.0.0.1:1/0", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module", params=sorted(BROKERS))
def wiring(request: pytest.FixtureRequest) -> dict[str, Any]:
    # The consumer's batch path names what pool processes run (worker/shell/batch.py).
    return resolve_in_worker(BROKERS[request.param], RUNNER) | {"broker": request.param}


def test_every_dotted_string_of_the_app_resolves(wiring: dict[str, Any]) -> None:
    assert wiring["failed"] == {}
    found = {text for texts in wiring["found"].values() for text in texts}
    # The scan sees the strings it is here for (else it could pass by finding none).
    expected = {
        "worker.shell.hooks",
        "tasks",
        "worker.shell.consumer:DeadLetteringConsumer",
        "worker.shell.hooks:DeclareTopology",
        "worker.shell.hooks:Liveness",
        "worker.shell.redaction:RedactedRequest",
        RUNNER,
    }
    if wiring["broker"] == "redis":
        expected.add("worker.shell.transport:Transport")
    assert expected <= found, sorted(found)


def test_every_task_the_app_routes_schedules_or_the_contract_names_is_registered(
    wiring: dict[str, Any],
) -> None:
    assert wiring["unregistered"] == {}
    assert all(wiring["named"].values()), wiring["named"]


def test_a_string_naming_a_moved_module_fails_here() -> None:
    result = resolve_in_worker({}, "worker.shell.moved_away:Transport", "worker.shell.hooks:Gone")
    assert set(result["failed"]) == {
        "worker.shell.moved_away:Transport",
        "worker.shell.hooks:Gone",
    }


def test_the_console_scripts_resolve() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    assert scripts
    for name, target in scripts.items():
        assert callable(symbol_by_name(target)), name


@pytest.mark.parametrize("package", ["worker.adapters", "worker.shell"])
def test_every_lua_script_a_module_loads_sits_beside_it_and_ships(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    named = {
        script
        for module in folder.glob("*.py")
        for script in re.findall(r"[\"'](\w+\.lua)[\"']", module.read_text())
    }
    assert named, f"no module of {package} names a Lua script"
    missing = sorted(script for script in named if not (folder / script).is_file())
    assert missing == [], f"{package} loads {missing}, which are not in {folder}"
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = shipped["package-data"]["worker"]
    relative = folder.relative_to(ROOT / "worker")
    assert any(Path(glob).parent == relative and glob.endswith("*.lua") for glob in globs)


FREEZE = r"""
import gc, json
from celery.signals import worker_init, worker_process_init

from worker.shell import hooks

before = gc.get_freeze_count()
worker_process_init.send(sender=None)  # what a pool process runs once forked
print(json.dumps({
    "before": before,
    "after": gc.get_freeze_count(),
    "wired": sorted(
        signal.name for signal, receiver in hooks.RECEIVERS if receiver is hooks.freeze_heap
    ),
}))
"""


def test_the_worker_and_each_pool_process_freeze_their_start_up_heap() -> None:
    """What a worker holds once started is out of the garbage collector's sight
    (`gc.freeze`): in the main process before the pool forks, again in each pool process,
    so a burst's full collections walk only what the tasks made."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    done = subprocess.run(
        [sys.executable, "-c", FREEZE],
        env={**clean, "AFTERSALES_REDIS_URL": "redis://127.0.0.1:1/0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == 0
    assert result["after"] > 10_000  # the modules, the app, Celery: all of it frozen
    assert result["wired"] == ["worker_init", "worker_process_init"]
