"""One order's script for the chaos run (stages, gates, probes) and the builder of its
wire messages, whose event times the flows backdate so that deadlines fall in the run.

An order's messages are sent in stages. Messages within a stage may arrive in any order
(they are shuffled): each one that needs an earlier fact of the same stage is held by the
worker until that fact arrives (a seller answer before its request, a payment before
the order), so the outcome does not depend on the arrival order. A message whose outcome
WOULD depend on arrival order (a cancellation after a payment, a shipment after a
cancellation request, a resubmission after a rejection) goes in a later stage, sent only
once an outcome of the earlier stage has been seen (its `gate`). A payment has no outcome
of its own, so it is made visible by a probe: a second `order.paid` for the same order,
refused with `already_paid` once the first is applied.

Like the oracle, this imports nothing from `worker/` or `schemas/`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TASKS = {
    "order": "aftersales.order_event",
    "buyer": "aftersales.buyer_action",
    "seller": "aftersales.seller_action",
    "carrier": "aftersales.carrier_event",
    "platform": "aftersales.platform_action",
}
BUYER_FAULT = ("changed_mind", "no_longer_needed", "ordered_by_mistake")
SELLER_FAULT = (
    "damaged",
    "defective",
    "wrong_item",
    "missing_items",
    "not_as_described",
    "not_received",
)

Key = tuple[str, str, str]  # (order id, event type, ref) as in oracle.Outcome.key


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass
class Script:
    """One order: `stages[i]` is sent once every key of `gates[i]` has been seen."""

    order_id: str
    flow: str
    stages: list[list[dict[str, Any]]] = field(default_factory=list)
    gates: list[list[Key]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # message id -> action.rejected ref

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for stage in self.stages for m in stage]


def task_of(message: dict[str, Any]) -> str:
    return TASKS[message["type"].split(".", 1)[0]]


class Builder:
    """Builds one order's messages; `stage()` starts the next stage."""

    def __init__(
        self,
        rng: random.Random,
        order_id: str,
        flow: str,
        marketplace: str,
        method: str = "prepaid",
        pricing: str = "regular",
    ) -> None:
        self.rng, self.order_id = rng, order_id
        self.script = Script(order_id, flow, [[]], [[]])
        self.marketplace, self.method, self.pricing = marketplace, method, pricing
        self.count = 0
        n = rng.randint(1, 3)
        self.items = [
            {
                "sku": f"sku-{chr(65 + i)}",
                "quantity": rng.randint(1, 2),
                "unit_price": str(Decimal(rng.randint(199, 12000)) / 100),
                "weight_kg": rng.randint(1, 20) / 10,
                "dimensions_cm": [20, 15, 5],
            }
            for i in range(n)
        ]
        self.fee = str(Decimal(rng.randint(0, 999)) / 100)

    def msg(self, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
        self.count += 1
        message = {
            "message_id": f"{self.order_id}:{self.count}",
            "type": type_,
            "order_id": self.order_id,
            "occurred_at": iso(at),
            **fields,
        }
        self.script.stages[-1].append(message)
        return message

    def stage(self, *gate: tuple[str, str]) -> None:
        self.script.stages.append([])
        self.script.gates.append([(self.order_id, type_, ref) for type_, ref in gate])

    def placed(self, at: datetime, payment_due_at: datetime | None = None) -> None:
        extra = {"payment_due_at": iso(payment_due_at)} if payment_due_at else {}
        self.msg(
            "order.placed",
            at,
            marketplace=self.marketplace,
            seller_id="seller-1",
            buyer_id=f"buyer-{self.order_id}",
            payment_method=self.method,
            pricing=self.pricing,
            currency="GBP" if self.marketplace == "UK" else "USD",
            shipping_fee=self.fee,
            items=self.items,
            **extra,
        )

    def paid(self, at: datetime, probe: bool = False) -> None:
        """`probe`: a second payment a second later, refused once the first is applied;
        the next stage waits for that refusal (whichever of the two it names)."""
        first = self.msg("order.paid", at)
        if probe:
            second = self.msg("order.paid", at + timedelta(seconds=1))
            ref = f"probe:{first['message_id']}"
            self.script.aliases[first["message_id"]] = ref
            self.script.aliases[second["message_id"]] = ref
            self.stage(("action.rejected", ref))

    def fulfilled(self, shipped: datetime, delivered: datetime | None) -> None:
        self.msg("order.ready_to_ship", shipped - HOUR)
        self.msg("order.shipped", shipped, tracking_number=f"TR{self.count}")
        if delivered is not None:
            self.msg("order.delivered", delivered)

    def reason(self, seller_fault: bool | None = None) -> str:
        if seller_fault is None:
            seller_fault = self.rng.random() < 0.5
        return self.rng.choice(SELLER_FAULT if seller_fault else BUYER_FAULT)

    def some_items(self) -> list[dict[str, Any]] | None:
        """None (the whole order) or a part of it."""
        if self.rng.random() < 0.5:
            return None
        chosen = self.rng.sample(self.items, self.rng.randint(1, len(self.items)))
        return [{"sku": i["sku"], "quantity": self.rng.randint(1, i["quantity"])} for i in chosen]

    def return_request(
        self,
        rid: str,
        at: datetime,
        kind: str,
        method: str | None,
        items: list[dict[str, Any]] | None = None,
        reason: str | None = None,
        heavy: bool = False,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "request_id": rid,
            "kind": kind,
            "reason": reason or self.reason(),
        }
        if method is not None:
            fields["method"] = method
        if items is not None:
            fields["items"] = items
        if method == "drop_off":
            weight = self.rng.randint(160, 250) / 10 if heavy else self.rng.randint(1, 140) / 10
            fields["parcel"] = {"weight_kg": weight, "dimensions_cm": [40, 30, 20]}
        return self.msg("buyer.return_requested", at, **fields)
