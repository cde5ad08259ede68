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
    # `python3 dev.py test` runs the whole suite against one Redis, then these: the tests
    # that exercise state, deadlines and the broker, against the other deployments
    # (docs/cluster.md, docs/operations.md#rabbitmq). Each skips, saying why, where its
    # servers cannot be started.
    (
        "a Redis Cluster for state (3 primaries + 3 replicas)",
        "--redis-cluster tests/integration/test_store_shards.py tests/integration/test_sweep.py"
        " tests/integration/test_cluster_failover.py tests/integration/test_batch_firing.py"
        " tests/integration/test_retention.py tests/integration/test_deadlines.py"
        " tests/integration/test_event_time.py tests/integration/test_outcomes.py"
        " tests/integration/test_pipeline.py -k 'test_store_shards or test_sweep"
        " or test_cluster_failover or test_batch_firing or test_retention"
        " or fires_once_at_its_time or holding_the_eta_task or earlier_answer_still_in_the_inbound"
        " or happened_before_a_fired_deadline or (held_back_for_another_request and nothing)"
        " or late_cancellation_goes_to_the_seller or appealed_and_arbitration"
        " or racing_through_two_workers or sent_three_times or after_payment_in_free_window'",
    ),
    (
        "RabbitMQ as the broker (a private node; state in Redis)",
        "--broker=rabbitmq tests/integration/test_rabbitmq.py tests/integration/test_deadlines.py"
        " tests/integration/test_pipeline.py tests/integration/test_poison.py -k"
        " 'test_rabbitmq or test_deadlines or after_payment or three_times or invalid_message"
        " or bad_json or pickle or unknown_task or racing or empty or nested or compressed"
        " or expires'",
    ),
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
