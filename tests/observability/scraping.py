"""Reading a /metrics endpoint in tests: samples by name and labels."""

from __future__ import annotations

import random
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def below_ephemeral_ports() -> tuple[int, int]:
    """Ports the kernel never picks by itself: below its ephemeral range (the local ports
    of outgoing connections and of `bind(port 0)`), which starts at 32768 by default, and
    below the test cluster's (tests/support/cluster.py: 20000 and up)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return 10_000, min(20_000, low) - 2


def free_port_pair() -> int:
    """A port P with P + 1 free too (a worker serves on P, beat on P + 1), both below the
    kernel's ephemeral range: a port from inside it (`free_port`) was once taken, in the
    seconds between this check and beat's start, by one of the many connections the
    other test processes open."""
    first, last = below_ephemeral_ports()
    for _ in range(200):
        port = random.randrange(first, last)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise AssertionError("no two adjacent free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
