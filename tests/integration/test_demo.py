"""`aftersales demo` finishes within a minute and shows every promised outcome."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_readable_views import AFTERSALES, cli_env

pytestmark = pytest.mark.integration

FAST_TICK = {"AFTERSALES_SWEEP_INTERVAL": "PT0.2S"}
PROMISES = (
    "✓ order.cancelled",
    "✓ instant buyer cancel: order.cancelled by buyer",
    "✓ cancellation.auto_accepted",
    "✓ ignored cancel request auto-accepted",
    "✓ return.requested",
    "✓ return.auto_approved",
    "✓ UK respond_by counts business hours past the day off",
    "✓ return.label_generated",
    "✓ refund with breakdown: items + shipping fee - return postage",
    "✓ offer.made",
    "✓ offer.lapsed",
    "✓ the seller's answer window restarted in full when the offer lapsed",
    "Every promised outcome came",
)
DEMO_LIMIT = 60.0  # the promise: from start to the last outcome within a minute


def _demo(
    env: dict[str, str], cwd: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [AFTERSALES, "demo", *args],
        env={**env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEMO_LIMIT + 60,
    )
    return result, time.monotonic() - started


def _label_files(output: str) -> list[Path]:
    return [Path(found) for found in re.findall(r"(?:QR code PNG|label PDF):\s+(\S+)", output)]


def test_the_demo_against_a_running_worker(redis_url, start_worker, start_beat, tmp_path):
    start_worker(env=FAST_TICK)
    start_beat(env=FAST_TICK)

    result, elapsed = _demo(cli_env(redis_url), tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Using 1 running worker(s)" in result.stdout
    for promise in PROMISES:
        assert promise in result.stdout, f"{promise!r} missing from:\n{result.stdout}"
    assert elapsed < DEMO_LIMIT
    png, pdf = _label_files(result.stdout)
    assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")
    assert "█" in result.stdout  # the QR code drawn in the terminal


def test_the_demo_starts_its_own_worker_when_none_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}

    result, elapsed = _demo(env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Starting a Redis, worker and beat of its own" in result.stdout
    for promise in PROMISES:
        assert promise in result.stdout, f"{promise!r} missing from:\n{result.stdout}"
    assert elapsed < DEMO_LIMIT
    assert all(
        path.is_relative_to(tmp_path / "var" / "demo")
        for path in (p.resolve() for p in _label_files(result.stdout))
    )
    run_log = (tmp_path / "var" / "demo" / "run.log").read_text()
    assert "embedded Redis stopped" in run_log  # everything it started was stopped
    assert not (tmp_path / "var" / "demo" / "redis.url").exists()


def test_the_demo_fails_when_a_promised_outcome_does_not_come(redis_url, start_worker, tmp_path):
    start_worker()  # no beat: no timer fires

    result, _ = _demo(cli_env(redis_url), tmp_path, "--timeout", "15")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ cancellation.auto_accepted did not come" in result.stdout
    assert "Demo incomplete" in result.stdout
