"""The alert rules: valid, unit-tested with `promtool test rules` (each alert firing and
not firing), each with a runbook section that exists, on metrics the worker exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability.exported import exported_names, names_in

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "aftersales.rules.yml"
TESTS = RULES_DIR / "aftersales.rules.test.yml"
DOC = ROOT / "docs" / "observability.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: Debian's `prometheus` package (.ci/run installs it)"
)


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs_promtool
def test_the_example_scrape_configuration_is_valid():
    checked = promtool("check", "config", "prometheus.example.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_unit_tests_fail_when_a_rule_is_wrong(tmp_path):
    """The harness can fail: with the overdue alert's threshold moved, its test fails."""
    rule = "max(aftersales_deadlines_overdue) > "
    broken = RULES.read_text().replace(rule + "0", rule + "5")
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(TESTS, tmp_path / TESTS.name)

    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)

    assert tested.returncode != 0
    assert "AftersalesDeadlineOverdue" in tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    cases = [
        case
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for alert in alerts():
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in mine), f"{name} never tested firing"
        assert any(not case.get("exp_alerts") for case in mine), f"{name} never tested quiet"


def test_every_alert_links_to_a_runbook_section_that_exists():
    headings = re.findall(r"^#+ (.+)$", DOC.read_text(), flags=re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    for alert in alerts():
        path, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert path == "docs/observability.md" and anchor in anchors, alert["alert"]
        assert f"`{alert['alert']}`" in DOC.read_text(), f"{alert['alert']} not in the docs"


@pytest.mark.integration
def test_every_metric_a_rule_reads_is_exported(redis_client):
    exported = exported_names(redis_client)
    for alert in alerts():
        used = names_in(alert["expr"])
        assert used, alert["alert"]
        assert used <= exported, f"{alert['alert']}: {sorted(used - exported)}"
