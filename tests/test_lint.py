"""Conventions checked by tools, not prose: ruff's lint rules and formatting, and mypy
--strict on schemas/, worker/ and tasks/ (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECKS = {
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    # No cache: a stale one can report errors the code no longer has.
    "mypy-strict": ["mypy", "--cache-dir", "/dev/null"],
}


@pytest.mark.cpu_heavy
@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", CHECKS.values(), ids=CHECKS.keys())
def test_the_tree_passes(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
