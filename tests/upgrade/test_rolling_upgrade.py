"""The CI-sized rolling upgrade (tests/upgrade/rolling.py): the previous release's two
workers and beat replaced one process at a time by today's code while the chaos workload
flows and deadlines fire. The bench size: `.venv/bin/python tests/upgrade/rolling.py`."""

from __future__ import annotations

import os
import sys

import pytest

from tests.upgrade import releases
from tests.upgrade.rolling import NOT_YET_ROLLING, rolling_config, run_rolling

pytestmark = pytest.mark.integration

ORDERS = 120
"""Enough that orders are in every state when each process is replaced, small enough for
CI (about 90 s, plus building the previous release's virtualenv once)."""


@pytest.mark.timeout(600)
def test_a_rolling_upgrade_under_load_loses_nothing(tmp_path):
    previous = releases.previous()
    try:
        old_python = str(releases.ensure_venv(previous["version"]))
    except Exception as exc:  # no git history (an sdist) or no package index: say so
        if os.environ.get("CI"):  # in CI a release that cannot be built is a failure
            raise
        pytest.skip(f"cannot install release {previous['version']}: {exc}")
    lines: list[str] = []
    config = rolling_config(
        ORDERS, 3, old_python, previous["version"], NOT_YET_ROLLING,
        log=lines.append, timeout=300.0, quiet=40.0,
    )  # fmt: skip
    run = run_rolling(config, tmp_path)
    report = "\n".join([*lines, *run.report()])
    print(report, file=sys.stderr)
    assert run.comparison is not None
    swaps = [line for line in lines if "SIGTERM old" in line or "started new" in line]
    assert len(swaps) == 6, report  # two workers (start new, stop old), then beat
    # Each process ran the release it was meant to: the command line heads its log.
    ran = {"old": [], "new": []}
    for log in sorted([*tmp_path.glob("*/worker.log"), *tmp_path.glob("*/beat.log")]):
        first = log.read_text(errors="replace").splitlines()[0]
        ran["old" if old_python in first else "new"].append(log.parent.name)
    assert len(ran["old"]) == 3 and len(ran["new"]) == 3, ran  # 2 workers and beat each
    assert not run.comparison.failed, report
    assert run.dead_letters == 0, report
    assert not run.crashes, report
