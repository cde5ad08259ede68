#!/usr/bin/env python3
"""The README's two commands, on a machine that has only Python 3.11+:

    python3 dev.py run  [aftersales run options]   # worker + beat (+ embedded Redis)
    python3 dev.py demo                            # a scripted story against it
    python3 dev.py test [pytest options]           # the whole test suite
                                                   # (+ the other deployments, see MODES)

Both create .venv when it is missing and (re)install the project with its test extras
when pyproject.toml is newer than the last install. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"  # touched after a successful install
PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing: a broken selection

MODES: tuple[tuple[str, str], ...] = (
    # `python3 dev.py test` runs the whole suite against one Redis, and these: the tests
    # that exercise state, deadlines and the broker, against the other deployments
    # (docs/cluster.md, docs/operations.md#rabbitmq), picked by their markers (pyproject.toml).
    # Each skips, saying why, where its servers cannot be started.
    ("a Redis Cluster for state (3 primaries + 3 replicas)", "-m cluster --redis-cluster"),
    ("RabbitMQ as the broker (a private node; state in Redis)", "-m rabbitmq --broker=rabbitmq"),
)


def ensure_installed() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 is on PATH
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    print("dev.py: installing the project and its test dependencies", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    if os.environ.get("CI"):
        pip.append("--quiet")
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
    STAMP.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "demo", "test", "install"):
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        ensure_installed()
    except subprocess.CalledProcessError as exc:
        print(f"dev.py: install failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    if command == "install":  # for the Makefile; the README needs only run and test
        return 0
    if command in ("run", "demo"):
        aftersales = str(BIN / "aftersales")
        os.execv(aftersales, [aftersales, command, *args])
    if args:  # a selection of one's own: one pytest run, as asked
        return pytest(args)
    status = pytest([])
    for title, mode_args in MODES:
        print(f"dev.py: the same tests against {title}: pytest {mode_args}", flush=True)
        status = pytest(shlex.split(mode_args)) or status
    return status


def pytest(args: list[str]) -> int:
    try:
        status = subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT).returncode
    except KeyboardInterrupt:  # pytest got the Ctrl-C too and has reported it
        return 130
    if status == PYTEST_NO_TESTS:
        print("dev.py: pytest collected no tests; counting that as a failure", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
