"""Reading a /metrics endpoint in tests: samples by name and labels."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from worker.cli.embedded_redis import free_port


def free_port_pair() -> int:
    """A port P with P + 1 free too (a worker serves on P, beat on P + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def text(port: int) -> str:
    """The endpoint's page, as Prometheus reads it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def scrape(port: int) -> Samples:
    """Every sample of the endpoint: (name, labels) -> value."""
    page = text(port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def reachable(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
