"""Rules 1-5: cancellations, at their edges."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from schemas.policy import PolicyError, build_policy
from tests.support import factories as f
from tests.support.factories import T0, hours
from tests.support.timeline import Timeline

SECOND = timedelta(seconds=1)


def placed(**overrides: object) -> tuple[Timeline, str]:
    msg = f.order_placed(**overrides)
    timeline = Timeline(msg.order_id)
    timeline.send(msg)
    return timeline, msg.order_id


def paid_order(**overrides: object) -> tuple[Timeline, str]:
    timeline, oid = placed(**overrides)
    timeline.send(f.paid(oid, T0 + hours(1)))
    return timeline, oid


# --- rule 1: before payment -----------------------------------------------------------


def test_rule1_before_payment_the_buyer_cancels_at_once_without_refund() -> None:
    timeline, oid = placed()
    timeline.send(f.cancel_requested(oid, T0 + hours(30), reason="found it cheaper"))
    cancelled = timeline.one("order.cancelled")
    assert (cancelled.by, cancelled.seller_fault, cancelled.refund) == ("buyer", False, None)
    assert cancelled.reason == "found it cheaper"
    assert "refund.initiated" not in timeline.types()
    assert timeline.state.deadlines == {}, "the unpaid expiry is obsolete"


# --- rule 2: the free-cancel window ------------------------------------------------------


@pytest.mark.parametrize(
    ("after_payment", "at_once"),
    [
        (timedelta(minutes=59, seconds=59), True),
        (timedelta(hours=1), True),  # "up to and including 1 h"
        (timedelta(hours=1, seconds=1), False),
    ],
)
def test_rule2_free_cancel_window_after_payment(after_payment: timedelta, at_once: bool) -> None:
    timeline, oid = paid_order()
    timeline.send(f.cancel_requested(oid, T0 + hours(1) + after_payment))
    if at_once:
        assert timeline.types() == ["order.cancelled", "refund.initiated"]
        refund = timeline.one("refund.initiated")
        assert (refund.request_id, refund.amount, refund.currency) == (
            None,
            Decimal("54.99"),
            "GBP",
        )
        assert refund.breakdown.shipping_fee == Decimal("4.99")
        assert timeline.one("order.cancelled").refund.amount == Decimal("54.99")
    else:
        assert timeline.types() == ["cancellation.requested"]


@pytest.mark.parametrize(
    ("after_placement", "at_once"),
    [
        (timedelta(minutes=59, seconds=59), True),
        (timedelta(hours=1), True),
        (timedelta(hours=1, seconds=1), False),
    ],
)
def test_rule2_cod_free_window_counts_from_placement(
    after_placement: timedelta, at_once: bool
) -> None:
    timeline, oid = placed(payment_method="cod")
    timeline.send(f.cancel_requested(oid, T0 + after_placement))
    expected = ["order.cancelled"] if at_once else ["cancellation.requested"]
    assert timeline.types() == expected
    if at_once:
        assert timeline.one("order.cancelled").refund is None, "cod is not paid yet"


# --- rule 3: the seller answers ----------------------------------------------------------


def requested(**overrides: object) -> tuple[Timeline, str]:
    timeline, oid = paid_order(**overrides)
    timeline.send(f.cancel_requested(oid, T0 + hours(3)))
    return timeline, oid


def test_rule3_request_goes_to_the_seller_with_48h() -> None:
    timeline, _ = requested()
    assert timeline.one("cancellation.requested").respond_by == T0 + hours(51)
    assert timeline.deadline("cancel_response").due_at == T0 + hours(51)


def test_rule3_seller_accepts() -> None:
    timeline, oid = requested()
    timeline.send(f.cancel_accepted(oid, T0 + hours(5)))
    assert timeline.types()[1:] == ["cancellation.accepted", "order.cancelled", "refund.initiated"]
    assert timeline.one("order.cancelled").by == "buyer"
    assert timeline.state.deadlines == {}


def test_rule3_seller_rejects_with_reason() -> None:
    timeline, oid = requested()
    timeline.send(f.cancel_rejected(oid, T0 + hours(5), reason="already packed"))
    rejected = timeline.one("cancellation.rejected")
    assert (rejected.by, rejected.reason) == ("seller", "already packed")
    assert timeline.state.deadlines == {}
    assert timeline.state.cancellation is None


@pytest.mark.parametrize(
    ("answer_after", "seller_wins"),
    [(hours(48) - SECOND, True), (hours(48), False), (hours(48) + SECOND, False)],
)
def test_rule3_answer_before_respond_by_wins_over_the_timer(
    answer_after: timedelta, seller_wins: bool
) -> None:
    """A deadline is due at exactly its time; an answer that happened before it wins,
    whichever of the two the worker sees first."""
    for timer_first in (False, True):
        timeline, oid = requested()
        answer = f.cancel_rejected(oid, T0 + hours(3) + answer_after)
        if timer_first and not seller_wins:
            timeline.fire("cancel_response")
        timeline.send(answer)
        timeline.advance(T0 + hours(100))
        if seller_wins:
            assert timeline.one("cancellation.rejected").by == "seller"
            assert "order.cancelled" not in timeline.types()
        else:
            auto = timeline.one("cancellation.auto_accepted")
            assert auto.deadline == T0 + hours(51)
            assert timeline.codes() == ["request_not_open"]
            assert timeline.one("order.cancelled").by == "buyer"
            assert len(timeline.of("refund.initiated")) == 1


def test_rule3_no_answer_auto_accepts() -> None:
    timeline, _ = requested()
    timeline.fire("cancel_response")
    assert timeline.types()[1:] == [
        "cancellation.auto_accepted",
        "order.cancelled",
        "refund.initiated",
    ]
    assert all(e.time == T0 + hours(51) for e in timeline.events[1:])


def test_rule3_shipping_rejects_an_open_request_by_system() -> None:
    timeline, oid = requested()
    timeline.send(f.shipped(oid, T0 + hours(10)))
    rejected = timeline.one("cancellation.rejected")
    assert rejected.by == "system"
    assert timeline.state.deadlines == {}
    timeline.send(f.cancel_accepted(oid, T0 + hours(11)))
    assert timeline.codes() == ["request_not_open"]


def test_rule3_cancel_after_shipping_is_refused() -> None:
    timeline, oid = paid_order()
    timeline.send(f.shipped(oid, T0 + hours(2)), f.cancel_requested(oid, T0 + hours(3)))
    assert timeline.codes() == ["already_shipped"]


def test_rule3_one_request_at_a_time_and_one_per_order() -> None:
    timeline, oid = requested()
    timeline.send(f.cancel_requested(oid, T0 + hours(4)))
    timeline.send(f.cancel_rejected(oid, T0 + hours(5)))
    timeline.send(f.cancel_requested(oid, T0 + hours(6)))
    assert timeline.codes() == ["cancel_request_open", "cancel_request_rejected"]


def test_rule3_until_ready_to_ship_is_no_answer_window() -> None:
    """1.1: an answer window always ends; the seller option is a free-cancel window."""
    with pytest.raises(PolicyError, match="free_cancel_window"):
        build_policy(
            {
                "marketplaces": {
                    "UK": {
                        "sellers": {"seller-1": {"cancel_response_window": "until_ready_to_ship"}}
                    }
                }
            }
        )


def test_policy_change_does_not_rewrite_an_open_order() -> None:
    msg = f.order_placed()
    timeline = Timeline(msg.order_id)
    timeline.send(msg, f.paid(msg.order_id, T0))
    timeline.policy = build_policy({"marketplaces": {"UK": {"free_cancel_window": "PT5H"}}})
    timeline.send(f.cancel_requested(msg.order_id, T0 + hours(2)))
    assert timeline.types() == ["cancellation.requested"], "terms at the time of purchase"


# --- rule 4: the seller cancels ----------------------------------------------------------


@pytest.mark.parametrize("before", ["nothing", "ready_to_ship", "shipped"])
def test_rule4_seller_cancels_only_before_ready_to_ship(before: str) -> None:
    timeline, oid = paid_order()
    if before == "ready_to_ship":
        timeline.send(f.ready_to_ship(oid, T0 + hours(2)))
    if before == "shipped":
        timeline.send(f.shipped(oid, T0 + hours(2)))
    timeline.send(f.seller_cancelled(oid, T0 + hours(3), reason="out of stock"))
    if before == "nothing":
        cancelled = timeline.one("order.cancelled")
        assert (cancelled.by, cancelled.seller_fault, cancelled.reason) == (
            "seller",
            True,
            "out of stock",
        )
        assert timeline.refunded() == ["54.99"]
    else:
        assert timeline.codes() == ["already_ready_to_ship"]


def test_rule4_seller_cancel_ends_an_open_buyer_request() -> None:
    timeline, oid = requested()
    timeline.send(f.seller_cancelled(oid, T0 + hours(4)))
    assert timeline.state.cancel_request.status == "order_cancelled"
    assert timeline.state.deadlines == {}
    timeline.send(f.cancel_accepted(oid, T0 + hours(5)))
    assert timeline.codes() == ["request_not_open"]
    assert len(timeline.of("order.cancelled")) == 1


# --- rule 5: unpaid orders expire ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "due"),
    [
        ({}, T0 + hours(48)),
        ({"pricing": "subsidized", "payment_due_at": T0 + hours(6)}, T0 + hours(6)),
        ({"payment_method": "cod"}, None),
        ({"payment_method": "cod", "pricing": "subsidized", "payment_due_at": T0 + hours(6)}, None),
    ],
    ids=["regular", "subsidized", "cod", "cod-subsidized"],
)
def test_rule5_unpaid_expiry(overrides: dict[str, object], due: object) -> None:
    timeline, _ = placed(**overrides)
    deadline = timeline.deadline("unpaid_expiry")
    if due is None:
        assert deadline is None
        return
    assert deadline.due_at == due
    timeline.fire("unpaid_expiry")
    cancelled = timeline.one("order.cancelled")
    assert (cancelled.by, cancelled.refund, cancelled.seller_fault) == ("platform", None, False)
    assert timeline.events[0].time == due


@pytest.mark.parametrize(
    ("paid_after", "expired"), [(hours(48) - SECOND, False), (hours(48), True)]
)
def test_rule5_payment_at_the_edge(paid_after: timedelta, expired: bool) -> None:
    timeline, oid = placed()
    timeline.send(f.paid(oid, T0 + paid_after))
    timeline.advance(T0 + hours(100))
    if expired:
        # The order expired at 48 h; the payment that came after is refunded in full.
        assert timeline.types() == ["order.cancelled", "refund.initiated"]
        assert timeline.refunded() == ["54.99"]
    else:
        assert timeline.types() == []


def test_payment_for_a_cancelled_order_is_refunded_in_full() -> None:
    timeline, oid = placed()
    timeline.fire("unpaid_expiry")
    timeline.send(f.paid(oid, T0 + hours(50)))
    refund = timeline.one("refund.initiated")
    assert (refund.amount, refund.request_id) == (Decimal("54.99"), None)
    timeline.send(f.paid(oid, T0 + hours(51)))
    assert timeline.codes() == ["already_paid"]


@pytest.mark.parametrize("fact", [f.ready_to_ship, f.shipped])
def test_shipping_a_cancelled_order_is_refused(fact: object) -> None:
    timeline, oid = paid_order()
    timeline.send(f.seller_cancelled(oid, T0 + hours(2)))
    timeline.send(fact(oid, T0 + hours(3)))  # type: ignore[operator]
    assert timeline.codes() == ["order_cancelled"]
