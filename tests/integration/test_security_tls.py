"""`rediss://` end to end: a TLS-only redis-server on loopback with a CA and certificate
made for the test; worker, beat, a producer, a downstream consumer and the `aftersales`
CLI all connect with the CA given in the URL query, and certificates are checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from kombu import Connection

from tests.support.fixtures import _base_env
from tests.support.messages import ORDER_EVENT, ago, new_id, placed
from tests.support.secure_redis import SecureRedis, make_tls_files, start_secure_redis
from tests.support.wire import EventListener, WireClient

pytestmark = pytest.mark.integration

SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
# Seconds from now at which the test order's unpaid expiry falls due.
DUE_IN = 3
CLI = str(Path(sys.executable).with_name("aftersales"))


@pytest.fixture
def tls_redis(tmp_path: Path):
    server = start_secure_redis(tmp_path / "redis", tls=make_tls_files(tmp_path / "tls"))
    yield server
    server.stop()


def test_worker_beat_producer_and_cli_work_over_tls(start_worker, start_beat, tls_redis):
    url = tls_redis.url()
    assert url.startswith("rediss://") and "ssl_ca_certs=" in url
    env = {"AFTERSALES_REDIS_URL": url, "AFTERSALES_BROKER_URL": url, **SWEEP}
    listener = EventListener(url, queue_prefix="aftersales.test-events")
    producer = WireClient(url)
    try:
        worker = start_worker(env=env)
        start_beat(env=env)
        order = new_id("o")
        producer.send(ORDER_EVENT, placed(order, ago(hours=48, seconds=-DUE_IN)))

        (cancelled,) = listener.wait_for("order.cancelled", timeout=30)
        shown = subprocess.run(
            [CLI, "order", order, "--json"], env=_base_env(url, url, None), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        listener.close()
        producer.close()
    assert cancelled["subject"] == order
    assert shown.returncode == 0 and '"order.placed"' in shown.stdout, shown.stdout + shown.stderr
    assert "transport:   rediss://aftersales:**@127.0.0.1" in worker.log_text()
    assert "insecure SSL" not in worker.log_text()
    assert tls_redis.denials() == []


def test_the_server_certificate_is_checked_even_when_the_url_does_not_ask(
    tls_redis: SecureRedis, monkeypatch
):
    from worker.settings import Settings

    bare = tls_redis.url().split("?")[0]  # no CA, no ssl_cert_reqs
    # kombu alone would connect without checking the certificate (CERT_NONE)...
    with Connection(bare) as unchecked:
        unchecked.ensure_connection(max_retries=1)
    # ...so the settings ask for a check, which this unknown CA fails, in both clients.
    monkeypatch.setenv("AFTERSALES_REDIS_URL", bare)
    settings = Settings.from_env()
    assert "ssl_cert_reqs=required" in settings.broker_url
    with redis.Redis.from_url(settings.redis_url) as client, pytest.raises(redis.ConnectionError):
        client.ping()
    with Connection(settings.broker_url) as checked, pytest.raises(Exception, match="certificate"):
        checked.ensure_connection(max_retries=1)


def test_the_tls_port_refuses_plain_connections(tls_redis: SecureRedis):
    plain = f"redis://aftersales:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0"
    with redis.Redis.from_url(plain, socket_timeout=5) as client, pytest.raises(redis.RedisError):
        client.ping()
