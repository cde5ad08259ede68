"""The workload's flows: one function per way an order can go (tests/chaos/script.py
explains stages, gates and probes). Each takes the builder, the run's start `now` and
`due`, a time during the run at which the flow's deadline (if it has one) comes due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tests.chaos.script import DAY, HOUR, Builder

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
    b.msg(
        "buyer.cancel_requested",
        now - 2 * HOUR + timedelta(minutes=b.rng.randint(1, 59)),
        reason="changed my mind",
    )


def cancel_cod(b: Builder, now: datetime, due: datetime) -> None:
    b.method = "cod"
    b.placed(now - HOUR)
    b.msg(
        "buyer.cancel_requested",
        now - timedelta(minutes=b.rng.randint(1, 59)),
        reason="ordered twice",
    )


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
        b.msg(
            "buyer.label_email_requested",
            asked + 2 * HOUR,
            request_id="r1",
            email=f"buyer+{b.order_id}@example.com",
        )


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
        b.msg(
            "buyer.return_tracking_submitted",
            due - 8 * DAY,
            request_id="r1",
            carrier="Royal Mail",
            tracking_number="RM123",
        )
    elif case == "receipt_drop_off":
        b.msg("carrier.return_dropped_off", due - 8 * DAY, request_id="r1", tracking_number="EV123")


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
    b.msg(
        "platform.arbitration_decided",
        asked + 5 * HOUR,
        request_id="r2",
        outcome=b.rng.choice(("refund", "reject")),
    )


def return_appealed(b: Builder, now: datetime, due: datetime) -> None:
    asked = now - 6 * HOUR
    _delivered_order(b, asked - DAY, now)
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else b.rng.choice(("drop_off", "self_arrange"))
    b.return_request("r1", asked, kind, method, b.some_items())
    b.msg("seller.return_rejected", asked + HOUR, request_id="r1", reason="worn")
    b.msg("buyer.appeal_submitted", asked + 2 * HOUR, request_id="r1")
    b.msg(
        "platform.arbitration_decided",
        asked + 3 * HOUR,
        request_id="r1",
        outcome=b.rng.choice(("refund", "reject")),
    )


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
    """1.1: a refund_only that happened after the return window is refused (judged at its
    event time against the delivery). It is sent once the delivery is known (a late
    return_and_refund, which waits for the delivery, has been refused): arriving before
    the delivery fact it would be taken for a parcel in transit and published, and a
    published outcome is never undone (contract 1.1, event time's exception)."""
    window = 30 if b.marketplace == "UK" else 14
    _delivered_order(b, now - (window + 2) * DAY, now)
    first = b.return_request("r0", now - DAY - HOUR, "return_and_refund", "self_arrange")
    b.stage(("action.rejected", first["message_id"]))
    b.return_request("r1", now - DAY, "refund_only", None)


# --- version 1.1 flows (docs/rules.md; behind --with-1.1 before 1.2) -------------------


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
    first = b.msg(
        "buyer.return_tracking_submitted",
        asked + 2 * HOUR,
        request_id="r1",
        carrier="Royal Mail",
        tracking_number="RM1",
        postage=postage,
    )
    # The receipt must come after the tracking (either could be applied first otherwise):
    # a repeated submission, refused once the first is applied, shows it.
    second = b.msg(
        "buyer.return_tracking_submitted",
        asked + 2 * HOUR + timedelta(seconds=1),
        request_id="r1",
        carrier="Royal Mail",
        tracking_number="RM1",
        postage=postage,
    )
    ref = f"probe:{first['message_id']}"
    b.script.aliases.update({first["message_id"]: ref, second["message_id"]: ref})
    b.stage(("action.rejected", ref))
    b.msg("seller.return_received", asked + 3 * HOUR, request_id="r1")


# --- version 1.2 flows (contract section 7, docs/rules.md) ----------------------------


def cod_cancelled_delivered(b: Builder, now: datetime, due: datetime) -> None:
    """1.2: a cod order cancelled (by the platform or the seller); the parcel goes anyway
    (its shipment is refused `order_cancelled`) and the courier collects the cash on
    delivery, which goes back (refund.initiated, request_id null), in any arrival order."""
    b.method = "cod"
    b.placed(now - 3 * DAY)
    if b.rng.random() < 0.5:
        b.msg("platform.order_cancelled", now - 2 * DAY, reason="address fraud")
    else:
        b.msg("seller.order_cancelled", now - 2 * DAY, reason="out of stock")
    b.stage(("order.cancelled", ""))
    b.fulfilled(now - DAY, now - 5 * HOUR)


def _two_skus(b: Builder) -> None:
    b.items = [
        {"sku": "sku-A", "quantity": 2, "unit_price": "12.50", "weight_kg": 0.5,
         "dimensions_cm": [20, 15, 5]},
        {"sku": "sku-B", "quantity": 1, "unit_price": "30.00", "weight_kg": 0.8,
         "dimensions_cm": [20, 15, 5]},
    ]  # fmt: skip


def rejections_per_unit(b: Builder, now: datetime, due: datetime) -> None:
    """1.2, the issue's order: A x2 rejected; A x2 + B x1 rejected; then B alone is B's
    resubmission (rejected once), A alone is refused `resubmission_used`."""
    _two_skus(b)
    asked = now - 8 * HOUR
    _delivered_order(b, asked - DAY, now)
    a2, b1 = {"sku": "sku-A", "quantity": 2}, {"sku": "sku-B", "quantity": 1}
    b.return_request("r1", asked, "refund_only", None, [a2], reason="changed_mind")
    b.msg("seller.return_rejected", asked + HOUR, request_id="r1", reason="used")
    b.stage(("return.rejected", "r1"))
    b.return_request("r2", asked + 2 * HOUR, "refund_only", None, [a2, b1], reason="changed_mind")
    b.msg("seller.return_rejected", asked + 3 * HOUR, request_id="r2", reason="still used")
    b.stage(("return.rejected", "r2"))
    b.return_request("r3", asked + 4 * HOUR, "refund_only", None, [b1], reason="changed_mind")
    b.stage(("return.requested", "r3"))
    b.return_request("r4", asked + 5 * HOUR, "refund_only", None, [a2], reason="changed_mind")
    if b.rng.random() < 0.5:
        b.msg("seller.return_approved", asked + 6 * HOUR, request_id="r3")


def onboarded_order(b: Builder, now: datetime, due: datetime) -> None:
    """1.2: an order never seen, placed 61 days ago (a marketplace onboarding its open
    orders): a new order, not `order_expired`; its return inside the window is answered."""
    b.marketplace = "UK"
    placed = now - 61 * DAY
    b.placed(placed)
    b.paid(placed + HOUR, probe=True)
    b.fulfilled(now - 59 * DAY, now - 20 * DAY)
    b.return_request("r1", now - 2 * DAY, "refund_only", None, b.some_items(), reason="damaged")
    b.msg("seller.return_approved", now - DAY, request_id="r1")


def reshipment(b: Builder, now: datetime, due: datetime) -> None:
    """1.2: a reshipment approved then sent again in time, or never sent: refunded when
    the replacement window ends (`due`, in the run); or refused for a buyer's reason."""
    b.marketplace = "US"  # calendar time: the window's end can be put in the run
    roll = b.rng.random()
    if roll < 0.2:  # a buyer's-choice reason: refused
        _delivered_order(b, now - 2 * DAY, now)
        b.return_request("r1", now - DAY, "reshipment", None, reason=b.reason(False))
        return
    approved = due - 2 * DAY if roll < 0.6 else now - 5 * HOUR
    _delivered_order(b, approved - 2 * DAY, now)
    b.return_request("r1", approved - DAY, "reshipment", None, b.some_items(), b.reason(True))
    b.msg("seller.return_approved", approved, request_id="r1")
    if roll >= 0.6:
        extra = {"carrier": "DHL"} if b.rng.random() < 0.5 else {}
        b.msg("seller.replacement_shipped", approved + HOUR, request_id="r1",
              tracking_number="RS-1", **extra)  # fmt: skip


def exchange(b: Builder, now: datetime, due: datetime) -> None:
    """1.2: an exchange: the units go back, then the replacement is sent from the receipt
    (in time, or never: refunded as the return it was when the window ends, `due`)."""
    b.marketplace = "US"
    received = due - 2 * DAY
    _delivered_order(b, received - 4 * DAY, now)
    method = b.rng.choice(("drop_off", "self_arrange"))
    b.return_request("r1", received - 3 * DAY, "exchange", method, b.some_items(), b.reason(True))
    b.msg("seller.return_approved", received - 3 * DAY + HOUR, request_id="r1")
    # The receipt must come after the parcel is on its way (a receipt first would end the
    # return leg): the scan or tracking is sent twice, and the second's refusal
    # (`already_shipped_back`) opens the next stage, as in self_arranged_postage.
    sent = []
    for second in (0, 1):
        at = received - 2 * DAY + timedelta(seconds=second)
        if method == "drop_off":
            sent.append(b.msg("carrier.return_dropped_off", at, request_id="r1",
                              tracking_number="EV-1"))  # fmt: skip
        else:
            sent.append(b.msg("buyer.return_tracking_submitted", at, request_id="r1",
                              carrier="Royal Mail", tracking_number="RM-1"))  # fmt: skip
    ref = f"probe:{sent[0]['message_id']}"
    b.script.aliases.update({m["message_id"]: ref for m in sent})
    b.stage(("action.rejected", ref))
    b.msg("seller.return_received", received, request_id="r1")
    if b.rng.random() < 0.5:
        b.msg("seller.replacement_shipped", received + HOUR, request_id="r1",
              tracking_number="EX-1")  # fmt: skip


def offer(b: Builder, now: datetime, due: datetime) -> None:
    """1.2: the seller's offer (partial refund, reshipment or exchange) accepted,
    declined, or left unanswered until it lapses (`due`, in the run)."""
    b.marketplace = "US"
    answer = b.rng.choice(("accepted", "declined", "lapsed"))
    made = due - DAY if answer == "lapsed" else now - 6 * HOUR
    _delivered_order(b, made - 2 * DAY, now)
    kind = b.rng.choice(("refund_only", "return_and_refund"))
    method = None if kind == "refund_only" else "self_arrange"
    b.return_request("r1", made - 5 * HOUR, kind, method, b.some_items(), b.reason(True))
    offered = b.rng.choice(("partial_refund", "reshipment", "exchange"))
    if offered == "exchange" and kind == "refund_only":
        offered = "reshipment"
    fields = {"amount": "1.00"} if offered == "partial_refund" else {}
    b.msg("seller.offer_made", made, request_id="r1", offer=offered, **fields)
    if answer != "lapsed":
        b.msg(f"buyer.offer_{answer}", made + HOUR, request_id="r1")
    if answer == "accepted" and offered == "reshipment" and b.rng.random() < 0.5:
        b.msg("seller.replacement_shipped", made + 2 * HOUR, request_id="r1",
              tracking_number="RS-2")  # fmt: skip


Flow = Callable[[Builder, datetime, datetime], None]
FLOWS: dict[str, tuple[Flow, float]] = {  # name: (flow, weight)
    "cancel_unpaid": (cancel_unpaid, 1),
    "cancel_free": (cancel_free, 1),
    "cancel_cod": (cancel_cod, 0.5),
    "cancel_answered": (cancel_answered, 1.5),
    "cancel_silence": (cancel_silence, 1.5),
    "cancel_then_shipped": (cancel_then_shipped, 0.7),
    "seller_cancels": (seller_cancels, 0.7),
    "unpaid_expiry": (unpaid_expiry, 1.5),
    "late_payment": (late_payment, 0.5),
    "return_answered": (return_answered, 2),
    "refund_only_in_transit": (refund_only_in_transit, 0.5),
    "return_silence": (return_silence, 2),
    "return_parcel_timers": (return_parcel_timers, 2),
    "return_rejected_final": (return_rejected_final, 1),
    "return_resubmitted": (return_resubmitted, 1),
    "return_appealed": (return_appealed, 1),
    "return_refused": (return_refused, 0.5),
    # 1.1 (behind --with-1.1 before 1.2)
    "cod_return": (cod_return, 1),
    "platform_cancel": (platform_cancel, 1),
    "self_arranged_postage": (self_arranged_postage, 1),
    "late_refund_only": (late_refund_only, 0.5),
    # 1.2
    "cod_cancelled_delivered": (cod_cancelled_delivered, 0.7),
    "rejections_per_unit": (rejections_per_unit, 0.7),
    "onboarded_order": (onboarded_order, 0.5),
    "reshipment": (reshipment, 1.5),
    "exchange": (exchange, 1.5),
    "offer": (offer, 2),
}
