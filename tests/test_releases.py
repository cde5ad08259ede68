"""The releases (RELEASES.toml): one version source, each release named by a commit of
this history, a changelog section for each, and the formats today's code writes."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas import formats

ROOT = Path(__file__).resolve().parents[1]
RELEASES = tomllib.loads((ROOT / "RELEASES.toml").read_text())["release"]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_releases_are_in_order_and_only_the_last_may_be_unshipped() -> None:
    versions = [release["version"] for release in RELEASES]
    assert versions == sorted(versions, key=_key) and len(set(versions)) == len(versions)
    assert all(release["commit"] for release in RELEASES[:-1])


def test_the_version_has_one_source() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert declared == RELEASES[-1]["version"]
    assert installed_version("aftersales") == declared  # dev.py reinstalls on a change

    from worker.cli.main import main

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and declared in result.output


def test_every_release_has_a_changelog_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    for release in RELEASES:
        assert f"## [{release['version']}]" in changelog, release["version"]


def test_the_release_shipping_now_writes_what_formats_py_writes() -> None:
    newest = {**formats.WRITTEN, formats.ORDER_STATE: max(formats.ORDER_STATE_FIELDS_SINCE)}
    assert RELEASES[-1]["formats"] == newest
    assert newest == dict(formats.KNOWN)  # and reads nothing newer than it writes
    for release in RELEASES:  # every format a release wrote, today's release reads
        for form, written in release["formats"].items():
            assert written <= formats.KNOWN[form], (release["version"], form)


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="no git history here"
)
def test_every_release_commit_is_in_this_history() -> None:
    for release in RELEASES:
        if not release["commit"]:
            continue
        found = subprocess.run(
            ["git", "merge-base", "--is-ancestor", release["commit"], "HEAD"],
            cwd=ROOT,
            capture_output=True,
        )
        assert found.returncode == 0, f"{release['version']}: {release['commit']} not in history"
