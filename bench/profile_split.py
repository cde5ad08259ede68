"""Split a py-spy profile of the worker (collapsed stacks, `py-spy record --subprocesses
-f raw`, as bench/throughput.py --profile writes) into the consumer (the main process) and
the pool processes, and the pool's samples into the steps of an inbound message.

    .venv/bin/python bench/profile_split.py [bench/results/throughput-profile.txt] [--waits]

py-spy samples what a thread is doing, running or not: a sample whose innermost frame is
a socket read or write or a wait for the pool's pipe is a wait (on Redis, on the consumer,
or for the CPU on a loaded machine), left out unless --waits. Each remaining sample goes
to the first step of STEPS it is in, else to whose code (GENERIC) its innermost frame is;
shares are of the pool's (or the consumer's) samples.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "results" / "throughput-profile.txt"

WAITS = (
    "read_from_socket (redis",
    "_socket_can_read (redis",
    "send_packed_command (redis/connection.py:1691)",  # the sendall itself
    "Connection._recv (billiard",
    "Connection._send (billiard",
    "send_offset (billiard",
    "_epoll.poll (kombu",
)
"""Innermost frames that are waits, not work of this process."""

STEPS = (
    # (step, frames that mark it): a sample goes to the first step any of its frames marks
    ("redis-py (pack, pool, parse) of the round trips", ("(redis/",)),
    ("structlog / logging", ("(structlog/", "(logging/__init__")),
    ("metrics and tracing hooks", ("(worker/observability/", "(prometheus_client/")),
    ("log context (signal receivers)", ("bind_task (worker/shell", "unbind_task (worker/shell")),
    ("state decode (state_codec)", ("StateCodec.decode", "decode (worker/adapters/state_codec")),
    ("state encode (state_codec)", ("StateCodec.encode", "encode (worker/adapters/state_codec")),
    ("event messages for the commit (direct_publish)", ("DirectEvents.pushes",)),
    ("decide (worker/rules)", ("decide (worker/rules/decide",)),
    ("commit built (service_layer/commit)", ("commit_for (worker/service_layer/commit",)),
    ("message validated (pydantic)", ("parse_message",)),
    ("body digest", ("_digest (tasks",)),
    ("commit ARGV (order_store)", ("OrderStore._commit_once", "OrderStore.commit ")),
    ("begin (order_store)", ("OrderStore.begin_message",)),
)

GENERIC = (
    # then the innermost of these: whose code the rest of the sample ran
    ("service, task glue", ("(worker/", "(tasks/", "(schemas/")),
    ("Celery's tracer and consumer (decode, request, signals)", ("(celery/", "(kombu/")),
    ("billiard pool loop (pickling, pipe)", ("(billiard/",)),
)


def split(path: Path, waits: bool = False) -> dict[str, Counter[str]]:
    """{"consumer" | "pool": Counter(step -> samples)}; "total" counts every sample kept."""
    found: dict[str, Counter[str]] = {"consumer": Counter(), "pool": Counter()}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, samples = stack.split(";"), int(count)
        if not waits and any(wait in frames[-1] for wait in WAITS):
            continue
        side = "pool" if sum(f.startswith("process ") for f in frames) > 1 else "consumer"
        found[side]["total"] += samples
        step = next(
            (name for name, marks in STEPS if any(m in f for f in frames for m in marks)),
            None,
        ) or next(
            (
                name
                for frame in reversed(frames)
                for name, marks in GENERIC
                if any(mark in frame for mark in marks)
            ),
            "other",
        )
        found[side][step] += samples
    return found


def render(found: dict[str, Counter[str]]) -> str:
    lines = []
    for side in ("pool", "consumer"):
        counts = found[side]
        total = counts.pop("total", 0)
        lines.append(f"{side}: {total} samples")
        for step, samples in counts.most_common():
            lines.append(f"  {100 * samples / max(total, 1):5.1f} %  {step}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, nargs="?", default=DEFAULT)
    parser.add_argument("--waits", action="store_true", help="keep samples that wait")
    args = parser.parse_args(argv)
    if not args.profile.exists():
        print(f"no profile at {args.profile}: `bench/throughput.py --profile` writes one")
        return 0
    print(render(split(args.profile, args.waits)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
