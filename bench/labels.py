"""Labels per second on one core: QR PNG, QR SVG, PDF and a full make_label, separately.

    .venv/bin/python bench/labels.py [--seconds N] [--dir PATH]

Each step runs for N seconds on fresh ids (so nothing is cached) and is reported with its
ratio to the cheapest step of the same run, so numbers compare across machines.
`make_label (memory)` is rendering alone; `make_label (new)` also writes the three files
into a temporary directory (under --dir if given: /tmp is often tmpfs, where fsync is
free; point it at the real label disk to include the fsyncs); `make_label (exists)` is
the idempotent path of a retried task.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.adapters.label_store import FileLabelStore, MemoryLabelStore
from worker.adapters.labels import (
    LabelSpec,
    make_label,
    render_label_pdf,
    render_qr_png,
    render_qr_svg,
)

# Enough distinct specs that every timed call renders new content.
_POOL = 2000


def specs(count: int) -> list[LabelSpec]:
    return [
        LabelSpec.for_return(
            order_id=f"ORD-{uuid.uuid4().hex[:12]}",
            request_id=f"RR-{uuid.uuid4().hex[:12]}",
            carrier="Evri",
            seller_id=f"SELLER-{uuid.uuid4().hex[:8]}",
            cost=Decimal("4.49"),
            currency="GBP",
            payer="buyer",
            valid_until=datetime(2026, 12, 10, 10, 0, tzinfo=UTC),
            issued_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        )
        for _ in range(count)
    ]


def measure(step: Callable[[LabelSpec], object], pool: list[LabelSpec], seconds: float) -> float:
    """Labels per second: calls `step` on successive specs for about `seconds`."""
    for spec in pool[:5]:  # warm-up: imports, font metrics, allocator
        step(spec)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        step(pool[done % len(pool)])
        done += 1
    return done / (time.perf_counter() - start)


class FreshStore:
    """make_label into a new directory each pass over the pool, so files never exist yet."""

    def __init__(self, root: Path, pool: list[LabelSpec]) -> None:
        self.root, self.pool_size, self.calls = root, len(pool), 0

    def __call__(self, spec: LabelSpec) -> object:
        store = FileLabelStore(self.root / str(self.calls // self.pool_size))
        self.calls += 1
        return make_label(store, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per step (default 2)")
    parser.add_argument("--dir", type=Path, default=None, help="where make_label writes")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    pool = specs(_POOL)
    pngs = {spec.request_id: render_qr_png(spec.qr_content) for spec in pool}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="labels-bench-") as tmp:
        warm = FileLabelStore(Path(tmp) / "warm")
        for spec in pool:
            make_label(warm, spec)
        steps: list[tuple[str, Callable[[LabelSpec], object], list[LabelSpec]]] = [
            ("qr png", lambda s: render_qr_png(s.qr_content), pool),
            ("qr svg", lambda s: render_qr_svg(s.qr_content), pool),
            ("pdf (given the png)", lambda s: render_label_pdf(s, qr_png=pngs[s.request_id]), pool),
            ("pdf (standalone)", render_label_pdf, pool),
            ("make_label (memory)", lambda s: make_label(MemoryLabelStore(), s), pool),
            ("make_label (new)", FreshStore(Path(tmp) / "fresh", pool), pool),
            ("make_label (exists)", lambda s: make_label(warm, s), pool),
        ]
        rates = [(name, measure(step, items, args.seconds)) for name, step, items in steps]

    cheapest = max(rate for _, rate in rates)
    print(f"one core, {args.seconds:g} s per step, Python {sys.version.split()[0]}")
    print(f"{'step':<22}{'labels/s':>10}{'ms/label':>10}{'x cheapest':>12}")
    for name, rate in rates:
        print(f"{name:<22}{rate:>10.0f}{1000 / rate:>10.3f}{cheapest / rate:>12.1f}")


if __name__ == "__main__":
    main()
