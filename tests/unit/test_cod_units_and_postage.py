"""Contract 1.1 rules at their edges: cash on delivery, units, resubmissions
after the window, self-arranged postage, per-seller instant-cancel windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from schemas.policy import PolicyError, PolicySet, build_policy
from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.orders import (
    DELIVERED,
    SECOND,
    SHIPPED,
    ask,
    breakdown_adds_up,
    delivered_order,
)
from tests.support.timeline import Timeline

# --- 1: cash on delivery --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "method", "expected"),
    [("refund_only", None, "54.99"), ("return_and_refund", "self_arrange", "54.99")],
)
def test_cod_delivery_is_the_payment_and_returns_refund_what_was_collected(
    kind: str, method: str | None, expected: str
) -> None:
    timeline, oid = delivered_order(payment_method="cod")
    assert timeline.state.paid_at == DELIVERED
    rid = ask(timeline, DELIVERED + hours(1), kind=kind, method=method, reason="damaged")
    timeline.send(f.return_approved(oid, rid, DELIVERED + hours(2)))
    if kind == "return_and_refund":
        timeline.send(
            f.tracking_submitted(oid, rid, DELIVERED + hours(3)),
            f.return_received(oid, rid, DELIVERED + days(2)),
        )
    refund = timeline.one("refund.initiated")
    assert (
        str(refund.amount),
        str(refund.breakdown.items),
        str(refund.breakdown.shipping_fee),
    ) == (expected, "50.00", "4.99")
    assert timeline.dead_letters == []


@pytest.mark.parametrize(
    "paid_at", [T0 + hours(1), DELIVERED + hours(1)], ids=["before-delivery", "after-delivery"]
)
def test_cod_order_paid_changes_nothing_and_never_pays_twice(paid_at: datetime) -> None:
    timeline, oid = delivered_order(payment_method="cod")
    before = timeline.state
    timeline.send(f.paid(oid, paid_at))
    # Nothing but the event-time log of inputs decided (worker/rules/eventtime.py) changes.
    assert timeline.types() == []
    assert timeline.state.model_copy(update={"history": before.history}) == before


def test_cod_paid_before_delivery_is_not_its_payment() -> None:
    timeline, oid = delivered_order(payment_method="cod", delivered=False)
    timeline.send(f.paid(oid, SHIPPED + hours(1)))
    assert timeline.state.paid_at is None
    timeline.send(
        f.message("platform.order_cancelled", oid, SHIPPED + hours(2), reason="courier lost it")
    )
    assert timeline.one("order.cancelled").refund is None, "nothing was collected"


def test_cod_refund_only_before_delivery_waits_then_is_refused() -> None:
    timeline, _ = delivered_order(payment_method="cod", delivered=False)
    ask(timeline, SHIPPED + hours(1), kind="refund_only", reason="not_received")
    (parked,) = timeline.state.parked
    assert parked.waiting_for == "order.delivered"
    timeline.fire("hold", parked.message["message_id"])
    assert timeline.codes() == ["not_delivered"] and timeline.dead_letters == []


@pytest.mark.parametrize(("asked", "allowed"), [(DELIVERED - SECOND, False), (DELIVERED, True)])
def test_cod_return_arriving_before_delivery_is_judged_at_its_time(
    asked: datetime, allowed: bool
) -> None:
    timeline, oid = delivered_order(payment_method="cod", delivered=False)
    ask(timeline, asked, kind="refund_only", reason="damaged")
    timeline.send(f.delivered(oid, DELIVERED))
    assert timeline.types() == (["return.requested"] if allowed else ["action.rejected"])


# --- 3 and 4: units, resubmissions ------------------------------------------------------

SKU_B = [{"sku": "sku-b", "quantity": 1}]
SKU_B2 = [{"sku": "sku-b", "quantity": 2}]


def rejected(
    at: datetime, items: list[dict[str, Any]], final: bool = False
) -> tuple[Timeline, str, str]:
    timeline, oid = delivered_order()
    rid = ask(timeline, at, method="self_arrange", reason="changed_mind", items=items)
    timeline.send(f.return_rejected(oid, rid, at + hours(1)))
    if final:
        timeline.fire("resubmit", rid)
    timeline.clear()
    return timeline, oid, rid


def test_units_a_final_refusal_of_one_unit_leaves_the_other_returnable() -> None:
    timeline, _, first = rejected(DELIVERED + days(1), SKU_B, final=True)
    other = ask(timeline, DELIVERED + days(5), method="self_arrange", items=SKU_B)
    assert timeline.types() == ["return.requested"]
    assert (
        timeline.state.returns[other].attempt,
        timeline.state.returns[other].previous_request_id,
    ) == (1, None)
    ask(
        timeline,
        DELIVERED + days(5),
        method="self_arrange",
        items=[{"sku": "sku-a", "quantity": 1}],
    )
    ask(timeline, DELIVERED + days(5), method="self_arrange", items=SKU_B)
    assert timeline.codes() == ["return_refused"], "the refused unit stays refused"
    assert timeline.state.returns[first].status == "closed"


def test_units_a_request_for_the_other_unit_is_not_the_resubmission() -> None:
    timeline, _, first = rejected(DELIVERED + days(1), SKU_B)
    other = ask(timeline, DELIVERED + days(1) + hours(2), method="self_arrange", items=SKU_B)
    assert timeline.state.returns[first].status == "rejected", "still open to resubmit"
    assert timeline.state.returns[other].attempt == 1
    again = ask(timeline, DELIVERED + days(1) + hours(3), method="self_arrange", items=SKU_B)
    assert timeline.state.returns[again].previous_request_id == first
    assert timeline.state.returns[first].status == "superseded"


def test_units_both_units_in_use_are_refused_with_what_holds_them() -> None:
    timeline, _ = delivered_order()
    ask(timeline, DELIVERED, method="self_arrange", items=SKU_B)
    ask(timeline, DELIVERED, method="self_arrange", items=SKU_B2)
    assert timeline.codes() == ["items_in_open_request"]


LATE = DELIVERED + days(30) - hours(1)  # UK window ends at DELIVERED + 719 h (DST)


@pytest.mark.parametrize(
    ("asked", "code"),
    [
        (SKU_B2, None),  # the units of the request it resubmits
        (SKU_B, None),  # or fewer
        ([*SKU_B2, {"sku": "sku-a", "quantity": 1}], "resubmission_adds_items"),
    ],
    ids=["same", "fewer", "more"],
)
def test_resubmission_after_the_window_may_not_add_units(
    asked: list[dict[str, Any]], code: str | None
) -> None:
    timeline, _, first = rejected(LATE - hours(2), SKU_B2)
    rid = ask(timeline, LATE + hours(5), method="self_arrange", items=asked)
    if code is None:
        assert timeline.state.returns[rid].previous_request_id == first
        assert timeline.types() == ["return.requested"]
    else:
        assert timeline.codes() == [code]
        assert timeline.state.returns[first].status == "rejected"


def test_resubmission_inside_the_window_may_add_units() -> None:
    timeline, _, first = rejected(DELIVERED + days(1), SKU_B)
    rid = ask(timeline, DELIVERED + days(1) + hours(2), method="self_arrange", items=None)
    assert timeline.state.returns[rid].previous_request_id == first
    assert timeline.state.returns[rid].attempt == 2


def test_other_units_after_the_window_are_outside_it() -> None:
    timeline, _, _ = rejected(LATE - hours(2), SKU_B)
    ask(timeline, LATE + hours(5), method="self_arrange", items=[{"sku": "sku-a", "quantity": 1}])
    assert timeline.codes() == ["outside_return_window"]


# --- 5: self-arranged postage -----------------------------------------------------------


@pytest.mark.parametrize(
    ("marketplace", "reason", "postage", "back"),
    [
        ("UK", "damaged", "3.20", "3.20"),
        ("UK", "damaged", "6.99", "6.99"),
        ("UK", "damaged", "7.00", "6.99"),  # capped at the highest drop-off rate
        ("UK", "damaged", None, "0.00"),
        ("UK", "changed_mind", "3.20", "0.00"),  # buyer's choice: nothing added
        ("US", "wrong_item", "25.00", "25.00"),  # no cap by default
    ],
)
def test_self_arranged_postage_for_seller_fault(
    marketplace: str, reason: str, postage: str | None, back: str
) -> None:
    currency = "GBP" if marketplace == "UK" else "USD"
    timeline, oid = delivered_order(marketplace=marketplace, currency=currency)
    rid = ask(timeline, DELIVERED + hours(1), method="self_arrange", reason=reason)
    extra = {"postage": postage} if postage else {}
    timeline.send(
        f.return_approved(oid, rid, DELIVERED + hours(2)),
        f.tracking_submitted(oid, rid, DELIVERED + hours(3), **extra),
        f.return_received(oid, rid, DELIVERED + days(2)),
    )
    refund = timeline.one("refund.initiated")
    assert str(refund.breakdown.return_shipping_refund) == back
    assert refund.amount == Decimal("54.99") + Decimal(back)
    breakdown_adds_up(refund)


def test_postage_cap_is_a_policy_key_in_the_marketplace_currency() -> None:
    policy = build_policy({"marketplaces": {"UK": {"self_arrange_postage_cap": "2.50"}}})
    assert policy.for_marketplace("UK").self_arrange_postage_cap == Decimal("2.50")
    with pytest.raises(PolicyError, match="currency is required"):
        build_policy({"marketplaces": {"FR": {"self_arrange_postage_cap": "5"}}})


# --- 6: per-seller instant-cancel window -----------------------------------------------

PAID = T0 + hours(1)


def seller_policy(window: str) -> PolicySet:
    return build_policy(
        {"marketplaces": {"UK": {"sellers": {"seller-1": {"free_cancel_window": window}}}}}
    )


@pytest.mark.parametrize(
    ("window", "after_payment", "instant"),
    [
        ("PT3H", hours(3), True),
        ("PT3H", hours(3) + SECOND, False),
        ("PT30M", hours(1), True),  # a seller widens the window, never narrows it
        ("until_ready_to_ship", days(5), True),
    ],
)
def test_seller_free_cancel_window(window: str, after_payment: timedelta, instant: bool) -> None:
    msg = f.order_placed()
    timeline = Timeline(msg.order_id, seller_policy(window))
    timeline.send(
        msg, f.paid(msg.order_id, PAID), f.cancel_requested(msg.order_id, PAID + after_payment)
    )
    if instant:
        assert timeline.types() == ["order.cancelled", "refund.initiated"]
    else:
        requested = timeline.one("cancellation.requested")
        assert requested.respond_by == PAID + after_payment + hours(48)


@pytest.mark.parametrize(("rts_after", "instant"), [(SECOND, True), (SECOND * 0, False)])
def test_until_ready_to_ship_then_the_seller_answers_within_48h(
    rts_after: timedelta, instant: bool
) -> None:
    msg = f.order_placed()
    oid = msg.order_id
    timeline = Timeline(oid, seller_policy("until_ready_to_ship"))
    asked = PAID + days(2)
    timeline.send(
        msg,
        f.paid(oid, PAID),
        f.ready_to_ship(oid, asked + rts_after),
        f.cancel_requested(oid, asked),
    )
    if instant:
        assert timeline.types()[:1] == ["order.cancelled"]
        return
    assert timeline.one("cancellation.requested").respond_by == asked + hours(48)
    assert timeline.deadline("cancel_response").due_at == asked + hours(48)
    timeline.fire("cancel_response")
    assert timeline.types()[-2:] == ["order.cancelled", "refund.initiated"]


def test_old_per_seller_answer_window_still_works() -> None:
    policy = build_policy(
        {"marketplaces": {"UK": {"sellers": {"seller-1": {"cancel_response_window": "PT3H"}}}}}
    )
    msg = f.order_placed()
    timeline = Timeline(msg.order_id, policy)
    timeline.send(
        msg, f.paid(msg.order_id, PAID), f.cancel_requested(msg.order_id, PAID + hours(2))
    )
    assert timeline.one("cancellation.requested").respond_by == PAID + hours(5)
