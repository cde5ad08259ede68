"""The Grafana dashboard: the panels the issue asks for, every query valid PromQL (checked
by promtool as a recording rule) and naming only metrics the worker really exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability.exported import exported_names, names_in

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "aftersales.json"
PANELS = json.loads(DASHBOARD.read_text())["panels"]
QUERIES = [target["expr"] for panel in PANELS for target in panel["targets"]]
WANTED = ("lateness", "overdue", "throughput by result", "dead letters by reason",
          "queue depths", "per-worker liveness")  # fmt: skip


def test_the_dashboard_has_the_panels_an_operator_needs():
    titles = " | ".join(panel["title"].lower() for panel in PANELS)
    for wanted in WANTED:
        assert wanted in titles, wanted
    assert any(
        panel["type"] == "heatmap" and "lateness" in panel["title"].lower() for panel in PANELS
    )


@pytest.mark.integration
def test_every_query_names_only_metrics_the_worker_exports(redis_client):
    exported = exported_names(redis_client)
    for query in QUERIES:
        used = names_in(query)
        assert used, f"no aftersales metric in {query!r}"
        assert used <= exported, f"{query!r}: {sorted(used - exported)} not exported"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing (Debian's prometheus)"
)
def test_every_query_is_valid_promql(tmp_path):
    rules = [
        {
            "record": f"aftersales:dashboard_query_{index}",
            "expr": query.replace("$__rate_interval", "5m"),
        }
        for index, query in enumerate(QUERIES)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
