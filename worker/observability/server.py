"""The /metrics endpoint of a worker or of beat, and the prefork-safe way values are kept.

Choice: prometheus_client's multiprocess mode, with a directory of this run's own. Tasks
run in prefork children, which the pool replaces (a crash, `--max-tasks-per-child`); each
child writes its counters to memory-mapped files in the directory and the main process
sums them when scraped. A recording is a write to shared memory: no pipe, no round trip,
and a child that dies keeps its counts (its file stays). Aggregating in the main process
instead would need a message per fact over the pool's pipes and lose what a killed child
had not sent yet.

The directory is made under PROMETHEUS_MULTIPROC_DIR (or the system's temporary
directory) when the worker or beat starts, before the pool forks, and removed when that
process exits: a restart begins at zero (Prometheus's rate() expects counter resets), and
a worker and beat, or two workers, never read each other's files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from worker.logging import get_logger
from worker.observability import record

log = get_logger("aftersales.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """Make this run's directory and point prometheus_client at it; then create the
    metric families. Called once, in the main process, before any child is forked."""
    path = tempfile.mkdtemp(prefix="aftersales-metrics-", dir=os.environ.get(MULTIPROC_ENV))
    os.environ[MULTIPROC_ENV] = path
    from prometheus_client import values

    # In case prometheus_client was imported before the directory was set:
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    owner = os.getpid()
    atexit.register(_remove, path, owner)
    record.enable()
    return path


def _remove(path: str, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child that happens to run atexit
        shutil.rmtree(path, ignore_errors=True)


def serve(port: int, address: str, path: str, collectors: list[Any]) -> Any | None:
    """Serve /metrics on `address:port` from a thread of this process: the sum of every
    process's files in `path`, and `collectors` (figures read at scrape time). A port in
    use is logged, not fatal: the worker still does its work."""
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    registry.register(files_collector(path))
    ProcessCollector(registry=registry)  # this (main) process: process_start_time_seconds …
    PlatformCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    try:
        server = _http_server(port, address, registry)
    except OSError as exc:
        log.error("metrics endpoint not started", port=port, error=str(exc))
        return None
    log.info("metrics endpoint started", address=address, port=port)
    return server


HEADER_BYTES = 4
"""A metrics file's first field: how much of it is used. A file shorter has nothing in it."""


def files_collector(path: str) -> Any:
    """prometheus_client's MultiProcessCollector over `path`, without its empty-file
    failure (prometheus/client_python#1199, open in 0.26): a process makes its file at 0
    bytes and sizes it a moment later, so a scrape in between raised `struct.error` and
    answered 500 with no metric at all; and a pool process killed in between (kill -9,
    `--max-tasks-per-child`) left the empty file behind, failing every scrape after. A
    file shorter than its header holds nothing yet: it is left out of the sum."""
    import glob

    from prometheus_client.multiprocess import MultiProcessCollector

    class Collector(MultiProcessCollector):
        def collect(self) -> Any:
            files = [f for f in glob.glob(os.path.join(path, "*.db")) if _has_header(f)]
            return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]

    return Collector(None, path=path)  # type: ignore[no-untyped-call]


def _has_header(filename: str) -> bool:
    try:
        return os.path.getsize(filename) >= HEADER_BYTES
    except OSError:  # gone meanwhile: nothing to read
        return False


POLL_INTERVAL = 60.0
"""Seconds between the server thread's wake-ups while nobody scrapes. A scrape wakes it at
once; the interval only bounds how long `shutdown()` waits, which nothing calls (the thread
is a daemon). prometheus_client's `start_http_server` wakes every 0.5 s: four wake-ups a
second in an idle worker and beat together, for nothing."""


def _http_server(port: int, address: str, registry: Any) -> Any:
    """prometheus_client's `start_http_server` (its WSGI app, a thread per request, the
    address family of `address`, no request log), serving from a daemon thread that waits
    in `select` for POLL_INTERVAL instead of 0.5 s."""
    import socket
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    family, _, _, _, sockaddr = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Log nothing: a scrape every 15 s is not news."""

    server = make_server(str(sockaddr[0]), port, make_wsgi_app(registry), Server, Quiet)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL},
        name="aftersales-metrics",
        daemon=True,
    )
    thread.start()
    return server
