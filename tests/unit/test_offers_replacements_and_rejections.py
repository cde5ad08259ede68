"""Rules at their edges: cash collected for a cancelled order,
rejections counted per unit, reshipment and exchange requests, the seller's offer."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.orders import SECOND, SHIPPED
from tests.support.timeline import Timeline
from worker.rules import units

# --- 1.2 a: a cancelled cash-on-delivery parcel delivered anyway -----------------------


def cancelled_after_shipping(payment_method: str) -> tuple[Timeline, str]:
    """Shipped, then cancelled by customer service (the parcel is to be stopped)."""
    msg = f.order_placed(payment_method=payment_method)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg)
    if payment_method == "prepaid":
        timeline.send(f.paid(oid, T0 + hours(1)))
    timeline.send(f.shipped(oid, SHIPPED, tracking_number="TRK-1"))
    cancel = f.message("platform.order_cancelled", oid, SHIPPED + hours(1), reason="fraud")
    timeline.send(cancel)
    return timeline, oid


@pytest.mark.parametrize(
    ("payment_method", "refunds", "codes"),
    [("cod", ["54.99"], []), ("prepaid", ["54.99"], ["order_cancelled"])],
    ids=["cod: the collected cash goes back", "prepaid: refunded at the cancellation"],
)
def test_delivery_of_a_cancelled_order(
    payment_method: str, refunds: list[str], codes: list[str]
) -> None:
    timeline, oid = cancelled_after_shipping(payment_method)
    cancelled = timeline.one("order.cancelled")
    assert (cancelled.refund is None) is (payment_method == "cod")
    assert cancelled.stop_shipment is not None
    timeline.send(f.delivered(oid, SHIPPED + days(2)))
    assert timeline.refunded() == refunds
    assert timeline.codes() == codes


def test_cod_cash_collected_after_a_cancellation_is_refunded_like_a_late_payment() -> None:
    timeline, oid = cancelled_after_shipping("cod")
    timeline.send(f.delivered(oid, SHIPPED + days(2)))
    refund = timeline.one("refund.initiated")
    assert refund.request_id is None
    assert (str(refund.breakdown.items), str(refund.breakdown.shipping_fee)) == ("50.00", "4.99")
    assert str(refund.amount) == "54.99"
    assert timeline.state.cancellation is not None
    assert str(timeline.state.cancellation.refund) == "54.99"
    # The courier cannot collect twice: a second delivery fact refunds nothing more.
    timeline.send(f.delivered(oid, SHIPPED + days(3)))
    assert timeline.refunded() == ["54.99"] and timeline.codes() == []
    # And a return request of the cancelled order is still refused.
    timeline.send(f.return_requested(oid, SHIPPED + days(3) + SECOND, kind="refund_only"))
    assert timeline.codes() == ["order_cancelled"]


@pytest.mark.parametrize(
    "delivered_at",
    [SHIPPED + hours(1) - SECOND, SHIPPED + hours(1) + SECOND],
    ids=["delivered a second before the cancellation", "a second after"],
)
def test_cod_delivery_at_the_cancellation_edge(delivered_at: datetime) -> None:
    """Whichever side of the published cancellation the delivery happened, the
    cancellation stands (a published outcome is never undone) and the cash goes back."""
    msg = f.order_placed(payment_method="cod")
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.shipped(oid, SHIPPED))
    cancel = f.message("platform.order_cancelled", oid, SHIPPED + hours(1), reason="fraud")
    timeline.send(cancel)
    timeline.send(f.delivered(oid, delivered_at))
    refunds = timeline.of("refund.initiated")
    assert [str(r.amount) for r in refunds] == ["54.99"]
    assert all(r.request_id is None for r in refunds)


def test_a_cod_order_that_never_shipped_is_refunded_what_the_courier_collected() -> None:
    """The shipment was refused (`order_cancelled`) yet the parcel went and was paid for."""
    msg = f.order_placed(payment_method="cod")
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.seller_cancelled(oid, T0 + hours(2)))
    timeline.send(f.shipped(oid, T0 + hours(3)), f.delivered(oid, T0 + days(2)))
    assert timeline.codes() == ["order_cancelled"]  # the shipment: stop it
    assert timeline.refunded() == ["54.99"]


# --- 1.2 b: rejections counted per unit ----------------------------------------------

A2, B1, A1 = (
    [{"sku": "A", "quantity": 2}],
    [{"sku": "B", "quantity": 1}],
    [{"sku": "A", "quantity": 1}],
)
DELIVERED = T0 + days(3)


def two_sku_order() -> tuple[Timeline, str]:
    """A x2 at 10.00 and B x1 at 25.50, delivered."""
    msg = f.order_placed(items=[f.item("A", 2, "10.00"), f.item("B", 1, "25.50")])
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, DELIVERED))
    return timeline, oid


def ask_and_reject(
    timeline: Timeline, at: datetime, items: list[dict[str, object]], rid: str
) -> None:
    oid = timeline.order_id
    timeline.send(
        f.return_requested(oid, at, request_id=rid, kind="refund_only", reason="changed_mind",
                           items=items),
        f.return_rejected(oid, rid, at + hours(1)),
    )  # fmt: skip


def the_issues_scenario() -> tuple[Timeline, str]:
    """A x2 rejected; resubmitted as A x2 + B x1 (B never asked before), rejected too."""
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), A2, "r1")
    ask_and_reject(timeline, DELIVERED + hours(3), [*A2, *B1], "r2")
    return timeline, oid


def test_the_issues_scenario_b_rejected_once_may_be_asked_again() -> None:
    timeline, oid = the_issues_scenario()
    assert [e.can_resubmit for e in timeline.of("return.rejected")] == [True, True]
    second = timeline.state.returns["r2"]
    assert (second.attempt, second.previous_request_id) == (2, "r1")
    assert units.second_tries(timeline.state, second) == {"A": 2}
    # r1 gave all its units (superseded): it tells them, as before 1.2; none stored
    assert timeline.state.returns["r1"].status == "superseded" and second.second_tries is None
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(5), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == []
    # B's request took B over; A's two units (rejected twice) stay with r2: appeal only.
    assert timeline.state.returns["r2"].status == "rejected"
    assert [(s.sku, s.quantity) for s in timeline.state.returns["r2"].items] == [("A", 2)]
    assert timeline.state.returns["r3"].attempt == 2
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(6), request_id="r4", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_used"]
    # r3 rejected: B now rejected twice, nothing left to resubmit.
    timeline.send(f.return_rejected(oid, "r3", DELIVERED + hours(7)))
    assert timeline.of("return.rejected")[-1].can_resubmit is False
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(8), request_id="r5", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_used", "resubmission_used"]


@pytest.mark.parametrize(
    ("after_rejection", "codes"),
    [(hours(48) - SECOND, []), (hours(48), ["return_refused"])],
    ids=["a second inside the resubmit window", "at its end: B finally refused"],
)
def test_a_unit_rejected_once_is_asked_again_within_its_requests_resubmit_window(
    after_rejection: object, codes: list[str]
) -> None:
    timeline, oid = the_issues_scenario()
    rejected_at = DELIVERED + hours(4)
    timeline.send(
        f.return_requested(oid, rejected_at + after_rejection, request_id="r3",  # type: ignore[operator]
                           kind="refund_only", reason="changed_mind", items=B1),
    )  # fmt: skip
    assert timeline.codes() == codes


def test_a_resubmission_after_the_return_window_may_ask_for_units_rejected_once_only() -> None:
    timeline, oid = two_sku_order()
    end = DELIVERED + days(30)  # UK return window (no clock change in March 5 - April 4)
    ask_and_reject(timeline, end - hours(2), A1, "r1")  # rejected at end - 1 h
    timeline.send(
        f.return_requested(oid, end + hours(1), request_id="r2", kind="refund_only",
                           reason="changed_mind", items=[*A1, *B1]),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_adds_items"]
    timeline.send(
        f.return_requested(oid, end + hours(1), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_adds_items"]
    assert timeline.state.returns["r3"].attempt == 2


def test_units_rejected_once_in_two_requests_are_asked_again_together() -> None:
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), A1, "r1")
    ask_and_reject(timeline, DELIVERED + hours(3), B1, "r2")
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(5), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=[*A1, *B1]),
    )  # fmt: skip
    # A x1 is free (never asked): a new unit; the B unit is r2's, asked again.
    assert timeline.codes() == []
    returns = timeline.state.returns
    assert (returns["r1"].status, returns["r2"].status) == ("rejected", "superseded")
    assert units.second_tries(timeline.state, returns["r3"]) == {"B": 1}
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(6), request_id="r4", kind="refund_only",
                           reason="changed_mind", items=A1),
    )  # fmt: skip
    # r1's A unit, asked again: r1 is superseded and r4 waits for the seller.
    assert timeline.codes() == [] and returns["r1"].status == "rejected"
    assert timeline.state.returns["r1"].status == "superseded"


def test_units_left_in_a_rejected_request_close_rejected_final_or_can_be_appealed() -> None:
    timeline, oid = two_sku_order()
    ask_and_reject(timeline, DELIVERED + hours(1), [*A2, *B1], "r1")
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(3), request_id="r2", kind="refund_only",
                           reason="changed_mind", items=B1),
    )  # fmt: skip
    assert [(s.sku, s.quantity) for s in timeline.state.returns["r1"].items] == [("A", 2)]
    timeline.send(f.appeal_submitted(oid, "r1", DELIVERED + hours(4)))
    timeline.send(f.arbitration_decided(oid, "r1", "refund", DELIVERED + hours(5)))
    refund = timeline.one("refund.initiated")
    assert (refund.request_id, str(refund.amount)) == ("r1", "20.00")  # the A units only


# --- 1.2: reshipment and exchange requests -------------------------------------------

US = {"marketplace": "US", "currency": "USD"}
US_DELIVERED = T0 + days(3)  # calendar time, 14-day window, no caps (built-in default)


def us_order(**overrides: object) -> tuple[Timeline, str]:
    """A delivered US order: 20.00 + 2 x 15.00, fee 4.99 (factories' default items)."""
    msg = f.order_placed(**US, **overrides)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, US_DELIVERED))
    return timeline, oid


def request(
    timeline: Timeline, kind: str, at: datetime, reason: str = "damaged", **fields: object
) -> str:
    """A request of `kind` for the whole order (or `items`); a method where the kind has
    a return leg (self_arrange unless given)."""
    if kind in ("return_and_refund", "exchange"):
        fields.setdefault("method", "self_arrange")
    rid = f.new_id("r")
    timeline.send(
        f.message(
            "buyer.return_requested", timeline.order_id, at, request_id=rid, kind=kind,
            reason=reason, **fields,
        )
    )  # fmt: skip
    return rid


@pytest.mark.parametrize(
    ("kind", "reason", "outcome"),
    [
        ("reshipment", "damaged", "return.requested"),
        ("reshipment", "missing_items", "return.requested"),
        ("exchange", "wrong_item", "return.requested"),
        ("reshipment", "changed_mind", "kind_not_allowed"),
        ("exchange", "no_longer_needed", "kind_not_allowed"),
        ("exchange", "ordered_by_mistake", "kind_not_allowed"),
        ("return_and_refund", "changed_mind", "return.requested"),
    ],
)
def test_reshipment_and_exchange_are_for_seller_fault_reasons_only(
    kind: str, reason: str, outcome: str
) -> None:
    timeline, _ = us_order()
    request(timeline, kind, US_DELIVERED + hours(1), reason=reason)
    assert (timeline.codes() or [timeline.types()[-1]]) == [outcome]


def test_an_exchange_needs_a_method_and_a_reshipment_takes_none() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="method is required when kind is 'exchange'"):
        f.message(
            "buyer.return_requested", "o-1", request_id="r", kind="exchange", reason="damaged"
        )
    with pytest.raises(ValidationError, match="method applies only"):
        f.message(
            "buyer.return_requested", "o-1", request_id="r", kind="reshipment",
            reason="damaged", method="drop_off",
        )  # fmt: skip


def test_a_reshipment_before_delivery_waits_for_it_and_is_refused_if_it_happened_before() -> None:
    msg = f.order_placed(**US)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    request(timeline, "reshipment", US_DELIVERED - SECOND)
    assert timeline.types() == []  # held for the delivery
    timeline.send(f.delivered(oid, US_DELIVERED))
    assert timeline.codes() == ["not_delivered"]


@pytest.mark.parametrize(
    ("shipped_after", "outcome"),
    [(days(2) - SECOND, "replacement.shipped"), (days(2), "refund.initiated")],
    ids=["a second before the window ends", "at its end: refunded first"],
)
def test_an_approved_reshipment_waits_for_the_replacement_then_refunds(
    shipped_after: object, outcome: str
) -> None:
    timeline, oid = us_order()
    asked = US_DELIVERED + hours(1)
    rid = request(
        timeline,
        "reshipment",
        asked,
        items=[{"sku": timeline.state.order.items[0].sku, "quantity": 1}],
    )  # type: ignore[union-attr]
    approved = asked + hours(2)
    timeline.send(f.return_approved(oid, rid, approved))
    assert timeline.state.returns[rid].status == "replacing"
    assert timeline.deadline("replacement_ship", rid).due_at == approved + days(2)  # type: ignore[union-attr]
    shipped = f.message(
        "seller.replacement_shipped", oid, approved + shipped_after,  # type: ignore[operator]
        request_id=rid, tracking_number="RS-1", carrier="DHL",
    )  # fmt: skip
    timeline.send(shipped)
    assert outcome in timeline.types()
    if outcome == "replacement.shipped":
        data = timeline.one("replacement.shipped")
        assert (data.kind, data.carrier, data.tracking_number) == ("reshipment", "DHL", "RS-1")
        assert timeline.state.returns[rid].status == "replaced" and not timeline.state.deadlines
        assert timeline.refunded() == []
    else:  # as a refund_only of the units: 20.00, no fee (not every unit), nothing deducted
        assert timeline.refunded() == ["20.00"]
        assert timeline.codes() == ["request_not_open"]


def test_uk_replacement_window_counts_business_days_like_the_answer_window() -> None:
    msg = f.order_placed()  # UK
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, T0 + days(3)))  # Thursday
    rid = request(timeline, "reshipment", T0 + days(3) + hours(1))
    friday = T0 + days(4)  # Friday 6 March 2026, 10:00 UTC (10:00 London)
    timeline.send(f.return_approved(oid, rid, friday))
    assert timeline.deadline("replacement_ship", rid).due_at == friday + days(4)  # type: ignore[union-attr]  # Tuesday 10:00


@pytest.mark.parametrize("receipt", ["seller", "timer"])
def test_an_exchange_returns_the_units_then_waits_for_the_replacement_from_the_receipt(
    receipt: str,
) -> None:
    timeline, oid = us_order()
    asked = US_DELIVERED + hours(1)
    rid = request(timeline, "exchange", asked, reason="defective")
    timeline.send(f.return_approved(oid, rid, asked + hours(1)))
    sent = asked + hours(2)
    timeline.send(f.tracking_submitted(oid, rid, sent, postage="3.10"))
    if receipt == "seller":
        received = sent + days(1)
        timeline.send(f.return_received(oid, rid, received))
    else:
        received = sent + days(8)
        timeline.advance(received)
    assert timeline.refunded() == [] and timeline.state.returns[rid].status == "replacing"
    assert timeline.deadline("replacement_ship", rid).due_at == received + days(2)  # type: ignore[union-attr]
    timeline.advance(received + days(2))
    # No replacement: refunded as the return_and_refund it was (the seller pays the
    # postage of a seller-fault return back; every unit, so the fee too).
    refund = timeline.one("refund.initiated")
    assert (str(refund.amount), str(refund.breakdown.return_shipping_refund)) == ("58.09", "3.10")


def test_an_exchanges_replacement_before_its_receipt_waits_for_the_receipt() -> None:
    """Sent from the receipt (contract 7): one that comes first is held until it, so the
    outcome does not depend on which arrives first."""
    timeline, oid = us_order()
    rid = request(timeline, "exchange", US_DELIVERED + hours(1), method="drop_off")
    timeline.send(f.return_approved(oid, rid, US_DELIVERED + hours(2)))
    timeline.send(
        f.message("seller.replacement_shipped", oid, US_DELIVERED + hours(5),
                  request_id=rid, tracking_number="EX-1")
    )  # fmt: skip
    assert "replacement.shipped" not in timeline.types() and timeline.state.parked
    timeline.send(f.dropped_off(oid, rid, US_DELIVERED + hours(3)))
    timeline.send(f.return_received(oid, rid, US_DELIVERED + hours(4)))
    assert timeline.one("replacement.shipped").kind == "exchange"
    assert timeline.state.returns[rid].status == "replaced" and not timeline.state.deadlines
    assert timeline.codes() == [] and timeline.refunded() == []


def test_a_replacement_for_a_refund_request_is_refused_and_units_replaced_are_settled() -> None:
    timeline, oid = us_order()
    rid = request(timeline, "refund_only", US_DELIVERED + hours(1))
    timeline.send(f.return_approved(oid, rid, US_DELIVERED + hours(1.5)))
    timeline.send(f.message("seller.replacement_shipped", oid, US_DELIVERED + hours(2),
                            request_id=rid, tracking_number="X"))  # fmt: skip
    assert timeline.codes() == ["not_a_replacement"]
    other, oid2 = us_order()
    rid2 = request(other, "reshipment", US_DELIVERED + hours(1))
    other.send(f.return_approved(oid2, rid2, US_DELIVERED + hours(2)))
    other.send(f.message("seller.replacement_shipped", oid2, US_DELIVERED + hours(3),
                         request_id=rid2, tracking_number="Y"))  # fmt: skip
    request(other, "refund_only", US_DELIVERED + hours(4))
    assert other.codes() == ["already_replaced"]


# --- 1.2: the seller's offer -----------------------------------------------------------


def offered(
    offer: str = "partial_refund", amount: str | None = "12.00", kind: str = "return_and_refund"
) -> tuple[Timeline, str, str, datetime]:
    timeline, oid = us_order()
    asked = US_DELIVERED + hours(1)
    rid = request(timeline, kind, asked)
    made = asked + hours(5)
    fields: dict[str, object] = {"request_id": rid, "offer": offer}
    if amount is not None:
        fields["amount"] = amount
    timeline.send(f.message("seller.offer_made", oid, made, **fields))
    return timeline, oid, rid, made


def answer(timeline: Timeline, rid: str, at: datetime, accepted: bool = True) -> None:
    kind = "buyer.offer_accepted" if accepted else "buyer.offer_declined"
    timeline.send(f.message(kind, timeline.order_id, at, request_id=rid))


def test_an_offer_stops_the_sellers_answer_window_and_gives_the_buyer_a_day() -> None:
    timeline, _, rid, made = offered()
    data = timeline.one("offer.made")
    assert (data.offer, str(data.amount.amount), data.respond_by) == (
        "partial_refund",
        "12.00",
        made + days(1),
    )
    assert timeline.deadline("return_response", rid) is None
    assert timeline.deadline("offer_response", rid).due_at == made + days(1)  # type: ignore[union-attr]
    # The seller's old answer window passes: nothing is approved while the offer is open.
    timeline.advance(made + hours(23))
    assert "return.auto_approved" not in timeline.types()


@pytest.mark.parametrize(
    ("after", "outcome"),
    [(days(1) - SECOND, "accepted"), (days(1), "lapsed")],
    ids=["accepted a second before respond_by", "at respond_by: lapsed first"],
)
def test_a_partial_refund_accepted_in_time_is_paid_and_closes_the_request(
    after: object, outcome: str
) -> None:
    timeline, _, rid, made = offered()
    answer(timeline, rid, made + after)  # type: ignore[operator]
    if outcome == "accepted":
        refund = timeline.one("refund.initiated")
        assert (refund.request_id, str(refund.amount), str(refund.breakdown.items)) == (
            rid,
            "12.00",
            "12.00",
        )
        closed = timeline.one("return.closed")
        assert closed.reason == "offer_accepted"
        assert timeline.types()[-2:] == ["refund.initiated", "return.closed"]
        assert not timeline.state.deadlines
    else:
        lapsed = timeline.one("offer.lapsed")
        assert (lapsed.deadline, lapsed.respond_by) == (made + days(1), made + days(3))
        assert timeline.codes() == ["request_not_open"] and timeline.refunded() == []
        assert timeline.deadline("return_response", rid).due_at == made + days(3)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("amount", "code"),
    [("54.99", None), ("55.00", "offer_too_high"), ("0.01", None)],
    ids=["exactly what the request would refund", "a cent more", "a cent"],
)
def test_a_partial_refund_is_never_more_than_the_request_would_refund(
    amount: str, code: str | None
) -> None:
    timeline, _, rid, _ = offered(amount=amount)  # the whole order: 50.00 + fee 4.99
    assert timeline.codes() == ([code] if code else [])
    assert (timeline.state.returns[rid].status == "offered") is (code is None)


@pytest.mark.parametrize(
    ("amount", "code"),
    [("52.00", None), ("52.01", "offer_too_high")],
    ids=["the refund less the label", "a cent more"],
)
def test_a_buyer_paid_return_caps_the_partial_refund_at_the_refund_less_the_deduction(
    amount: str, code: str | None
) -> None:
    """A buyer's-choice drop-off return (UK): the request would refund 54.99 less the
    2.99 label the buyer pays, so 52.00 is the most a partial refund may be."""
    msg = f.order_placed()
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, DELIVERED))
    timeline.send(f.return_requested(oid, DELIVERED + hours(1), request_id="r1",
                                     reason="changed_mind", method="drop_off"))  # fmt: skip
    assert str(timeline.state.returns["r1"].return_cost) == "2.99"
    assert timeline.state.returns["r1"].payer == "buyer"
    timeline.send(f.message("seller.offer_made", oid, DELIVERED + hours(2), request_id="r1",
                            offer="partial_refund", amount=amount))  # fmt: skip
    assert timeline.codes() == ([code] if code else [])
    if code is None:
        answer(timeline, "r1", DELIVERED + hours(3))
        assert timeline.refunded() == [amount]


def test_a_declined_offer_puts_the_request_back_with_the_seller_for_a_full_window() -> None:
    timeline, oid, rid, made = offered()
    declined_at = made + hours(3)
    answer(timeline, rid, declined_at, accepted=False)
    data = timeline.one("offer.declined")
    assert data.respond_by == declined_at + hours(48)
    assert timeline.state.returns[rid].status == "requested"
    # One offer per request; then the seller answers (or the window approves).
    timeline.send(f.message("seller.offer_made", oid, declined_at + hours(1), request_id=rid,
                            offer="reshipment"))  # fmt: skip
    assert timeline.codes() == ["offer_already_made"]
    timeline.advance(declined_at + hours(48))
    assert timeline.one("return.auto_approved").deadline == declined_at + hours(48)


def test_the_seller_cannot_answer_while_its_offer_is_open() -> None:
    timeline, oid, rid, made = offered()
    timeline.send(f.return_approved(oid, rid, made + hours(1)))
    timeline.send(f.return_rejected(oid, rid, made + hours(1)))
    assert timeline.codes() == ["offer_open", "offer_open"]


@pytest.mark.parametrize("offer", ["reshipment", "exchange"])
def test_an_accepted_reshipment_or_exchange_offer_continues_as_that_kind_approved(
    offer: str,
) -> None:
    timeline, _oid, rid, made = offered(offer=offer, amount=None)
    answer(timeline, rid, made + hours(2))
    request_ = timeline.state.returns[rid]
    assert (request_.kind, request_.payer, request_.approved_by) == (offer, "seller", "seller")
    assert timeline.one("return.approved").by == "seller"
    if offer == "reshipment":
        assert request_.status == "replacing"
        assert timeline.deadline("replacement_ship", rid).due_at == made + hours(2) + days(2)  # type: ignore[union-attr]
    else:  # the units go back first, as the return was to
        assert request_.status == "approved" and timeline.deadline("tracking", rid) is not None


@pytest.mark.parametrize(
    ("kind", "offer", "code"),
    [
        ("refund_only", "exchange", "offer_not_allowed"),  # nothing would go back
        ("reshipment", "reshipment", "offer_not_allowed"),  # its own kind: approve it
        ("refund_only", "reshipment", None),
        ("reshipment", "partial_refund", None),
    ],
)
def test_which_offers_a_request_takes(kind: str, offer: str, code: str | None) -> None:
    timeline, _, _, _ = offered(
        offer=offer, amount="5.00" if offer == "partial_refund" else None, kind=kind
    )
    assert timeline.codes() == ([code] if code else [])


def test_units_settled_by_a_partial_refund_are_not_refunded_again() -> None:
    timeline, _oid, rid, made = offered(amount="10.00")
    answer(timeline, rid, made + hours(1))
    request(timeline, "refund_only", made + hours(2))
    assert timeline.codes() == ["already_refunded"]
    assert str(timeline.state.refunded_total) == "10.00"


def test_an_answer_before_the_offer_waits_for_it() -> None:
    timeline, oid = us_order()
    rid = request(timeline, "refund_only", US_DELIVERED + hours(1))
    answer(timeline, rid, US_DELIVERED + hours(3))
    assert timeline.state.parked  # held for seller.offer_made
    timeline.send(f.message("seller.offer_made", oid, US_DELIVERED + hours(2), request_id=rid,
                            offer="partial_refund", amount="7.50"))  # fmt: skip
    assert timeline.refunded() == ["7.50"] and not timeline.state.parked


# --- 1.2 in the typed client ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "task"),
    [
        ("OfferMade", {"offer": "partial_refund", "amount": "5.00"}, "aftersales.seller_action"),
        ("ReplacementShipped", {"tracking_number": "RS-1"}, "aftersales.seller_action"),
        ("OfferAccepted", {}, "aftersales.buyer_action"),
        ("OfferDeclined", {}, "aftersales.buyer_action"),
    ],
)
def test_the_typed_client_builds_and_routes_the_new_messages(
    model: str, fields: dict[str, object], task: str
) -> None:
    from schemas import inbound
    from worker.contract.client import build, task_for_type, validate

    message = build(getattr(inbound, model), order_id="o-1", request_id="r-1", **fields)
    assert validate(message) == message
    assert task_for_type()[message.type] == task


def test_the_typed_client_parses_the_new_events() -> None:
    from schemas.events import OfferMadeData
    from worker.contract.client import parse_event

    event = parse_event({
        "specversion": "1.0", "id": "e-1", "source": "aftersales", "subject": "o-1",
        "type": "offer.made", "time": "2026-03-02T10:15:00Z",
        "datacontenttype": "application/json",
        "data": {"request_id": "r-1", "offer": "partial_refund",
                 "amount": {"amount": "5.00", "currency": "GBP"},
                 "respond_by": "2026-03-03T10:15:00Z"},
    })  # fmt: skip
    assert isinstance(event.data, OfferMadeData) and str(event.data.amount.amount) == "5.00"  # type: ignore[union-attr]


def test_a_sellers_answer_that_happened_before_its_published_offer_says_so() -> None:
    """Event time's exception: the offer was published; an approval that happened
    before it but arrives after it is refused `outcome_already_published`."""
    timeline, oid, rid, made = offered()
    timeline.send(f.return_approved(oid, rid, made - hours(1)))
    assert timeline.codes() == ["outcome_already_published"]


def test_the_order_view_lists_an_offered_request_with_the_offers_respond_by() -> None:
    from worker.cli.views import open_requests

    timeline, _, rid, made = offered()
    state = timeline.state.model_dump(mode="json")
    (row,) = open_requests(state)
    assert (row["status"], row["respond_by"]) == (
        "offered",
        state["returns"][rid]["offer"]["respond_by"],
    )
    assert row["respond_by"].startswith((made + days(1)).strftime("%Y-%m-%dT%H:%M"))


@pytest.mark.parametrize(
    ("currency", "amount", "code"),
    [
        ("USD", "0.01", None),
        ("USD", "0.004", "offer_not_allowed"),  # would round to 0.00: nothing offered
        ("USD", "12.005", "offer_not_allowed"),  # would round up: more than offered
        ("JPY", "12", None),
        ("JPY", "12.5", "offer_not_allowed"),
    ],
)
def test_a_partial_refund_the_currency_cannot_pay_exactly_is_refused(
    currency: str, amount: str, code: str | None
) -> None:
    """The amount is paid as offered, never rounded: a sub-minor-unit amount would pay
    nothing (0.004 USD) or more than the seller offered (12.5 JPY as 13)."""
    msg = f.order_placed(marketplace="US", currency=currency, shipping_fee="5",
                         items=[f.item("A", 1, "100")])  # fmt: skip
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, US_DELIVERED))
    rid = request(timeline, "refund_only", US_DELIVERED + hours(1))
    timeline.send(f.message("seller.offer_made", oid, US_DELIVERED + hours(2), request_id=rid,
                            offer="partial_refund", amount=amount))  # fmt: skip
    assert timeline.codes() == ([code] if code else [])
    if code is None:
        answer(timeline, rid, US_DELIVERED + hours(3))
        assert timeline.refunded() == [amount if currency == "JPY" else "0.01"]
    else:
        assert (
            timeline.state.returns[rid].status == "requested"
            and "offer.made" not in timeline.types()
        )
        assert "minor unit" in timeline.of("action.rejected")[0].detail


@pytest.mark.parametrize(
    ("items", "offered_amount", "refund", "breakdown"),
    [
        (None, "10.00", "44.99", ("40.00", "4.99")),
        (None, "54.99", None, None),  # everything paid is back already: nothing twice
        ("first", "5.00", "49.99", ("45.00", "4.99")),
    ],
    ids=["the whole order settled for 10.00", "settled for all it cost", "one unit for 5.00"],
)
def test_a_platform_cancellation_refunds_what_a_partial_refund_left_of_what_was_paid(
    items: str | None, offered_amount: str, refund: str | None, breakdown: tuple[str, str] | None
) -> None:
    """A refund_only before delivery settled by a partial refund, then the order is
    cancelled before it arrives: the buyer keeps nothing, so everything paid and not yet
    refunded goes back (contract 1.1, platform cancellation), not only unsettled units."""
    msg = f.order_placed(**US)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    first = msg.items[0]
    chosen = [{"sku": first.sku, "quantity": 1}] if items == "first" else None
    fields = {"items": chosen} if chosen else {}
    rid = request(timeline, "refund_only", SHIPPED + days(1), reason="not_received", **fields)
    offer = f.message("seller.offer_made", oid, SHIPPED + days(1) + hours(1), request_id=rid,
                      offer="partial_refund", amount=offered_amount)  # fmt: skip
    timeline.send(offer)
    answer(timeline, rid, SHIPPED + days(1) + hours(2))
    assert timeline.refunded() == [offered_amount]
    cancel = f.message("platform.order_cancelled", oid, SHIPPED + days(2), reason="parcel lost")
    timeline.send(cancel)
    cancelled = timeline.one("order.cancelled")
    assert str(cancelled.refund.amount) == (refund or "0.00")
    refunds = timeline.of("refund.initiated")
    if refund is None:
        assert len(refunds) == 1
    else:
        late = refunds[-1]
        assert (late.request_id, str(late.amount)) == (None, refund)
        assert (str(late.breakdown.items), str(late.breakdown.shipping_fee)) == breakdown
    assert str(timeline.state.refunded_total) == "54.99"


def test_an_answer_to_a_request_that_never_had_an_offer_says_so() -> None:
    """The seller approved (no offer): the buyer's answer is refused with a detail that
    names the request and says it had no offer, not "the offer is refunded"."""
    timeline, oid = us_order()
    rid = request(timeline, "refund_only", US_DELIVERED + hours(1))
    timeline.send(f.return_approved(oid, rid, US_DELIVERED + hours(2)))
    answer(timeline, rid, US_DELIVERED + hours(3))
    (refused,) = timeline.of("action.rejected")
    assert refused.code == "request_not_open"
    assert refused.detail == f"request {rid} is refunded and had no offer"


@pytest.mark.parametrize(
    ("before_respond_by", "outcome"),
    [(SECOND, "offer.made"), (SECOND * 0, "return.auto_approved")],
    ids=["a second before the seller's respond_by", "at it: approved on silence first"],
)
def test_an_offer_is_made_only_while_the_sellers_answer_window_is_open(
    before_respond_by: object, outcome: str
) -> None:
    timeline, oid = us_order()
    rid = request(timeline, "return_and_refund", US_DELIVERED + hours(1))
    respond_by = timeline.state.returns[rid].respond_by
    timeline.send(f.message("seller.offer_made", oid, respond_by - before_respond_by,  # type: ignore[operator]
                            request_id=rid, offer="partial_refund", amount="5.00"))  # fmt: skip
    assert outcome in timeline.types()
    assert timeline.codes() == ([] if outcome == "offer.made" else ["request_not_open"])


@pytest.mark.parametrize("kind", ["reshipment", "exchange", "return_and_refund", "refund_only"])
@pytest.mark.parametrize(
    ("after_window", "code"),
    [(-SECOND, None), (SECOND, "outside_return_window")],
    ids=["a second inside the return window", "a second after it"],
)
def test_every_kind_uses_the_return_window(
    kind: str, after_window: object, code: str | None
) -> None:
    timeline, _ = us_order()
    end = US_DELIVERED + days(14)  # the built-in default's 14 days
    request(timeline, kind, end + after_window)  # type: ignore[operator]
    assert timeline.codes() == ([code] if code else [])


def test_a_declined_offer_in_the_uk_restarts_48_business_hours() -> None:
    msg = f.order_placed()  # UK: the answer window counts business hours
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    timeline.send(f.delivered(oid, T0 + days(3)))  # Thursday
    rid = request(timeline, "return_and_refund", T0 + days(3) + hours(1))
    timeline.send(f.message("seller.offer_made", oid, T0 + days(3) + hours(2), request_id=rid,
                            offer="partial_refund", amount="5.00"))  # fmt: skip
    friday = T0 + days(4)  # Friday 6 March 2026, 10:00 UTC (10:00 London)
    answer(timeline, rid, friday, accepted=False)
    assert timeline.one("offer.declined").respond_by == friday + days(4)  # Tuesday 10:00
    assert timeline.deadline("return_response", rid).due_at == friday + days(4)  # type: ignore[union-attr]


@pytest.mark.parametrize("settled_first", [True, False], ids=["settled first", "refunded first"])
def test_units_kept_with_a_partial_refund_keep_the_shipping_fee_whatever_the_order(
    settled_first: bool,
) -> None:
    """Rule 13: the fee comes back when every item is refunded. Units settled by a
    partial refund were kept, so the order is never wholly refunded: the fee stays with
    the seller, whichever request came first (was: back with the later refund only when
    the partial refund came first)."""
    timeline, oid = us_order()
    a, b = (item.sku for item in timeline.state.order.items)  # type: ignore[union-attr]
    at = US_DELIVERED + hours(1)

    def settle() -> None:
        rid = request(timeline, "refund_only", at, items=[{"sku": a, "quantity": 1}])
        timeline.send(f.message("seller.offer_made", oid, at + hours(1), request_id=rid,
                                offer="partial_refund", amount="5.00"))  # fmt: skip
        answer(timeline, rid, at + hours(2))

    def refund() -> None:
        rid = request(timeline, "refund_only", at, items=[{"sku": b, "quantity": 2}])
        timeline.send(f.return_approved(oid, rid, at + hours(1)))

    for step in (settle, refund) if settled_first else (refund, settle):
        step()
        at += hours(3)
    assert sorted(timeline.refunded()) == ["30.00", "5.00"]
    assert str(timeline.state.refunded_total) == "35.00"


RESUBMISSIONS = {
    # rejected requests (their items), the resubmission's items -> units asked again, stored
    "all of it again (1.1's resubmission)": ([A2], A2, {"A": 2}, False),
    "all of it and a new unit": ([A2], [*A2, *B1], {"A": 2}, False),
    "all of a one-unit request and a new unit": ([B1], [*A1, *B1], {"B": 1}, False),
    "part of it: the rest waits on": ([A2], A1, {"A": 1}, True),
    "one sku of a request of two: the other waits on": ([[*A1, *B1]], B1, {"B": 1}, True),
    "all of two requests": ([A1, A1], A2, {"A": 2}, True),
}


@pytest.mark.parametrize(
    ("rejected", "asked", "again", "stored"), RESUBMISSIONS.values(), ids=RESUBMISSIONS.keys()
)
def test_units_asked_again_are_stored_only_where_no_superseded_request_tells_them(
    rejected: list[list[dict[str, object]]],
    asked: list[dict[str, object]],
    again: dict[str, int],
    stored: bool,
) -> None:
    """Expand, then contract (docs/operations.md, "Upgrades"): a resubmission of a whole
    rejected request, the one 1.1 knows, is stored as 1.1 stores it (no `second_tries`:
    the superseded request tells them; format 2, which 1.1 reads); only one whose units
    come from a request that waits on, or from several, needs format 3."""
    from schemas import formats
    from worker.adapters import state_codec

    timeline, oid = two_sku_order()
    for n, items in enumerate(rejected, 1):
        ask_and_reject(timeline, DELIVERED + hours(2 * n - 1), items, f"r{n}")
    timeline.send(
        f.return_requested(oid, DELIVERED + hours(9), request_id="rx", kind="refund_only",
                           reason="changed_mind", items=asked),
    )  # fmt: skip
    assert timeline.codes() == []
    request = timeline.state.returns["rx"]
    assert request.attempt == 2
    assert units.second_tries(timeline.state, request) == again
    assert (request.second_tries is not None) == stored
    written = state_codec.encode(timeline.state, state_codec.policy_hash)
    encoded = json.loads(state_codec.stored_parts(written)[0])
    assert formats.state_version(encoded) == (3 if stored else 2)
    # Loaded from what is stored, the units asked again are the same.
    policy = timeline.state.policy
    loaded = state_codec.decode(written, lambda _: policy)  # type: ignore[arg-type,return-value]
    assert loaded == timeline.state
    assert units.second_tries(loaded, loaded.returns["rx"]) == again
