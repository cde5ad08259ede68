"""Seeded random workload for the chaos run: one script per order, covering every flow of
the rules, with event times backdated so that many deadlines come due during the run.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.chaos.oracle import Outcome, expected_outcomes

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
SELLER_FAULT = ("damaged", "defective", "wrong_item", "missing_items", "not_as_described",
                "not_received")

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

    def __init__(self, rng: random.Random, order_id: str, flow: str, marketplace: str,
                 method: str = "prepaid", pricing: str = "regular") -> None:
        self.rng, self.order_id = rng, order_id
        self.script = Script(order_id, flow, [[]], [[]])
        self.marketplace, self.method, self.pricing = marketplace, method, pricing
        self.count = 0
        n = rng.randint(1, 3)
        self.items = [
            {"sku": f"sku-{chr(65 + i)}", "quantity": rng.randint(1, 2),
             "unit_price": str(Decimal(rng.randint(199, 12000)) / 100),
             "weight_kg": rng.randint(1, 20) / 10, "dimensions_cm": [20, 15, 5]}
            for i in range(n)
        ]
        self.fee = str(Decimal(rng.randint(0, 999)) / 100)

    def msg(self, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
        self.count += 1
        message = {"message_id": f"{self.order_id}:{self.count}", "type": type_,
                   "order_id": self.order_id, "occurred_at": iso(at), **fields}
        self.script.stages[-1].append(message)
        return message

    def stage(self, *gate: tuple[str, str]) -> None:
        self.script.stages.append([])
        self.script.gates.append([(self.order_id, type_, ref) for type_, ref in gate])

    def placed(self, at: datetime, payment_due_at: datetime | None = None) -> None:
        extra = {"payment_due_at": iso(payment_due_at)} if payment_due_at else {}
        self.msg("order.placed", at, marketplace=self.marketplace, seller_id="seller-1",
                 buyer_id=f"buyer-{self.order_id}", payment_method=self.method,
                 pricing=self.pricing, currency="GBP" if self.marketplace == "UK" else "USD",
                 shipping_fee=self.fee, items=self.items, **extra)

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
        return [{"sku": i["sku"], "quantity": self.rng.randint(1, i["quantity"])}
                for i in chosen]

    def return_request(self, rid: str, at: datetime, kind: str, method: str | None,
                       items: list[dict[str, Any]] | None = None, reason: str | None = None,
                       heavy: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {"request_id": rid, "kind": kind,
                                  "reason": reason or self.reason()}
        if method is not None:
            fields["method"] = method
        if items is not None:
            fields["items"] = items
        if method == "drop_off":
            weight = self.rng.randint(160, 250) / 10 if heavy else self.rng.randint(1, 140) / 10
            fields["parcel"] = {"weight_kg": weight, "dimensions_cm": [40, 30, 20]}
        return self.msg("buyer.return_requested", at, **fields)


# --- flows: (builder, now, due) -> None; `due` is a deadline time during the run -------


def cancel_unpaid(b: Builder, now: datetime, due: datetime) -> None:
    b.placed(now - 2 * HOUR)
    b.msg("buyer.cancel_requested", now - HOUR, reason="found it cheaper")
    if b.rng.random() < 0.5:  # then the warehouse ships it anyway
        b.stage(("order.cancelled", ""))
        b.msg("order.shipped", now - 30 * timedelta(minutes=1))


def cancel_free(b: Builder, now: datetime, due: datetime) -> None:
    b.placed(now - 3 * HOUR)
    b.paid(now - 2 * HOUR, probe=True)
    b.msg("buyer.cancel_requested", now - 2 * HOUR + timedelta(minutes=b.rng.randint(1, 59)),
          reason="changed my mind")


def cancel_cod(b: Builder, now: datetime, due: datetime) -> None:
    b.method = "cod"
    b.placed(now - HOUR)
    b.msg("buyer.cancel_requested", now - timedelta(minutes=b.rng.randint(1, 59)),
          reason="ordered twice")


def cancel_answered(b: Builder, now: datetime, due: datetime) -> None:
    """A request outside the free window, answered by the seller (either arrival order)."""
    if b.rng.random() < 0.3:
        b.method = "cod"
        b.placed(now - 10 * HOUR)
    else:
        b.placed(now - 10 * HOUR)
        b.paid(now - 9 * HOUR, probe=True)
    b.msg("buyer.cancel_requested", now - 5 * HOUR, reason="too slow")
    if b.rng.random() < 0.5:
        b.msg("seller.cancel_accepted", now - 2 * HOUR)
        if b.rng.random() < 0.5:
            b.stage(("order.cancelled", ""))
            b.msg("order.ready_to_ship", now - HOUR)
    else:
        b.msg("seller.cancel_rejected", now - 2 * HOUR, reason="already packed")


def cancel_silence(b: Builder, now: datetime, due: datetime) -> None:
    """No answer: auto-accepted at `due`."""
    asked = due - 48 * HOUR
    if b.rng.random() < 0.5:
        b.method = "cod"
        b.placed(asked - 3 * HOUR)
    else:
        b.placed(asked - 3 * HOUR)
        b.paid(asked - 2 * HOUR, probe=True)
    b.msg("buyer.cancel_requested", asked, reason="no longer needed")


def cancel_then_shipped(b: Builder, now: datetime, due: datetime) -> None:
    """The order ships while the request is open: rejected by the system."""
    b.placed(now - 10 * HOUR)
    b.paid(now - 9 * HOUR, probe=True)
    b.msg("buyer.cancel_requested", now - 5 * HOUR, reason="too slow")
    b.stage(("cancellation.requested", ""))
    b.fulfilled(now - 3 * HOUR, None)


def seller_cancels(b: Builder, now: datetime, due: datetime) -> None:
    if b.rng.random() < 0.3:
        b.method = "cod"
        b.placed(now - 5 * HOUR)
    else:
        b.placed(now - 5 * HOUR)
        b.paid(now - 4 * HOUR, probe=True)
    b.msg("seller.order_cancelled", now - 2 * HOUR, reason="out of stock")


def unpaid_expiry(b: Builder, now: datetime, due: datetime) -> None:
    if b.rng.random() < 0.5:
        b.placed(due - 48 * HOUR)
    else:
        b.pricing = "subsidized"
        b.placed(now - 2 * HOUR, payment_due_at=due)


def late_payment(b: Builder, now: datetime, due: datetime) -> None:
    """Paid after the unpaid expiry: cancelled by the platform, then refunded in full."""
    b.placed(now - 50 * HOUR)
    b.paid(now - HOUR)


def _paid_order(b: Builder, placed: datetime, now: datetime) -> None:
    """A prepaid order paid an hour after it was placed, long enough ago that its unpaid
    expiry is past. Today a later fact (shipment, delivery, return) applied before the
    payment fires that expiry first (docs/chaos.md, "Findings"), so either the payment
    is known before anything later is sent (probe), or the order is subsidized with a
    payment due date far ahead (then everything goes in one shuffled stage)."""
    if b.rng.random() < 0.5:
        b.pricing = "subsidized"
        b.placed(placed, payment_due_at=now + 30 * DAY)
        b.paid(placed + HOUR)
    else:
        b.placed(placed)
        b.paid(placed + HOUR, probe=True)


def _delivered_order(b: Builder, delivered: datetime, now: datetime) -> None:
    _paid_order(b, delivered - 4 * DAY, now)
    b.fulfilled(delivered - 2 * DAY, delivered)


def return_answered(b: Builder, now: datetime, due: datetime) -> None:
    """Approved or rejected by the seller; refunds on approval or on receipt."""
    asked = now - 5 * HOUR
    _delivered_order(b, asked - DAY, now)
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else b.rng.choice(("drop_off", "self_arrange"))
    b.return_request("r1", asked, kind, method, b.some_items())
    roll = b.rng.random()
    if roll < 0.25:
        b.msg("seller.return_rejected", asked + HOUR, request_id="r1", reason="used")
        return
    b.msg("seller.return_approved", asked + HOUR, request_id="r1")
    if kind == "refund_only":
        return
    if roll < 0.7:
        b.msg("seller.return_received", asked + 3 * HOUR, request_id="r1")
    elif method == "drop_off":  # the request stays approved: a label, sent by e-mail
        b.msg("buyer.label_email_requested", asked + 2 * HOUR, request_id="r1",
              email=f"buyer+{b.order_id}@example.com")


def refund_only_in_transit(b: Builder, now: datetime, due: datetime) -> None:
    """Shipped, not delivered: only refund_only is possible."""
    _paid_order(b, now - 3 * DAY, now)
    b.fulfilled(now - 2 * DAY, None)
    b.return_request("r1", now - 5 * HOUR, "refund_only", None, reason="not_received")
    b.msg("seller.return_approved", now - 4 * HOUR, request_id="r1")


def return_silence(b: Builder, now: datetime, due: datetime) -> None:
    """No answer: auto-approved at `due`."""
    asked = due - 48 * HOUR
    _delivered_order(b, asked - 2 * DAY, now)
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else b.rng.choice(("drop_off", "self_arrange"))
    if b.marketplace == "UK" and method == "self_arrange":
        method = "drop_off"  # its 5-day tracking timer would fall at no fixed distance
    b.return_request("r1", asked, kind, method, b.some_items())


def return_parcel_timers(b: Builder, now: datetime, due: datetime) -> None:
    """Approved returns whose next timer is `due`: tracking not submitted, label expired,
    or no receipt after the parcel was sent (refunded automatically)."""
    case = b.rng.choice(("tracking", "label", "receipt_tracking", "receipt_drop_off"))
    window = {"tracking": 5 * DAY, "label": 14 * DAY}.get(case, 8 * DAY)
    method = "self_arrange" if case in ("tracking", "receipt_tracking") else "drop_off"
    approved = due - window - (HOUR if case.startswith("receipt") else timedelta(0))
    _delivered_order(b, approved - 2 * DAY, now)
    b.return_request("r1", approved - DAY, "return_and_refund", method, b.some_items())
    b.msg("seller.return_approved", approved, request_id="r1")
    if case == "receipt_tracking":
        b.msg("buyer.return_tracking_submitted", due - 8 * DAY, request_id="r1",
              carrier="Royal Mail", tracking_number="RM123")
    elif case == "receipt_drop_off":
        b.msg("carrier.return_dropped_off", due - 8 * DAY, request_id="r1",
              tracking_number="EV123")


def return_rejected_final(b: Builder, now: datetime, due: datetime) -> None:
    rejected = due - 48 * HOUR
    _delivered_order(b, rejected - 3 * DAY, now)
    b.return_request("r1", rejected - DAY, "refund_only", None, b.some_items())
    b.msg("seller.return_rejected", rejected, request_id="r1", reason="no fault found")


def return_resubmitted(b: Builder, now: datetime, due: datetime) -> None:
    """Rejected, resubmitted (a new request id, the same items), answered again; a
    second rejection may be appealed."""
    asked = now - 6 * HOUR
    _delivered_order(b, asked - DAY, now)
    items = b.some_items()
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else "self_arrange"
    b.return_request("r1", asked, kind, method, items)
    b.msg("seller.return_rejected", asked + HOUR, request_id="r1", reason="no photos")
    b.stage(("return.rejected", "r1"))
    b.return_request("r2", asked + 2 * HOUR, kind, method, items)
    if b.rng.random() < 0.5:
        b.msg("seller.return_approved", asked + 3 * HOUR, request_id="r2")
        return
    b.msg("seller.return_rejected", asked + 3 * HOUR, request_id="r2", reason="still none")
    b.msg("buyer.appeal_submitted", asked + 4 * HOUR, request_id="r2", note="see photos")
    b.msg("platform.arbitration_decided", asked + 5 * HOUR, request_id="r2",
          outcome=b.rng.choice(("refund", "reject")))


def return_appealed(b: Builder, now: datetime, due: datetime) -> None:
    asked = now - 6 * HOUR
    _delivered_order(b, asked - DAY, now)
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else b.rng.choice(("drop_off", "self_arrange"))
    b.return_request("r1", asked, kind, method, b.some_items())
    b.msg("seller.return_rejected", asked + HOUR, request_id="r1", reason="worn")
    b.msg("buyer.appeal_submitted", asked + 2 * HOUR, request_id="r1")
    b.msg("platform.arbitration_decided", asked + 3 * HOUR, request_id="r1",
          outcome=b.rng.choice(("refund", "reject")))


def return_refused(b: Builder, now: datetime, due: datetime) -> None:
    """Valid messages the rules refuse: too heavy for drop-off, outside the window."""
    if b.marketplace == "UK" and b.rng.random() < 0.5:
        _delivered_order(b, now - 2 * DAY, now)
        b.return_request("r1", now - DAY, "return_and_refund", "drop_off", heavy=True)
    else:
        # return_and_refund waits for the delivery fact; a refund_only arriving before it
        # would be judged as in transit today (1.1 judges it at its event time instead).
        window = 30 if b.marketplace == "UK" else 14
        _delivered_order(b, now - (window + 2) * DAY, now)
        b.return_request("r1", now - DAY, "return_and_refund", "self_arrange")


def late_refund_only(b: Builder, now: datetime, due: datetime) -> None:
    """1.1: a refund_only that happened after the return window, arriving before the
    delivery fact, is refused (judged at its event time), whatever the arrival order."""
    window = 30 if b.marketplace == "UK" else 14
    _delivered_order(b, now - (window + 2) * DAY, now)
    b.return_request("r1", now - DAY, "refund_only", None)


# --- version 1.1 flows (contract section 6), behind --with-1.1 -------------------------


def cod_return(b: Builder, now: datetime, due: datetime) -> None:
    """1.1: a delivered cod order is paid; its return refunds what was collected."""
    b.method = "cod"
    delivered = now - 2 * DAY
    b.placed(delivered - 3 * DAY)
    b.fulfilled(delivered - DAY, delivered)
    b.return_request("r1", now - 5 * HOUR, "refund_only", None, b.some_items())
    b.msg("seller.return_approved", now - 4 * HOUR, request_id="r1")


def platform_cancel(b: Builder, now: datetime, due: datetime) -> None:
    """1.1: the platform cancels an order before delivery."""
    b.placed(now - 5 * HOUR)
    b.paid(now - 4 * HOUR, probe=True)
    b.msg("platform.order_cancelled", now - 2 * HOUR, reason="fraud check")


def self_arranged_postage(b: Builder, now: datetime, due: datetime) -> None:
    """1.1: for seller-fault reasons the buyer's postage is refunded, capped (UK 6.99)."""
    b.marketplace = "UK"
    asked = now - 6 * HOUR
    _delivered_order(b, asked - DAY, now)
    b.return_request("r1", asked, "return_and_refund", "self_arrange", reason="defective")
    b.msg("seller.return_approved", asked + HOUR, request_id="r1")
    postage = b.rng.choice(("3.50", "6.99", "9.20"))
    first = b.msg("buyer.return_tracking_submitted", asked + 2 * HOUR, request_id="r1",
                  carrier="Royal Mail", tracking_number="RM1", postage=postage)
    # The receipt must come after the tracking (either could be applied first otherwise):
    # a repeated submission, refused once the first is applied, shows it.
    second = b.msg("buyer.return_tracking_submitted", asked + 2 * HOUR + timedelta(seconds=1),
                   request_id="r1", carrier="Royal Mail", tracking_number="RM1",
                   postage=postage)
    ref = f"probe:{first['message_id']}"
    b.script.aliases.update({first["message_id"]: ref, second["message_id"]: ref})
    b.stage(("action.rejected", ref))
    b.msg("seller.return_received", asked + 3 * HOUR, request_id="r1")


Flow = Callable[[Builder, datetime, datetime], None]
FLOWS: dict[str, tuple[Flow, float]] = {  # name: (flow, weight)
    "cancel_unpaid": (cancel_unpaid, 1), "cancel_free": (cancel_free, 1),
    "cancel_cod": (cancel_cod, 0.5), "cancel_answered": (cancel_answered, 1.5),
    "cancel_silence": (cancel_silence, 1.5), "cancel_then_shipped": (cancel_then_shipped, 0.7),
    "seller_cancels": (seller_cancels, 0.7), "unpaid_expiry": (unpaid_expiry, 1.5),
    "late_payment": (late_payment, 0.5), "return_answered": (return_answered, 2),
    "refund_only_in_transit": (refund_only_in_transit, 0.5),
    "return_silence": (return_silence, 2), "return_parcel_timers": (return_parcel_timers, 2),
    "return_rejected_final": (return_rejected_final, 1),
    "return_resubmitted": (return_resubmitted, 1), "return_appealed": (return_appealed, 1),
    "return_refused": (return_refused, 0.5),
}
FLOWS_1_1: dict[str, tuple[Flow, float]] = {
    "cod_return": (cod_return, 1), "platform_cancel": (platform_cancel, 1),
    "self_arranged_postage": (self_arranged_postage, 1),
    "late_refund_only": (late_refund_only, 0.5),
}
# The gated second stage of a silence flow must be applied before its deadline: leave it
# at least this long after the start.
MIN_LEAD = timedelta(seconds=20)


def expected(script: Script, horizon: datetime) -> list[Outcome]:
    """The oracle's outcomes for `script`, refusals of probes under their probe ref."""
    outcomes = expected_outcomes(script.order_id, script.messages, horizon)
    for outcome in outcomes:
        if outcome.type == "action.rejected" and outcome.ref in script.aliases:
            outcome.ref = script.aliases[outcome.ref]
            outcome.data.pop("message_id")
    return outcomes


def generate(orders: int, seed: int, now: datetime, spread: timedelta,
             lead: timedelta = MIN_LEAD, with_1_1: bool = False) -> list[Script]:
    """`orders` scripts; deadlines meant to fire during the run are due in
    [now + lead, now + lead + spread]."""
    rng = random.Random(seed)
    flows = dict(FLOWS, **(FLOWS_1_1 if with_1_1 else {}))
    names = sorted(flows)
    weights = [flows[name][1] for name in names]
    scripts = []
    for index in range(orders):
        name = rng.choices(names, weights)[0]
        marketplace = "UK" if rng.random() < 0.4 else "US"
        order_id = f"c{seed}-{index:05d}-{name}"
        builder = Builder(random.Random(rng.getrandbits(64)), order_id, name, marketplace)
        due = now + lead + spread * rng.random()
        if marketplace == "UK" and name == "return_silence":
            # Business hours put the answer deadline days later: keep it before the run.
            due = now - DAY * rng.randint(4, 6)
        flows[name][0](builder, now, due.replace(microsecond=0))
        if not builder.script.stages[-1]:
            builder.script.stages.pop()
            builder.script.gates.pop()
        scripts.append(builder.script)
    return scripts
