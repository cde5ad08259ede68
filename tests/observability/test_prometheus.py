"""A real Prometheus scrapes a real worker and beat: with beat stopped, deadlines go
overdue, the workers' endpoints show it, the overdue alert goes pending; with beat back,
they fire and it clears."""

from __future__ import annotations

import json

import pytest

from tests.observability.prometheus_server import BINARY, prometheus
from tests.observability.scraping import free_port_pair, reachable
from tests.support.messages import ORDER_EVENT, ago, new_id, placed
from tests.support.processes import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        BINARY is None,
        reason="prometheus missing: Debian's `prometheus` package (.ci/run installs it)",
    ),
    pytest.mark.timeout(240),
]

OVERDUE_NOW = "max(aftersales_deadlines_overdue)"
"""The question "how many deadlines are overdue now?" as the alert asks it."""

ORDERS = 3


def _value(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def test_beat_stopped_deadlines_go_overdue_alert_pending_then_clear(
    start_worker, start_beat, wire_client, tmp_path
):
    port = free_port_pair()
    env = {
        "AFTERSALES_METRICS_PORT": str(port),
        "AFTERSALES_METRICS_ADDRESS": "127.0.0.1",
        "AFTERSALES_SWEEP_INTERVAL": "PT0.5S",
    }
    start_worker(concurrency=1, env=env)
    beat = start_beat(env=env)
    wait_until(lambda: reachable(port) and reachable(port + 1), 30, "no /metrics endpoints")
    targets = [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]

    with prometheus(tmp_path / "prometheus", targets) as prom:
        wait_until(
            lambda: len([r for r in prom.query("up == 1")]) == 2,
            60,
            lambda: f"targets never up: {prom.api('targets')}\n{prom.log_text()}",
        )
        wait_until(lambda: _value(prom.query(OVERDUE_NOW)) == 0, 30, "no overdue figure")

        # Given beat stopped, and orders whose unpaid expiry falls due 3 s from now
        beat.stop()
        for _ in range(ORDERS):
            wire_client.send(ORDER_EVENT, placed(new_id("o"), ago(hours=48, seconds=-3)))

        # Then the workers' endpoint shows them overdue and the alert goes pending
        wait_until(
            lambda: _value(prom.query(OVERDUE_NOW)) == ORDERS,
            60,
            lambda: f"overdue never rose: {prom.query(OVERDUE_NOW)}",
        )
        overdue_now = prom.query(OVERDUE_NOW)
        print(f"\nquery {OVERDUE_NOW!r} with beat stopped: {json.dumps(overdue_now)}")
        by_instance = prom.query("aftersales_deadlines_overdue")
        print(f"query 'aftersales_deadlines_overdue': {json.dumps(by_instance)}")
        assert [r["metric"]["instance"] for r in by_instance] == [targets[0]]  # beat is gone
        pending = 'ALERTS{alertname="AftersalesDeadlineOverdue", alertstate="pending"}'
        wait_until(
            lambda: prom.query(pending), 30, lambda: f"no pending alert: {prom.api('alerts')}"
        )
        oldest = _value(prom.query("max(aftersales_deadline_oldest_overdue_seconds)"))
        assert oldest is not None and oldest >= 5

        # When beat starts again, they fire: overdue back to 0, the alert gone
        start_beat(env=env)
        wait_until(
            lambda: _value(prom.query(OVERDUE_NOW)) == 0,
            60,
            lambda: f"overdue never cleared: {prom.query(OVERDUE_NOW)}",
        )
        wait_until(
            lambda: not prom.query('ALERTS{alertname="AftersalesDeadlineOverdue"}'),
            30,
            lambda: f"alert never cleared: {prom.api('alerts')}",
        )
        fired = 'sum(aftersales_deadlines_fired_total{kind="unpaid_expiry",result="applied"})'
        wait_until(lambda: _value(prom.query(fired)) == ORDERS, 30, "not all fired once")
