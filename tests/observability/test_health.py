"""`aftersales health` against a real worker, beat and Redis: its exit status for each
probe as each part goes away."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.observability.scraping import free_port_pair, reachable
from tests.support.processes import wait_until
from worker.cli.main import main

pytestmark = pytest.mark.integration


@pytest.fixture
def health(redis_url, broker_url, monkeypatch):
    from worker.settings import get_settings

    def run(
        *args: str, port: int, redis: str = redis_url, metrics: str | None = None
    ) -> tuple[int, str]:
        monkeypatch.setenv("AFTERSALES_REDIS_URL", redis)
        monkeypatch.setenv("AFTERSALES_METRICS_PORT", metrics or str(port))
        if broker_url != redis_url:
            monkeypatch.setenv("AFTERSALES_BROKER_URL", broker_url)
        get_settings.cache_clear()
        result = CliRunner().invoke(main, ["health", *args])
        get_settings.cache_clear()
        return result.exit_code, result.output

    return run


def test_health_passes_then_fails_as_beat_the_worker_and_redis_go(start_worker, start_beat, health):
    port = free_port_pair()
    env = {"AFTERSALES_METRICS_PORT": str(port), "AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
    worker = start_worker(concurrency=1, env=env)
    beat = start_beat(env=env)
    wait_until(lambda: reachable(port), 30, "no worker /metrics")
    wait_until(lambda: health(port=port)[0] == 0, 30, lambda: health(port=port)[1])

    status, output = health(port=port)
    assert [line.split()[:2] for line in output.splitlines()] == [
        ["ok", "worker:"],
        ["ok", "redis:"],
        ["ok", "broker:"],
        ["ok", "beat:"],
    ]

    # Beat stops: the full check fails on beat alone; the worker's probes still pass
    beat.stop()
    wait_until(lambda: health("--beat-within", "2", port=port)[0] == 1, 30, "beat never stale")
    assert "FAIL beat:" in health("--beat-within", "2", port=port)[1]
    assert health("--probe", "readiness", port=port)[0] == 0
    assert health("--probe", "liveness", port=port)[0] == 0

    # Redis unreachable (a closed port): readiness fails, naming it
    from worker.cli.embedded_redis import free_port

    status, output = health(
        "--probe", "readiness", port=port, redis=f"redis://127.0.0.1:{free_port()}/0"
    )
    assert status == 1 and "FAIL redis:" in output

    # The worker gone: liveness fails
    worker.stop()
    status, output = health("--probe", "liveness", port=port)
    assert status == 1 and "FAIL worker:" in output


def test_liveness_fails_for_a_worker_that_stopped_fetching_while_messages_wait(
    start_worker, wire_client, broker_url, health, monkeypatch
):
    from celery import Celery

    from tests.support.messages import ORDER_EVENT, ago, new_id, placed

    port = free_port_pair()
    # the watchdog off, so the stall stays for the probe to see
    env = {"AFTERSALES_METRICS_PORT": str(port), "AFTERSALES_STALL_AFTER": "off"}
    worker = start_worker(concurrency=1, env=env)
    wait_until(lambda: reachable(port), 30, "no worker /metrics")
    control = Celery(broker=broker_url)
    control.control.cancel_consumer(
        "aftersales.inbound", destination=[worker.name], reply=True, timeout=5
    )
    control.close()
    wire_client.send(ORDER_EVENT, placed(new_id("o"), ago(minutes=1)))
    monkeypatch.setenv("AFTERSALES_STALL_AFTER", "PT2S")

    wait_until(lambda: health("--probe", "liveness", port=port)[0] == 1, 30, "never stalled")
    assert "FAIL worker: stalled: 1 waiting" in health("--probe", "liveness", port=port)[1]


def test_with_metrics_off_the_probe_still_sees_redis_the_broker_and_beat(
    start_worker, start_beat, health
):
    env = {"AFTERSALES_METRICS_PORT": "off", "AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
    start_worker(concurrency=1, env=env)
    start_beat(env=env)
    off = free_port_pair()  # nothing listens there: the probe is told metrics are off

    def passes() -> bool:
        return health(port=off, metrics="off")[0] == 0

    wait_until(passes, 30, lambda: health(port=off, metrics="off")[1])
    output = health(port=off, metrics="off")[1]
    assert "ok   worker: AFTERSALES_METRICS_PORT is off: not checked" in output
    assert "ok   beat: last tick" in output
