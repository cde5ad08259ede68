"""A mixed-version rolling upgrade under the chaos workload (docs/operations.md, "Upgrades").

The previous release (RELEASES.toml, installed from this clone's history into
`.venv-release-<version>`, tests/upgrade/releases.py) runs two workers and beat on one
Redis; the chaos workload (tests/chaos/: generator and independent oracle) flows, with
deadlines coming due throughout; then, one process at a time, a worker of today's code is
started and, once it answers, an old one is stopped with SIGTERM (warm shutdown), twice;
then beat is replaced. No kill, no Redis restart: what is measured is the upgrade alone.
The outcomes are compared with the oracle: missing, duplicated, wrong, dead letters and
processes that exited by themselves must all be zero.

    .venv/bin/python tests/upgrade/rolling.py [--orders 2000] [--seed 1]   # the bench size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from tests.chaos.harness import Run, run_chaos  # noqa: E402
from tests.chaos.parts import ChaosConfig, Processes  # noqa: E402
from tests.support.processes import (  # noqa: E402
    WORKER_QUEUES,
    CeleryProcess,
    spawn,
    unique_node,
    worker_args,
)
from tests.upgrade import releases  # noqa: E402

RELEASE_FLOWS: dict[str, tuple[str, ...]] = {
    "1.1.0": (
        "cancel_unpaid", "cancel_free", "cancel_cod", "cancel_answered", "cancel_silence",
        "cancel_then_shipped", "seller_cancels", "unpaid_expiry", "late_payment",
        "return_answered", "refund_only_in_transit", "return_silence",
        "return_parcel_timers", "return_rejected_final", "return_resubmitted",
        "return_appealed", "return_refused",
    ),
}  # fmt: skip
"""The chaos flows each release's own chaos run covered (1.1's default set; its 1.1-only
flows were behind --with-1.1, `late_refund_only` arrival-order dependent there). During a
rolling upgrade producers send what the previous release handles: the message kinds of
the new contract (1.2: offers, reshipment and exchange requests, replacements) only once
no older worker runs (docs/operations.md, "Upgrades": expand, then contract)."""

NOT_YET_ROLLING: tuple[str, ...] = ("return_resubmitted",)
"""Flows a 1.1 worker cannot yet share with 1.2 (left out of the CI run). A second return
request for units of a rejected one: the two releases' rules disagree on it (1.2 counts
rejections per unit and takes units never asked first, so the second request may be a
first try, `can_resubmit` true on its rejection; 1.1 calls it a resubmission), and 1.2
stores units it takes from a rejected request that keeps others as `second_tries`
(format 3), which a 1.1 worker dead-letters. A whole rejected request asked again is
stored as 1.1 stores it (worker/rules/returns.py). Measured by the bench run
(docs/chaos.md)."""

STOP_GRACE = 90.0
"""Seconds an old worker gets for its warm shutdown before SIGKILL (none was seen to need
more than ~35 s, a worker whose last fetch came back after its consumer stopped)."""


@dataclass
class RollingConfig(ChaosConfig):
    first_swap: float = 8.0  # seconds after sending starts: the first new worker starts
    swap_every: float = 8.0  # then the next step (second worker, then beat)
    old_python: str = ""  # the previous release's interpreter


class VersionedProcesses(Processes):
    """Workers and beat of a chosen release: `python` is the interpreter new ones get."""

    def __init__(self, workdir: Path, url: str, config: ChaosConfig) -> None:
        super().__init__(workdir, url, config)
        assert isinstance(config, RollingConfig)
        self.python = config.old_python
        self.release_of: dict[int, str] = {}

    def start_worker(self) -> CeleryProcess:
        node_arg, node = unique_node("rolling")
        cwd = self.workdir / node.split("@")[0]
        cwd.mkdir()
        args = worker_args(node_arg, self.config.concurrency, "prefork", "INFO", WORKER_QUEUES)
        handle = spawn("worker", args, self.env, cwd, cwd / "worker.log", node, self.python)
        self._track(handle)
        self.workers.append(handle)
        return handle

    def start_beat(self) -> CeleryProcess:
        cwd = self.workdir / f"beat-{uuid.uuid4().hex[:6]}"
        cwd.mkdir()
        args = ["beat", "--loglevel", "INFO", "--schedule", str(cwd / "celerybeat-schedule")]
        self.beat = spawn("beat", args, self.env, cwd, cwd / "beat.log", python=self.python)
        self._track(self.beat)
        return self.beat

    def _track(self, handle: CeleryProcess) -> None:
        self.all.append(handle)
        self.release_of[handle.pid] = "old" if self.python == self.config.old_python else "new"  # type: ignore[attr-defined]


class Rollout:
    """The upgrade, as the drive loop's schedule: each step starts a process of today's
    code, waits (without blocking the loop) until it answers, then stops an old one with
    SIGTERM in the background (its warm shutdown may take a while)."""

    def __init__(self, run: Run, processes: Processes, server: Any) -> None:
        assert isinstance(processes, VersionedProcesses)
        c = self.config = run.config
        assert isinstance(c, RollingConfig)
        self.run, self.processes, self.server = run, processes, server
        self.last_due = c.lead + c.spread
        self.steps = ["worker", "worker", "beat"]
        self.next_at = c.first_swap
        self.starting: CeleryProcess | None = None
        self.stoppers: list[threading.Thread] = []
        self.log: list[str] = []

    @property
    def over(self) -> bool:
        return (
            not self.steps
            and self.starting is None
            and not any(t.is_alive() for t in self.stoppers)
        )

    def tick(self, elapsed: float) -> None:
        p, say = self.processes, self.config.log
        if self.starting is not None:
            if not p.ready(self.starting):
                return
            old = next(w for w in p.workers if p.release_of.get(w.pid) == "old")
            p.workers.remove(old)
            self._stop(old, elapsed)
            self.starting = None
            self.next_at = elapsed + self.config.swap_every  # type: ignore[attr-defined]
        elif self.steps and elapsed >= self.next_at:
            step = self.steps.pop(0)
            p.python = sys.executable  # today's code from here on
            if step == "worker":
                self.starting = p.start_worker()
                self._say(elapsed, f"started new worker {self.starting.name}")
            else:
                old_beat = p.beat
                assert old_beat is not None
                self._stop(old_beat, elapsed, wait=True)
                p.start_beat()
                self._say(elapsed, "started new beat")
        for death in p.replace_dead():
            self.run.crashes.append(f"{elapsed:.0f} s {death}")
            say(f"rolling: {elapsed:.0f} s CRASHED (restarted): {death}")

    def _stop(self, handle: CeleryProcess, elapsed: float, wait: bool = False) -> None:
        self._say(elapsed, f"SIGTERM old {handle.kind} {handle.name or ''}")
        started = time.monotonic()

        def stop() -> None:
            status = handle.stop(grace=STOP_GRACE)
            self._say(
                elapsed, f"old {handle.kind} {handle.name or ''} exited {status} after "
                f"{time.monotonic() - started:.1f} s"
            )  # fmt: skip

        if wait:
            stop()
        else:
            thread = threading.Thread(target=stop, daemon=True)
            thread.start()
            self.stoppers.append(thread)

    def _say(self, elapsed: float, text: str) -> None:
        line = f"rolling: {elapsed:.0f} s {text}"
        self.log.append(line)
        self.config.log(line)


def run_rolling(config: RollingConfig, workdir: Path) -> Run:
    return run_chaos(config, workdir, VersionedProcesses, Rollout)


def rolling_config(
    orders: int,
    seed: int,
    old_python: str,
    previous: str = "1.1.0",
    skip: tuple[str, ...] = (),
    **more: Any,
) -> RollingConfig:
    """Sizes that keep deadlines coming due before, during and after the swaps; the flows
    the previous release handles."""
    lead = more.pop("lead", max(15.0, orders * 0.02))
    spread = more.pop("spread", max(45.0, orders * 0.05))
    return RollingConfig(
        orders=orders, seed=seed, lead=lead, spread=spread, old_python=old_python,
        flows=tuple(f for f in RELEASE_FLOWS[previous] if f not in skip),
        first_swap=more.pop("first_swap", lead * 0.6),
        swap_every=more.pop("swap_every", spread / 4),
        # No chaos of its own: the upgrade is what is measured.
        worker_kill_every=0.0, first_kill=1e9, beat_kill=1e9, redis_restart=1e9,
        **more,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--skip", action="append", default=[], help="leave a flow out (e.g. return_resubmitted)"
    )
    parser.add_argument("--quiet", type=float, default=120.0)
    args = parser.parse_args(argv)
    previous = releases.previous()
    old_python = str(releases.ensure_venv(previous["version"]))
    config = rolling_config(
        args.orders, args.seed, old_python, previous["version"], tuple(args.skip),
        timeout=args.timeout,
        quiet=args.quiet, visibility="PT60S", horizon="PT20S",
    )  # fmt: skip
    print(f"rolling: {previous['version']} ({previous['commit'][:7]}) -> working tree")
    with tempfile.TemporaryDirectory(prefix="rolling-") as tmp:
        run = run_rolling(config, Path(tmp))
    print("\n".join(run.report()))
    failed = run.comparison is None or run.comparison.failed or run.dead_letters or run.crashes
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
