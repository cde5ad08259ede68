"""A bad policy file or setting stops start-up with a message naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('[marketplaces.UK]\nretrun_window = "P3D"\n', "marketplaces.UK.retrun_window"),
        ('[marketplaces.UK]\nreturn_window = "3 days"\n', "marketplaces.UK.return_window"),
        ("[marketplaces.UK.drop_off]\nmax_weight_kg = -1\n", "max_weight_kg"),
        ("[marketplaces.UK\n", "not valid TOML"),
    ],
    ids=["unknown-key", "bad-duration", "negative-limit", "bad-toml"],
)
def test_the_worker_refuses_to_start_with_a_bad_policy_file(tmp_path, policy, expected):
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    env = {
        **os.environ,
        "AFTERSALES_POLICY_FILE": str(path),
        "AFTERSALES_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_policy_file_is_named(tmp_path):
    env = {**os.environ, "AFTERSALES_POLICY_FILE": str(tmp_path / "nope.toml")}
    result = subprocess.run(
        [sys.executable, "-c", "import worker.celery"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "nope.toml" in result.stderr
