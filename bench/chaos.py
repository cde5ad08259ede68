"""Chaos run: a seeded random workload against real workers that are killed meanwhile,
checked against an independent oracle (docs/chaos.md).

    .venv/bin/python bench/chaos.py [--orders 5000] [--seed 1]
                                    [--kill-every 5] [--redis-stop term]

Starts its own embedded Redis (AOF on), two workers (prefork, concurrency 2) and beat;
sends every order's messages in stages (shuffled within a stage, event times backdated so
that deadlines come due during the run); kill -9s a worker (whole process group) every
`--kill-every` seconds and starts a fresh one, kill -9s beat once and restarts it,
restarts Redis once; then waits until every expected outcome has arrived (or nothing
new came for `--quiet` seconds) and prints expected, seen, missing, duplicated, wrong and
the slowest deadline. Exit status 1 when missing, duplicated or wrong is not zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos.harness import ChaosConfig, run_chaos  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--with-1.1",
        dest="with_1_1",
        action="store_true",
        help="accepted for old command lines: every flow (1.1 and 1.2 included) is in "
        "the default set since contract 1.2",
    )
    parser.add_argument(
        "--kill-every",
        type=float,
        default=5.0,
        help="seconds between worker kills (until the last deadline is due)",
    )
    parser.add_argument(
        "--redis-stop",
        choices=("kill", "term"),
        default="kill",
        help="how Redis is stopped before its restart: kill -9 or SIGTERM",
    )
    parser.add_argument("--lead", type=float, help="seconds before the first in-run deadline")
    parser.add_argument("--spread", type=float, help="seconds over which deadlines fall due")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--quiet",
        type=float,
        default=200.0,
        help="stop when nothing new came for so long (past every due time); "
        "must outlast the visibility timeout plus kombu's ~100 s "
        "restore sweep",
    )
    parser.add_argument(
        "--visibility",
        default="PT60S",
        help="AFTERSALES_VISIBILITY_TIMEOUT (messages of a killed worker come back after it)",
    )
    parser.add_argument("--horizon", default="PT20S", help="AFTERSALES_DEADLINE_HORIZON")
    args = parser.parse_args(argv)
    # Sending takes ~5 ms a message on a loaded machine: deadlines start after the first
    # stage is out, and fall over a span that scales with the run.
    lead = args.lead if args.lead is not None else max(20.0, args.orders * 0.02)
    spread = args.spread if args.spread is not None else max(40.0, args.orders * 0.05)
    config = ChaosConfig(
        orders=args.orders,
        seed=args.seed,
        lead=lead,
        spread=spread,
        worker_kill_every=args.kill_every,
        first_kill=5.0,
        beat_kill=lead + spread / 3,
        redis_restart=lead + spread / 2,
        redis_hard=args.redis_stop == "kill",
        timeout=args.timeout,
        quiet=args.quiet,
        settle=10.0,
        visibility=args.visibility,
        horizon=args.horizon,
    )
    with tempfile.TemporaryDirectory(prefix="chaos-") as workdir:
        run = run_chaos(config, Path(workdir))
    print("\n".join(run.report()), flush=True)
    assert run.comparison is not None
    return 1 if run.comparison.failed else 0


if __name__ == "__main__":
    sys.exit(main())
