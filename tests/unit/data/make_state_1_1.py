"""Writes order_state_1_1.json: an order's stored state (the `state` field of its hash,
worker/adapters/state_codec.py) as the code before contract 1.2 wrote it, with the policy
documents it refers to. Run with the code of commit 5f7953f on the path:

    git archive 5f7953f | tar -x -C /tmp/base
    cd tests/unit/data
    PYTHONPATH=/tmp/base ../../../.venv/bin/python make_state_1_1.py > order_state_1_1.json

Fixed ids and times, so the output is the same on every run. The order: two SKUs, A x2
rejected, resubmitted as A x2 + B x1 and rejected again (per request, 1.1 counting), a
third unit refunded, a resubmit deadline pending and an event-time history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.unit.harness import Timeline

from schemas.policy import MarketplacePolicy
from tests import factories as f
from worker.adapters import state_codec

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OID = "ord-1-1"


def main() -> None:
    items = [f.item("A", 3, "10.00"), f.item("B", 1, "25.50")]
    timeline = Timeline(OID)
    d = T0 + timedelta(days=3)
    messages = [
        f.order_placed(OID, T0, message_id="m-placed", buyer_id="buyer-1", items=items),
        f.paid(OID, T0 + timedelta(hours=1), message_id="m-paid"),
        f.shipped(OID, T0 + timedelta(hours=5), message_id="m-shipped", tracking_number="T1"),
        f.delivered(OID, d, message_id="m-delivered"),
        f.return_requested(
            OID,
            d + timedelta(hours=1),
            request_id="r1",
            kind="refund_only",
            reason="changed_mind",
            items=[{"sku": "A", "quantity": 2}],
            message_id="m-r1",
        ),
        f.return_rejected(OID, "r1", d + timedelta(hours=2), message_id="m-r1-no"),
        f.return_requested(
            OID,
            d + timedelta(hours=3),
            request_id="r2",
            kind="refund_only",
            reason="changed_mind",
            items=[{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}],
            message_id="m-r2",
        ),
        f.return_rejected(OID, "r2", d + timedelta(hours=4), message_id="m-r2-no"),
        f.return_requested(
            OID,
            d + timedelta(hours=5),
            request_id="r3",
            kind="refund_only",
            reason="damaged",
            items=[{"sku": "A", "quantity": 1}],
            message_id="m-r3",
        ),
        f.return_approved(OID, "r3", d + timedelta(hours=6), message_id="m-r3-yes"),
        f.shipped(OID, d + timedelta(hours=7), message_id="m-shipped-again"),
    ]
    for msg in messages:
        timeline.send(msg)
    policies: dict[str, object] = {}

    def ref(policy: MarketplacePolicy) -> str:
        digest = state_codec.policy_hash(policy)
        policies[digest] = policy.model_dump(mode="json")
        return digest

    stored = state_codec.encode(timeline.state, ref)
    out = {"state": stored, "policies": policies, "events": timeline.types()}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
