"""Redis bytes per order, stored compact (policy by reference) against the inline form,
and memory over a long run with retention.

    .venv/bin/python bench/memory.py [--orders 2000] [--long-run SECONDS]

Starts its own embedded Redis (worker/cli/embedded_redis.py, free port, FLUSHALL between the
two forms) and drives N orders through the production write path in-process: the real
Service and RedisStore (claim, load, decide, commit.lua), with a publisher that drops
events (the outbox is confirmed and emptied, as after a publish). After each lifecycle
point (placed, paid, delivered, return requested, refunded) it prints, per order:
`INFO used_memory` delta / N (everything: the order's keys, its deadlines in the schedule,
Redis's own overhead) and `MEMORY USAGE` of each per-order key averaged over a sample.

`--inline` is the form every order had before the compact state: the policy copied into
the state JSON, every default written, the history base in full, and no retention TTL.

`--long-run S`: for S seconds, orders are placed and cancelled (closed) continuously
with `AFTERSALES_RETENTION` = 2 s, and `used_memory` is printed every few seconds; then
the same without expiry for comparison. With retention it stays flat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import redis  # noqa: E402

from schemas.inbound import ANY_MESSAGE  # noqa: E402
from schemas.policy import build_policy  # noqa: E402
from worker.adapters import keys  # noqa: E402
from worker.adapters.redis_store import RedisStore  # noqa: E402
from worker.cli.embedded_redis import start_embedded_redis  # noqa: E402
from worker.service_layer.ports import Commit, CommitResult  # noqa: E402
from worker.service_layer.service import Service  # noqa: E402

SAMPLE = 200  # orders whose keys MEMORY USAGE reads: the keys of one order are alike
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class DropPublisher:
    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        pass


class InlineStore(RedisStore):
    """The store as it was: the state JSON in full, timeline lines in full, no expiry."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.codec.encode = lambda state: state.model_dump_json()  # type: ignore[method-assign]

    timeline_defaults: dict[str, Any] = {}  # noqa: RUF012 (read only)
    digest_chars = 64

    def commit(self, commit: Commit, now: datetime) -> CommitResult:
        return super().commit(replace(commit, expire_in=None), now)


def msg(type_: str, order: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "message_id": f"m-{uuid.uuid4().hex[:16]}",
        "type": type_,
        "order_id": order,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        **fields,
    }


def placed(order: str, at: datetime) -> dict[str, Any]:
    """A paid-later prepaid UK order of two lines, as bench/deadlines.py places."""
    item = {"quantity": 1, "unit_price": "20.00", "weight_kg": 1, "dimensions_cm": [30, 20, 10]}
    return msg(
        "order.placed", order, at, marketplace="UK", seller_id="seller-1",
        buyer_id=f"buyer-{uuid.uuid4().hex[:12]}", payment_method="prepaid",
        pricing="regular", currency="GBP", shipping_fee="4.99",
        items=[{**item, "sku": "sku-a"}, {**item, "sku": "sku-b", "quantity": 2}],
    )  # fmt: skip


STAGES: list[tuple[str, list[tuple[str, timedelta, dict[str, Any]]]]] = [
    ("placed", [("order.placed", timedelta(0), {})]),
    ("paid", [("order.paid", timedelta(hours=1), {})]),
    (
        "delivered",
        [
            ("order.ready_to_ship", timedelta(hours=20), {}),
            ("order.shipped", timedelta(days=1), {"tracking_number": "TRK-1"}),
            ("order.delivered", timedelta(days=3), {}),
        ],
    ),
    (
        "return requested",
        [
            (
                "buyer.return_requested",
                timedelta(days=4),
                {"request_id": "r-1", "kind": "refund_only", "reason": "damaged"},
            ),
        ],
    ),
    ("refunded", [("seller.return_approved", timedelta(days=4, hours=2), {"request_id": "r-1"})]),
]


def handle(store: RedisStore, service: Service, body: dict[str, Any]) -> None:
    message = ANY_MESSAGE.validate_python(body)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))  # as tasks/inbound.py
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    service.handle_message(message, digest=digest)


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def key_bytes(client: redis.Redis, orders: list[str]) -> dict[str, float]:
    kinds = {
        "state": keys.order_state,
        "seen": keys.seen_messages,
        "digests": keys.message_digests,
        "timeline": keys.timeline,
    }
    sample = orders[:SAMPLE]
    out = {}
    for name, key_of in kinds.items():
        total = sum(
            int(client.execute_command("MEMORY", "USAGE", key_of(o), "SAMPLES", "0") or 0)
            for o in sample
        )
        out[name] = total / len(sample)
    out["state JSON"] = sum(len(client.hget(keys.order_state(o), "state") or b"") for o in sample)
    out["state JSON"] /= len(sample)
    return out


def lifecycle(
    client: redis.Redis, inline: bool, n: int
) -> list[tuple[str, float, dict[str, float]]]:
    client.flushall()
    store = InlineStore(client) if inline else RedisStore(client)
    clock = {"now": T0}
    service = Service(store, DropPublisher(), build_policy(), clock=lambda: clock["now"])
    orders = [f"o-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    baseline = used(client)
    rows = []
    for stage, steps in STAGES:
        for type_, offset, fields in steps:
            clock["now"] = T0 + offset + timedelta(seconds=1)
            for order in orders:
                body = (
                    placed(order, T0)
                    if type_ == "order.placed"
                    else msg(type_, order, T0 + offset, **fields)
                )
                handle(store, service, body)
        rows.append((stage, (used(client) - baseline) / n, key_bytes(client, orders)))
    return rows


def print_lifecycle(n: int, inline: list[Any], compact: list[Any]) -> None:
    print(f"\nRedis bytes per order, {n} orders (inline = before, compact = now)")
    print(f"{'stage':<18}{'used_memory/order':>28}{'state key (MEMORY USAGE)':>32}"
          f"{'state JSON':>24}{'seen+digests+timeline':>26}")  # fmt: skip
    for (stage, before, kb), (_, after, ka) in zip(inline, compact, strict=True):
        others_b = kb["seen"] + kb["digests"] + kb["timeline"]
        others_a = ka["seen"] + ka["digests"] + ka["timeline"]
        print(
            f"{stage:<18}{before:>9.0f} -> {after:>6.0f} ({after / before:4.2f}x)"
            f"{kb['state']:>12.0f} -> {ka['state']:>6.0f} ({ka['state'] / kb['state']:4.2f}x)"
            f"{kb['state JSON']:>8.0f} -> {ka['state JSON']:>5.0f} "
            f"({ka['state JSON'] / kb['state JSON']:4.2f}x)"
            f"{others_b:>10.0f} -> {others_a:>6.0f}"
        )
    print("per key, compact (MEMORY USAGE): " + "; ".join(
        f"{stage}: seen {k['seen']:.0f}, digests {k['digests']:.0f}, timeline {k['timeline']:.0f}"
        for stage, _, k in compact
    ))  # fmt: skip


def long_run(client: redis.Redis, seconds: float, retention: timedelta | None) -> list[int]:
    """Orders placed and cancelled (closed at once) for `seconds`; used_memory samples."""
    client.flushall()
    store: RedisStore = RedisStore(client) if retention else InlineStore(client)
    service = Service(store, DropPublisher(), build_policy(), retention=retention or timedelta(1))
    samples, start, next_sample = [], time.monotonic(), 0.0
    while (elapsed := time.monotonic() - start) < seconds:
        now = datetime.now(UTC)
        order = f"o-{uuid.uuid4().hex[:12]}"
        handle(store, service, placed(order, now))
        handle(store, service, msg("buyer.cancel_requested", order, now, reason="mistake"))
        if elapsed >= next_sample:
            samples.append(used(client))
            next_sample += seconds / 10
    samples.append(used(client))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--long-run", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()
    server = start_embedded_redis(data_dir=Path(tempfile.mkdtemp(prefix="bench-memory-")), port=0)
    try:
        client = redis.Redis.from_url(server.url)
        inline = lifecycle(client, inline=True, n=args.orders)
        compact = lifecycle(client, inline=False, n=args.orders)
        print_lifecycle(args.orders, inline, compact)
        if args.long_run:
            kept = long_run(client, args.long_run, None)
            expiring = long_run(client, args.long_run, timedelta(seconds=2))
            print(f"\nused_memory (MB) over {args.long_run:.0f} s of orders placed and closed")
            print("no expiry:     " + " ".join(f"{b / 2**20:6.2f}" for b in kept))
            print("retention 2 s: " + " ".join(f"{b / 2**20:6.2f}" for b in expiring))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
