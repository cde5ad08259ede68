"""A UK order from placement to a drop-off return with its label, through a running worker.

    python3 dev.py run                      # first shell: worker, scheduler, Redis
    .venv/bin/python examples/walkthrough.py  # second shell, same directory

The order is placed, paid, shipped and delivered (event times in the past, as a
marketplace replaying its day would send them); the buyer asks to return it by drop-off,
the seller approves, and the buyer asks for the label by e-mail. The script prints the
return's events as they arrive and the label files, then exits 0 (1 if an event is missing
after 60 s). Messages go through the typed client in `worker/contract/client.py`, which validates
each one before sending; a bare Celery client would send the same JSON.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from schemas.inbound import (
    LabelEmailRequested,
    Message,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ReturnRequested,
    SellerReturnApproved,
)
from worker.contract.client import Event, EventConsumer, Producer, build

EXPECTED = (
    "return.requested",
    "return.approved",
    "return.label_generated",
    "return.label_email_requested",
)
"""The return's events, in the order they are published."""

TIMEOUT = 60.0
"""Seconds to wait for all of them: the label takes well under a second to render."""


def story(order_id: str, now: datetime) -> list[Message]:
    """The messages of the walkthrough, oldest first; every event time is in the past."""

    def ago(minutes: int) -> datetime:
        return now - timedelta(minutes=minutes)

    return [
        build(OrderPlaced, order_id=order_id, occurred_at=ago(4000), marketplace="UK",
              seller_id="s-1", buyer_id="b-1", payment_method="prepaid", pricing="regular",
              currency="GBP", shipping_fee="3.99",
              items=[{"sku": "MUG", "quantity": 2, "unit_price": "12.50",
                      "weight_kg": 0.6, "dimensions_cm": [12, 10, 10]}]),
        build(OrderPaid, order_id=order_id, occurred_at=ago(3990)),
        build(OrderShipped, order_id=order_id, occurred_at=ago(3000), tracking_number="OUT-1"),
        build(OrderDelivered, order_id=order_id, occurred_at=ago(1500)),
        # The worker takes messages in parallel: a return request that overtakes the
        # delivery waits for it, so the script need not wait between messages.
        build(ReturnRequested, order_id=order_id, occurred_at=ago(60), request_id="ret-1",
              kind="return_and_refund", reason="changed_mind", method="drop_off"),
        build(SellerReturnApproved, order_id=order_id, occurred_at=ago(30), request_id="ret-1"),
        # Any time after the approval: it waits for the label if it is not made yet.
        build(LabelEmailRequested, order_id=order_id, occurred_at=ago(1), request_id="ret-1",
              email="buyer@example.com"),
    ]  # fmt: skip


def label_files(event: Event) -> list[Path]:
    """The local files a `return.label_generated` event names (`file://` URIs)."""
    data = event.data.model_dump()
    uris = [data["qr_png_uri"], data["pdf_uri"]]
    return [Path(unquote(urlparse(uri).path)) for uri in uris if uri.startswith("file://")]


def run(url: str, order_id: str, timeout: float = TIMEOUT) -> list[Event]:
    """Send the story and return the order's return events once all have arrived (or the
    time is up). The consumer's queue is bound before anything is sent."""
    queue = f"walkthrough.{order_id}"
    with EventConsumer(url, queue, ["return.#"], durable=False, auto_delete=True) as events:
        with Producer(url) as producer:
            for message in story(order_id, datetime.now(UTC)):
                producer.send(message)
        received: list[Event] = []
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while {e.type for e in received} < set(EXPECTED):
            left = (deadline - datetime.now(UTC)).total_seconds()
            event = events.next_event(timeout=left) if left > 0 else None
            if event is None:
                break
            if event.subject == order_id:
                received.append(event)
        return received


def redis_url() -> str:
    """`AFTERSALES_REDIS_URL`, else the URL `aftersales run` wrote under its var dir."""
    given = os.environ.get("AFTERSALES_REDIS_URL")
    if given:
        return given
    return (Path(os.environ.get("AFTERSALES_VAR_DIR", "var")) / "redis.url").read_text().strip()


def main(argv: Sequence[str] = ()) -> int:
    order_id = argv[0] if argv else f"walkthrough-{uuid.uuid4().hex[:8]}"
    received = run(redis_url(), order_id)
    for event in received:
        print(event.type, event.subject, event.data.model_dump_json())
        if event.type == "return.label_generated":
            for path in label_files(event):
                print("  file:", path)
    missing = [t for t in EXPECTED if t not in {e.type for e in received}]
    if missing:
        print("missing after", TIMEOUT, "s:", ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
