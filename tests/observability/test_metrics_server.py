"""The /metrics HTTP server itself (worker/observability/server.py): what a scrape reads,
from a daemon thread that does not wake twice a second while nobody scrapes."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter

from tests.observability.scraping import text
from tests.support.processes import wait_until
from worker.cli.embedded_redis import free_port
from worker.observability import server


def test_the_endpoint_serves_its_registry_from_a_daemon_thread_a_scrape_wakes():
    registry = CollectorRegistry()
    Counter("aftersales_probe", "A probe.", registry=registry).inc(3)
    port = free_port()
    httpd = server._http_server(port, "127.0.0.1", registry)
    thread = next(t for t in threading.enumerate() if t.name == "aftersales-metrics")
    assert thread.daemon
    assert server.POLL_INTERVAL >= 30  # idle, it waits in select, not a 0.5 s poll
    for _ in range(2):  # a thread per request; the server goes on
        assert "aftersales_probe_total 3.0" in text(port)
    # shutdown() waits for the serving loop to look at its flag: a connection wakes it
    stopping = threading.Thread(target=httpd.shutdown, daemon=True)
    stopping.start()
    wait_until(lambda: not stopping.is_alive() or _knock(port), 10, "the loop never woke")
    stopping.join(10)
    assert not stopping.is_alive() and not thread.is_alive()
    httpd.server_close()


def _knock(port: int) -> bool:
    """Connect and leave: the serving loop's select returns (what a scrape does first)."""
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    return False


def test_an_empty_metrics_file_is_left_out_not_a_failed_scrape(tmp_path):
    """A process makes its metrics file at 0 bytes and sizes it a moment later; one killed
    in between leaves it so (prometheus/client_python#1199). prometheus_client's own
    collector then fails every scrape; the endpoint's sums the other files."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector

    counted = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key("aftersales_probe", "aftersales_probe_total", [], [], "A probe.")
    counted.write_value(key, 3.0, 0.0)
    counted.close()
    (tmp_path / "counter_102.db").write_bytes(b"")  # made, never sized: its process died

    with pytest.raises(struct.error):  # the upstream collector, on the same directory
        list(MultiProcessCollector(None, path=str(tmp_path)).collect())

    registry = CollectorRegistry()
    registry.register(server.files_collector(str(tmp_path)))
    port = free_port()
    httpd = server._http_server(port, "127.0.0.1", registry)
    try:
        assert "aftersales_probe_total 3.0" in text(port)
        (tmp_path / "counter_102.db").write_bytes(b"\0" * 8)  # sized since: nothing in it
        assert "aftersales_probe_total 3.0" in text(port)
    finally:
        stopping = threading.Thread(target=httpd.shutdown, daemon=True)
        stopping.start()
        wait_until(lambda: not stopping.is_alive() or _knock(port), 10, "the loop never woke")
        httpd.server_close()
