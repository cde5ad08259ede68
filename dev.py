#!/usr/bin/env python3
"""The README's two commands, on a machine that has only Python 3.11+:

    python3 dev.py run  [aftersales run options]   # worker + beat (+ embedded Redis)
    python3 dev.py demo                            # a scripted story against it
    python3 dev.py test [pytest options]           # the whole test suite, in parallel
                                                   # (+ the other deployments, see MODES)

Both create .venv when it is missing and (re)install the project with its test extras
when pyproject.toml is newer than the last install. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"  # touched after a successful install
PYTEST = [str(BIN / "python"), "-m", "pytest"]
PYTEST_NO_TESTS = 5  # pytest's exit code when it collected nothing: a broken selection
PROCESSES_ENV = "AFTERSALES_TEST_PROCESSES"
SLOWEST = ["--durations=15"]  # CI must stay under 15 minutes: show where the time goes

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
    return whole_suite()


def processes() -> int:
    """pytest-xdist processes for the whole suite: `AFTERSALES_TEST_PROCESSES`, else twice
    the cores (most of an integration test's time is spent waiting on a worker)."""
    given = os.environ.get(PROCESSES_ENV, "")
    return int(given) if given.isdigit() and int(given) > 0 else 2 * (os.cpu_count() or 1)


def whole_suite() -> int:
    """The suite on `processes()` processes (each with its own Redis, tests/support/), and
    at the same time each of MODES in one process of its own (each starts its own cluster
    or RabbitMQ node once), their output shown when they end. Exit: the first failure's."""
    logs = Path(tempfile.mkdtemp(prefix="aftersales-test-"))
    started = time.monotonic()
    phases = []
    for number, (title, mode_args) in enumerate(MODES, 1):
        log = logs / f"mode-{number}.log"
        with open(log, "wb") as out:
            child = subprocess.Popen(
                [
                    *PYTEST,
                    *shlex.split(mode_args),
                    *SLOWEST,
                    "--junitxml",
                    str(log.with_suffix(".xml")),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        phases.append(Phase(f"the same tests against {title}: pytest {mode_args}", child, log))
    # Tests are handed out one or two at a time, slow ones first (tests/support/fixtures.py):
    # no process sits on a queue of long tests while the others are idle.
    whole = ["-n", str(processes()), "--dist", "load", "--maxschedchunk", "1", *SLOWEST]
    print(f"dev.py: the whole suite: pytest {' '.join(whole)}", flush=True)
    print(f"dev.py: meanwhile {len(MODES)} other deployments, output in {logs}", flush=True)
    report = ["--junitxml", str(logs / "mode-0.xml")]
    main = Phase("the whole suite", subprocess.Popen([*PYTEST, *whole, *report], cwd=ROOT), None)
    try:
        statuses = [main.wait()]
        for phase in phases:
            statuses.append(phase.wait())
            print(f"\ndev.py: {phase.title}", flush=True)
            sys.stdout.write(phase.log.read_text(errors="replace") if phase.log else "")
    except KeyboardInterrupt:  # every pytest got the Ctrl-C too
        return 130
    print(flush=True)
    for phase, status in zip([main, *phases], statuses, strict=True):
        title = phase.title.split(": pytest")[0]
        print(f"dev.py: {title}: exit {status} in {phase.seconds:.0f}s", flush=True)
    print(f"dev.py: all in {time.monotonic() - started:.0f}s", flush=True)
    counts = [counted(logs / f"mode-{number}.xml") for number in range(len(MODES) + 1)]
    if all(counts):  # every run wrote its report: the totals of all of them
        passed, failed, skipped = (sum(each[i] for each in counts if each) for i in range(3))
        print(f"dev.py: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    shutil.rmtree(logs, ignore_errors=True)
    failures = [status for status in statuses if status]
    return failures[0] if failures else 0


def counted(report: Path) -> tuple[int, int, int] | None:
    """(passed, failed, skipped) from a pytest --junitxml report; None if there is none."""
    try:
        root = ElementTree.parse(report).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return total - failed - skipped, failed, skipped


class Phase:
    def __init__(self, title: str, child: subprocess.Popen[bytes], log: Path | None) -> None:
        self.title, self.child, self.log = title, child, log
        self.started, self.seconds = time.monotonic(), 0.0
        self._waiter = threading.Thread(target=self._time, daemon=True)
        self._waiter.start()

    def _time(self) -> None:
        self.child.wait()
        self.seconds = time.monotonic() - self.started

    def wait(self) -> int:
        self._waiter.join()
        return checked(self.child.returncode)


def pytest(args: list[str]) -> int:
    try:
        status = subprocess.run([*PYTEST, *args], cwd=ROOT).returncode
    except KeyboardInterrupt:  # pytest got the Ctrl-C too and has reported it
        return 130
    return checked(status)


def checked(status: int) -> int:
    if status == PYTEST_NO_TESTS:
        print("dev.py: pytest collected no tests; counting that as a failure", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
