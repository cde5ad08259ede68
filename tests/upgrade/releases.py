"""Past releases, installed from this clone's history into virtualenvs of their own.

    python3 tests/upgrade/releases.py 1.1.0      # prints the venv's python

A release named in RELEASES.toml is exported with `git archive <commit>` (no network, no
tags needed: the commit is on main) and `pip install`ed, not editable, into
`.venv-release-<version>` under the checkout. A venv that is already there (its stamp
names the commit) is reused, so CI builds it once per cache. Standard library only: the
fixture generator and the rolling-upgrade test call it from any interpreter.
"""

from __future__ import annotations

import fcntl
import io
import os
import subprocess
import sys
import tarfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def releases() -> list[dict[str, str]]:
    return list(tomllib.loads((ROOT / "RELEASES.toml").read_text())["release"])


def release(version: str) -> dict[str, str]:
    for entry in releases():
        if entry["version"] == version:
            return entry
    raise KeyError(f"no release {version} in RELEASES.toml")


def previous() -> dict[str, str]:
    """The last shipped release before the one in the working tree."""
    return [entry for entry in releases() if entry["commit"]][-1]


def venv_dir(version: str) -> Path:
    return ROOT / f".venv-release-{version}"


def python_of(version: str) -> Path:
    return venv_dir(version) / "bin" / "python"


def ensure_venv(version: str) -> Path:
    """The python of a virtualenv with release `version` installed; built if missing, by
    one process at a time (the test processes of one run may ask together: the others
    wait for it, then reuse it)."""
    commit = release(version)["commit"]
    if not commit:
        raise ValueError(f"release {version} has no commit yet: it is the working tree")
    lock = ROOT / f".venv-release-{version}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return _ensure_venv(version, commit)


def _ensure_venv(version: str, commit: str) -> Path:
    target = venv_dir(version)
    stamp = target / ".release-commit"
    if stamp.exists() and stamp.read_text().strip() == commit:
        return python_of(version)
    print(f"releases: building {target} from {commit[:12]}", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    source = target / "src"
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    pip = [str(python_of(version)), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [*pip, "install", str(source)], env=env, cwd=target, capture_output=True, text=True
    )
    if done.returncode != 0:  # say why, once: pip's output is noise otherwise
        raise RuntimeError(f"pip install of {version} failed:\n{done.stdout}{done.stderr}")
    stamp.write_text(commit + "\n")
    return python_of(version)


if __name__ == "__main__":
    print(ensure_venv(sys.argv[1] if len(sys.argv) > 1 else previous()["version"]))
