"""Contract 1.1 rules at their edges: currencies, an exact breakdown, local
days and platform cancellation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.policy import PolicyError, build_policy
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
from worker.rules.money import Cash, CurrencyMismatch

SKU_B = [{"sku": "sku-b", "quantity": 1}]


# --- 7: currencies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marketplace", "currency", "dead"),
    [("UK", "GBP", False), ("UK", "JPY", True), ("UK", "EUR", True), ("US", "JPY", False)],
)
def test_order_in_another_currency_than_the_marketplace_is_dead_lettered(
    marketplace: str, currency: str, dead: bool
) -> None:
    msg = f.order_placed(marketplace=marketplace, currency=currency)
    timeline = Timeline(msg.order_id)
    timeline.send(msg)
    assert (timeline.state.order is None) == dead
    if dead:
        (letter,) = timeline.dead_letters
        assert (letter.kind, letter.task, letter.message["message_id"]) == (
            "invalid_message",
            "aftersales.order_event",
            msg.message_id,
        )
        assert letter.reason == (
            f"order.placed in {currency}: marketplace UK takes orders in "
            "GBP only (its limits and rates are in GBP)"
        )
    else:
        assert timeline.dead_letters == []


def test_money_of_two_currencies_is_never_compared_or_added() -> None:
    pounds, yen = Cash(Decimal("1500"), "GBP"), Cash(Decimal("1500"), "JPY")
    for mix in (
        lambda: pounds + yen,
        lambda: pounds - yen,
        lambda: pounds < yen,
        lambda: pounds >= yen,
        lambda: min(pounds, yen),
    ):
        with pytest.raises(CurrencyMismatch, match="cannot be mixed"):
            mix()
    assert pounds + Cash(Decimal("1"), "GBP") == Cash(Decimal("1501"), "GBP")


def test_money_limits_need_a_currency() -> None:
    with pytest.raises(PolicyError, match=r"marketplaces\.FR: .*currency is required"):
        build_policy({"marketplaces": {"FR": {"drop_off": {"max_value": "100"}}}})
    policy = build_policy(
        {"marketplaces": {"FR": {"currency": "EUR", "drop_off": {"max_value": "100"}}}}
    )
    assert policy.for_marketplace("FR").currency == "EUR"


# --- 8: the breakdown adds up, no remainder posing as return shipping -------------------


def test_partial_refunds_add_up_to_what_was_paid_without_a_remainder() -> None:
    items = [f.item("sku-x", 1, "10.005"), f.item("sku-y", 1, "10.005")]
    timeline, oid = delivered_order(items=items)  # paid 20.01 + 4.99 = 25.00
    for sku in ("sku-x", "sku-y"):
        rid = ask(
            timeline,
            DELIVERED + hours(1),
            kind="refund_only",
            reason="damaged",
            items=[{"sku": sku, "quantity": 1}],
        )
        timeline.send(f.return_approved(oid, rid, DELIVERED + hours(2)))
    first, second = timeline.of("refund.initiated")
    assert [str(r.amount) for r in (first, second)] == ["10.01", "14.99"]
    for refund in (first, second):
        assert str(refund.breakdown.return_shipping_deduction) == "0.00"
        breakdown_adds_up(refund)
    assert first.amount + second.amount == Decimal("25.00")


# --- 9: days are local days --------------------------------------------------------------

OCT_DELIVERED = datetime(2026, 10, 1, 11, tzinfo=UTC)  # 12:00 in London (BST)
MAR_DELIVERED = datetime(2026, 3, 10, 12, tzinfo=UTC)  # 12:00 in London (GMT)


@pytest.mark.parametrize(
    ("delivered", "window", "last_allowed"),
    [
        # 30 days: 12:00 London on 31 October, which is 12:00 GMT after the change.
        (OCT_DELIVERED, "P30D", datetime(2026, 10, 31, 12, tzinfo=UTC)),
        # 720 hours: elapsed time, 11:00 GMT.
        (OCT_DELIVERED, "PT720H", datetime(2026, 10, 31, 11, tzinfo=UTC)),
        # Across the March change: 12:00 London on 9 April is 11:00 UTC (BST)...
        (MAR_DELIVERED, "P30D", datetime(2026, 4, 9, 11, tzinfo=UTC)),
        # ...and 720 hours end at 12:00 UTC, 13:00 London.
        (MAR_DELIVERED, "PT720H", datetime(2026, 4, 9, 12, tzinfo=UTC)),
    ],
    ids=["october-days", "october-hours", "march-days", "march-hours"],
)
def test_return_window_days_are_london_days(
    delivered: datetime, window: str, last_allowed: datetime
) -> None:
    policy = build_policy({"marketplaces": {"UK": {"return_window": window}}})
    for asked, allowed in ((last_allowed, True), (last_allowed + SECOND, False)):
        msg = f.order_placed(at=delivered - days(3))
        oid = msg.order_id
        timeline = Timeline(oid, policy)
        timeline.send(
            msg,
            f.paid(oid, delivered - days(3)),
            f.shipped(oid, delivered - days(2)),
            f.delivered(oid, delivered),
        )
        ask(timeline, asked, method="self_arrange")
        assert timeline.codes() == ([] if allowed else ["outside_return_window"]), asked


def test_label_validity_counts_local_days_too() -> None:
    msg = f.order_placed(at=OCT_DELIVERED - days(3))
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(
        msg,
        f.paid(oid, OCT_DELIVERED - days(3)),
        f.shipped(oid, OCT_DELIVERED - days(2)),
        f.delivered(oid, OCT_DELIVERED),
    )
    approved = datetime(2026, 10, 20, 9, tzinfo=UTC)  # 10:00 BST
    rid = ask(timeline, approved - hours(1), method="drop_off")
    timeline.send(f.return_approved(oid, rid, approved))
    # 14 London days later is 3 November 10:00 GMT: 337 hours, not 336.
    assert timeline.deadline("label_validity", rid).due_at == datetime(2026, 11, 3, 10, tzinfo=UTC)


# --- 10: platform cancellation -----------------------------------------------------------


def platform_cancel(timeline: Timeline, at: datetime) -> None:
    timeline.send(
        f.message("platform.order_cancelled", timeline.order_id, at, reason="customer service")
    )


def test_platform_cancels_an_unpaid_order() -> None:
    msg = f.order_placed()
    timeline = Timeline(msg.order_id)
    timeline.send(msg)
    platform_cancel(timeline, T0 + hours(1))
    cancelled = timeline.one("order.cancelled")
    assert (cancelled.by, cancelled.seller_fault, cancelled.refund, cancelled.stop_shipment) == (
        "platform",
        False,
        None,
        None,
    )
    assert timeline.state.deadlines == {}


def test_platform_cancels_a_shipped_order_closes_requests_and_stops_the_parcel() -> None:
    timeline, oid = delivered_order(delivered=False)
    # Past the free window (paid at T0 + 1 h), before the shipment: answered by shipping.
    timeline.send(f.cancel_requested(oid, T0 + hours(3)))
    partly = ask(
        timeline, SHIPPED + hours(1), kind="refund_only", reason="missing_items", items=SKU_B
    )
    timeline.send(f.return_approved(oid, partly, SHIPPED + hours(2)))
    still_open = ask(
        timeline,
        SHIPPED + hours(3),
        kind="refund_only",
        reason="not_received",
        items=[{"sku": "sku-a", "quantity": 1}],
    )
    timeline.clear()
    platform_cancel(timeline, SHIPPED + hours(4))
    assert timeline.types() == ["return.closed", "order.cancelled", "refund.initiated"]
    closed = timeline.one("return.closed")
    assert (closed.request_id, closed.reason) == (still_open, "order_cancelled")
    cancelled = timeline.one("order.cancelled")
    assert cancelled.stop_shipment is not None
    assert (cancelled.by, str(cancelled.refund.amount)) == ("platform", "39.99")
    refund = timeline.one("refund.initiated")
    assert (str(refund.breakdown.items), str(refund.breakdown.shipping_fee)) == ("35.00", "4.99")
    assert timeline.state.deadlines == {}
    assert sum(Decimal(a) for a in timeline.refunded()) + Decimal("15.00") == Decimal("54.99")
    timeline.send(f.delivered(oid, SHIPPED + days(1)))
    assert timeline.codes() == ["order_cancelled"]


def test_platform_cancel_after_everything_was_refunded_refunds_nothing_more() -> None:
    timeline, oid = delivered_order(delivered=False)
    rid = ask(timeline, SHIPPED + hours(1), kind="refund_only", reason="not_received")
    timeline.send(f.return_approved(oid, rid, SHIPPED + hours(2)))
    assert timeline.refunded() == ["54.99"]
    timeline.clear()
    platform_cancel(timeline, SHIPPED + hours(3))
    assert timeline.types() == ["order.cancelled"], "what was paid went back once"
    assert str(timeline.one("order.cancelled").refund.amount) == "0.00"


def test_platform_cancel_names_the_parcel_to_stop() -> None:
    msg = f.order_placed()
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0), f.shipped(oid, SHIPPED, tracking_number="TRK-9"))
    platform_cancel(timeline, SHIPPED + hours(1))
    assert timeline.one("order.cancelled").stop_shipment.tracking_number == "TRK-9"


def test_platform_cancel_keeps_held_messages_waiting() -> None:
    msg = f.order_placed()
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0))
    timeline.send(f.return_approved(oid, "r-unknown", T0 + hours(1)))  # held
    platform_cancel(timeline, T0 + hours(2))
    assert [d.kind for d in timeline.state.deadlines.values()] == ["hold"]


@pytest.mark.parametrize(
    ("first", "code"), [("delivered", "already_delivered"), ("cancelled", "order_cancelled")]
)
def test_platform_cancel_refused_after_delivery_or_cancellation(first: str, code: str) -> None:
    timeline, _ = delivered_order(delivered=first == "delivered")
    if first == "cancelled":
        platform_cancel(timeline, SHIPPED + hours(1))
    timeline.clear()
    platform_cancel(timeline, DELIVERED + hours(1))
    assert timeline.codes() == [code]
