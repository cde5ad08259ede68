"""Rules 6-8: asking for a return, the seller's answer, resubmission, appeal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.orders import ask
from tests.support.timeline import Timeline

SECOND = timedelta(seconds=1)
SHIPPED = T0 + hours(5)
DELIVERED = T0 + days(3)


def order(
    marketplace: str = "UK", delivered: bool = True, **overrides: object
) -> tuple[Timeline, str]:
    msg = f.order_placed(marketplace=marketplace, **overrides)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, SHIPPED))
    if delivered:
        timeline.send(f.delivered(oid, DELIVERED))
    return timeline, oid


# --- rule 6: when a return may be asked for --------------------------------------------


def test_rule6_refund_only_before_delivery() -> None:
    timeline, oid = order(delivered=False)
    rid = ask(timeline, SHIPPED + hours(1), kind="refund_only", reason="not_received")
    timeline.send(f.return_approved(oid, rid, SHIPPED + hours(2)))
    assert timeline.types() == ["return.requested", "return.approved", "refund.initiated"]
    refund = timeline.one("refund.initiated")
    assert (str(refund.amount), refund.request_id) == ("54.99", rid)


def test_rule6_return_and_refund_before_a_known_delivery_waits_then_is_refused() -> None:
    timeline, _ = order(delivered=False)
    ask(timeline, SHIPPED + hours(1), method="self_arrange")
    (parked,) = timeline.state.parked
    assert timeline.types() == [] and parked.waiting_for == "order.delivered"

    timeline.fire("hold", parked.message["message_id"])

    assert timeline.codes() == ["not_delivered"]
    assert timeline.state.parked == ()


def test_rule6_return_and_refund_arriving_before_its_delivery_fact_is_applied() -> None:
    timeline, oid = order(delivered=False)
    ask(timeline, DELIVERED + hours(1), method="self_arrange")  # early only in arrival

    timeline.send(f.delivered(oid, DELIVERED))

    assert timeline.types() == ["return.requested"]


def test_rule6_return_and_refund_that_happened_before_delivery_is_refused() -> None:
    timeline, oid = order(delivered=False)
    ask(timeline, DELIVERED - hours(1), method="self_arrange")

    timeline.send(f.delivered(oid, DELIVERED))

    assert timeline.codes() == ["not_delivered"]


@pytest.mark.parametrize(
    ("marketplace", "after_delivery", "allowed"),
    [
        ("US", days(14), True),  # 14 x 24 h inclusive
        ("US", days(14) + SECOND, False),
        ("US", days(15), False),
        # Across the March clock change: 30 London days are 719 hours (10:00 GMT to
        # 10:00 BST).
        ("UK", days(30) - hours(1), True),
        ("UK", days(30) - hours(1) + SECOND, False),
    ],
)
def test_rule6_7_return_window(marketplace: str, after_delivery: timedelta, allowed: bool) -> None:
    timeline, _ = order(marketplace, currency="USD" if marketplace == "US" else "GBP")
    ask(timeline, DELIVERED + after_delivery, method="self_arrange")
    assert timeline.types() == (["return.requested"] if allowed else ["action.rejected"])
    if not allowed:
        assert timeline.codes() == ["outside_return_window"]


@pytest.mark.parametrize(
    ("answer_after", "seller_wins"),
    [(hours(48) - SECOND, True), (hours(48), False)],
)
def test_rule6_seller_answer_against_the_48h_timer(
    answer_after: timedelta, seller_wins: bool
) -> None:
    timeline, oid = order("US", currency="USD")
    asked = DELIVERED + hours(1)
    rid = ask(timeline, asked, method="self_arrange")
    assert timeline.one("return.requested").respond_by == asked + hours(48)
    timeline.send(f.return_rejected(oid, rid, asked + answer_after))
    if seller_wins:
        assert timeline.one("return.rejected").can_resubmit is True
    else:
        auto = timeline.one("return.auto_approved")
        assert (auto.request_id, auto.deadline) == (rid, asked + hours(48))
        assert timeline.codes() == ["request_not_open"]


def test_rule6_auto_approval_when_the_seller_is_silent() -> None:
    timeline, _ = order("US", currency="USD")
    rid = ask(timeline, DELIVERED, method="self_arrange")
    timeline.fire("return_response", rid)
    assert timeline.types()[-1] == "return.auto_approved"
    assert timeline.state.returns[rid].approved_by == "timer"
    assert timeline.deadline("tracking", rid).due_at == DELIVERED + hours(48) + days(5)


# --- rule 7: UK business hours -----------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "respond_by"),
    [
        # Friday 12:00 GMT -> Tuesday 12:00 GMT.
        (datetime(2026, 3, 6, 12, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC)),
        # Saturday -> counting starts Monday 00:00 -> Wednesday 00:00.
        (datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 11, 0, tzinfo=UTC)),
        # Thursday before Easter 2026 (Good Friday, Easter Monday) -> Wednesday.
        (datetime(2026, 4, 2, 11, tzinfo=UTC), datetime(2026, 4, 8, 11, tzinfo=UTC)),
    ],
)
def test_rule7_uk_answer_window_is_48_business_hours(asked: datetime, respond_by: datetime) -> None:
    placed = f.order_placed(at=asked - days(2))
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed,
        f.paid(oid, asked - days(2)),
        f.shipped(oid, asked - days(1)),
        f.delivered(oid, asked - hours(1)),
    )
    ask(timeline, asked, method="self_arrange")
    assert timeline.one("return.requested").respond_by == respond_by


# --- rule 8: resubmission and appeal -------------------------------------------------------


def rejected_once() -> tuple[Timeline, str, str]:
    timeline, oid = order("US", currency="USD")
    rid = ask(timeline, DELIVERED, method="self_arrange", reason="changed_mind")
    timeline.send(f.return_rejected(oid, rid, DELIVERED + hours(1)))
    return timeline, oid, rid


def test_rule8_resubmission_within_48h() -> None:
    timeline, oid, first = rejected_once()
    second = ask(timeline, DELIVERED + hours(49) - SECOND, method="self_arrange")
    assert timeline.state.returns[first].status == "superseded"
    assert timeline.state.returns[second].attempt == 2
    assert timeline.deadline("resubmit", first) is None
    timeline.send(f.return_rejected(oid, second, DELIVERED + hours(50)))
    rejected = timeline.of("return.rejected")[-1]
    assert (rejected.can_resubmit, rejected.can_appeal) == (False, True)
    ask(timeline, DELIVERED + hours(51), method="self_arrange")
    assert timeline.codes() == ["resubmission_used"]
    timeline.advance(DELIVERED + days(10))
    closed = timeline.one("return.closed")
    assert (closed.request_id, closed.reason) == (second, "rejected_final")


def test_rule8_resubmission_after_48h_is_too_late() -> None:
    timeline, _, _ = rejected_once()
    ask(timeline, DELIVERED + hours(49), method="self_arrange")
    assert timeline.one("return.closed").reason == "rejected_final"
    assert timeline.codes() == ["return_refused"]


def test_rule8_rejected_final_when_nothing_happens() -> None:
    timeline, _, rid = rejected_once()
    timeline.fire("resubmit", rid)
    closed = timeline.one("return.closed")
    assert (closed.request_id, closed.reason) == (rid, "rejected_final")
    assert timeline.events[-1].time == DELIVERED + hours(49)
    assert timeline.state.deadlines == {}


@pytest.mark.parametrize("outcome", ["refund", "reject"])
def test_rule8_appeal_and_arbitration(outcome: str) -> None:
    timeline, oid, rid = rejected_once()
    timeline.send(f.appeal_submitted(oid, rid, DELIVERED + hours(2)))
    assert timeline.state.returns[rid].status == "appealed"
    assert timeline.state.deadlines == {}, "an appeal waits without a timer"
    timeline.send(f.arbitration_decided(oid, rid, outcome, DELIVERED + days(20)))
    if outcome == "reject":
        assert timeline.one("return.closed").reason == "arbitration_rejected"
        return
    assert timeline.one("return.approved").by == "platform"
    assert timeline.deadline("tracking", rid).due_at == DELIVERED + days(25)


def test_rule8_arbitration_refund_of_refund_only_refunds_at_once() -> None:
    timeline, oid = order("US", currency="USD")
    rid = ask(timeline, DELIVERED, kind="refund_only", reason="changed_mind")
    timeline.send(
        f.return_rejected(oid, rid, DELIVERED + hours(1)),
        f.appeal_submitted(oid, rid, DELIVERED + hours(2)),
        f.arbitration_decided(oid, rid, "refund", DELIVERED + days(3)),
    )
    assert timeline.types()[-2:] == ["return.approved", "refund.initiated"]


def test_rule8_appeal_after_the_window_is_refused() -> None:
    timeline, oid, rid = rejected_once()
    timeline.send(f.appeal_submitted(oid, rid, DELIVERED + hours(49)))
    assert timeline.codes() == ["request_not_open"]


def test_rule8_appeal_after_second_rejection() -> None:
    timeline, oid, _ = rejected_once()
    second = ask(timeline, DELIVERED + hours(2), method="self_arrange")
    timeline.send(
        f.return_rejected(oid, second, DELIVERED + hours(3)),
        f.appeal_submitted(oid, second, DELIVERED + hours(4)),
    )
    assert timeline.state.returns[second].status == "appealed"
    ask(timeline, DELIVERED + hours(5), method="self_arrange")
    assert timeline.codes() == ["appeal_pending"]


def test_duplicate_request_id_and_items_in_an_open_request() -> None:
    timeline, _ = order("US", currency="USD")
    rid = ask(timeline, DELIVERED, method="self_arrange")
    ask(timeline, DELIVERED, request_id=rid, method="self_arrange")
    ask(timeline, DELIVERED, method="self_arrange", items=[{"sku": "sku-a", "quantity": 1}])
    ask(timeline, DELIVERED, method="self_arrange", items=[{"sku": "nope", "quantity": 1}])
    assert timeline.codes() == ["duplicate_request", "items_in_open_request", "invalid_items"]


def test_return_of_a_cancelled_order_is_refused() -> None:
    placed = f.order_placed()
    timeline = Timeline(placed.order_id)
    timeline.send(placed, f.cancel_requested(placed.order_id, T0 + hours(1)))
    ask(timeline, T0 + hours(2), kind="refund_only")
    assert timeline.codes() == ["order_cancelled"]
