"""Out-of-order arrival, holds, fencing and backlog safety (docs/rules.md, docs/design.md)."""

from __future__ import annotations

from datetime import timedelta

from schemas.inbound import ANY_MESSAGE
from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from worker.rules import REJECTION_CODES, decide, new_state
from worker.rules.codes import RejectionCode
from worker.rules.state import Deadline, DeadlineFired

MINUTES_10 = timedelta(minutes=10)
NOW = T0 + days(5)  # processing time: only the holds use it


def test_message_before_order_placed_is_parked_then_applied() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    pay = f.paid(oid, T0 + hours(1))
    decision = timeline.send(pay, now=NOW)
    assert decision.applied is False
    assert decision.events == ()
    (parked,) = timeline.state.parked
    assert (parked.task, parked.waiting_for, parked.parked_at) == (
        "aftersales.order_event",
        "order.placed",
        NOW,
    )
    assert ANY_MESSAGE.validate_python(parked.message) == pay
    assert timeline.deadline("hold", pay.message_id).due_at == NOW + MINUTES_10
    decision = timeline.send(placed, now=NOW + timedelta(minutes=1))
    assert decision.applied is True
    assert timeline.state.parked == ()
    assert timeline.state.paid_at == T0 + hours(1)
    assert timeline.deadline("hold", pay.message_id) is None
    assert timeline.deadline("unpaid_expiry") is None, "the parked payment was applied"


def test_parked_messages_apply_in_event_time_order() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    # The seller's answer waits for the request, which waits for the order.
    timeline.send(f.cancel_accepted(oid, T0 + hours(10)), now=NOW)
    timeline.send(f.cancel_requested(oid, T0 + hours(5)), now=NOW)
    timeline.send(f.paid(oid, T0 + hours(1)), now=NOW)
    assert len(timeline.state.parked) == 3
    timeline.send(placed, now=NOW)
    assert timeline.types() == [
        "cancellation.requested",
        "cancellation.accepted",
        "order.cancelled",
        "refund.initiated",
    ]
    assert timeline.state.parked == () and timeline.state.deadlines == {}


def test_delivered_before_shipped_waits() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    timeline.send(f.delivered(oid, T0 + days(2)), now=NOW)
    assert timeline.state.parked[0].waiting_for == "order.shipped"
    timeline.send(f.shipped(oid, T0 + days(1)), now=NOW)
    assert timeline.state.delivered_at == T0 + days(2)


def test_hold_expiry_dead_letters_the_message() -> None:
    oid = f.new_id("order")
    timeline = Timeline(oid)
    answer = f.return_approved(oid, "ret-1", T0)
    timeline.send(answer, now=NOW)
    decision = timeline.fire("hold", answer.message_id)
    (letter,) = decision.dead_letters
    assert letter.task == "aftersales.seller_action"
    assert letter.message == answer.model_dump(mode="json")
    assert letter.reason.endswith("waited 10 minutes for order.placed")
    assert timeline.state.parked == () and timeline.state.deadlines == {}


def test_a_parked_message_records_the_last_fact_it_waited_for() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    answer = f.return_approved(oid, "ret-1", T0 + days(4))
    timeline.send(answer, now=NOW)
    timeline.send(placed, now=NOW)
    timeline.fire("hold", answer.message_id)
    assert timeline.dead_letters[0].reason.endswith("for buyer.return_requested ret-1")


def test_a_parked_message_sent_again_is_not_parked_twice() -> None:
    oid = f.new_id("order")
    timeline = Timeline(oid)
    pay = f.paid(oid, T0)
    timeline.send(pay, now=NOW)
    decision = timeline.send(pay, now=NOW + hours(1))
    assert decision.applied is False
    assert len(timeline.state.parked) == 1
    assert timeline.deadline("hold", pay.message_id).due_at == NOW + MINUTES_10


def test_stale_and_duplicate_deadlines_are_no_ops() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0 + hours(2)), f.cancel_requested(oid, T0 + hours(4)))
    current = timeline.deadline("cancel_response")
    moved = Deadline(kind="cancel_response", due_at=current.due_at - hours(1))
    state = timeline.state
    for stale in (moved, Deadline(kind="unpaid_expiry", due_at=T0 + hours(48))):
        decision = decide(state, DeadlineFired(order_id=oid, deadline=stale), NOW, timeline.policy)
        assert decision.state == state and decision.events == ()
    timeline.fire("cancel_response")
    again = decide(
        timeline.state, DeadlineFired(order_id=oid, deadline=current), NOW, timeline.policy
    )
    assert again.state == timeline.state and again.events == ()


def test_backlog_safety_a_deadline_waits_for_an_older_parked_message() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed, f.paid(oid, T0), f.shipped(oid, T0 + hours(1)), f.delivered(oid, T0 + days(1))
    )
    request = f.return_requested(oid, T0 + days(2), method="self_arrange")  # Wednesday 10:00
    rid = request.request_id
    timeline.send(request)
    deadline = timeline.deadline("return_response", rid)
    assert deadline.due_at == T0 + days(4)  # Friday 10:00: 48 business hours
    # The seller approved on Thursday 06:00 and the buyer sent tracking at Thursday 22:00,
    # but the tracking arrives first: it parks, waiting for the approval.
    approval = f.return_approved(oid, rid, T0 + days(2) + hours(20))
    tracking = f.tracking_submitted(oid, rid, T0 + days(3) + hours(12))
    timeline.send(tracking, now=NOW)
    blocked = decide(
        timeline.state, DeadlineFired(order_id=oid, deadline=deadline), NOW, timeline.policy
    )
    assert blocked.applied is False and blocked.state == timeline.state
    assert blocked.events == ()
    timeline.send(approval)
    assert timeline.types() == ["return.requested", "return.approved"]
    assert timeline.state.returns[rid].shipped_back_at == tracking.occurred_at
    assert timeline.deadline("return_response", rid) is None


def test_a_parked_seller_answer_is_not_overtaken_by_the_timer() -> None:
    """A seller who answered at 47 h must not be auto-accepted because the queue was behind."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    ask = f.cancel_requested(oid, T0 + hours(2))
    answer = f.cancel_rejected(oid, T0 + hours(49))
    # The answer overtakes the request it answers: it parks, then applies after it.
    timeline.send(answer, now=NOW)
    timeline.send(ask, now=NOW)
    assert timeline.types() == ["cancellation.requested", "cancellation.rejected"]
    assert timeline.one("cancellation.rejected").by == "seller"


def test_label_email_waits_for_the_label() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed, f.paid(oid, T0), f.shipped(oid, T0 + hours(1)), f.delivered(oid, T0 + days(1))
    )
    request = f.return_requested(oid, T0 + days(2), reason="wrong_item")
    rid = request.request_id
    timeline.send(request, f.return_approved(oid, rid, T0 + days(2) + hours(1)))
    timeline.send(f.label_email_requested(oid, rid, T0 + days(2) + hours(2)), now=NOW)
    assert timeline.state.parked[0].waiting_for == f"the label of return request {rid}"
    timeline.label(rid)
    assert timeline.types()[-2:] == ["return.label_generated", "return.label_email_requested"]
    assert timeline.state.parked == ()


def test_deterministic_causes() -> None:
    """The same input on the same state gives the same outcomes with the same causes."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0), f.cancel_requested(oid, T0 + hours(2)))
    deadline = timeline.deadline("cancel_response")
    fired = DeadlineFired(order_id=oid, deadline=deadline)
    first = decide(timeline.state, fired, NOW, timeline.policy)
    second = decide(timeline.state, fired, NOW + days(1), timeline.policy)
    assert first == second
    causes = {(e.type, e.cause) for e in first.events}
    assert len(causes) == len(first.events) == 3


def test_every_code_has_a_meaning() -> None:
    assert set(REJECTION_CODES) == set(RejectionCode.__args__)  # type: ignore[attr-defined]
    assert all(meaning for meaning in REJECTION_CODES.values())


def test_new_state_is_empty() -> None:
    state = new_state("o-1")
    assert (state.order, state.parked, state.deadlines, state.returns) == (None, (), {}, {})


def test_a_shipment_held_for_its_payment_holds_back_the_unpaid_expiry() -> None:
    """Sellers ship paid orders: a shipment waiting for `order.paid` is evidence against
    the unpaid expiry, whenever it happened, so the schedule's firing waits for it."""
    timeline = Timeline("o-ship-first")
    timeline.send(f.order_placed("o-ship-first", at=T0), now=T0 + days(4))
    timeline.send(f.shipped("o-ship-first", at=T0 + days(3)), now=T0 + days(4))

    fired = timeline.fire("unpaid_expiry")  # due at T0 + 48 h: overdue by now

    assert (fired.applied, timeline.types()) == (False, [])
    timeline.send(f.paid("o-ship-first", at=T0 + hours(1)), now=T0 + days(4))
    assert timeline.types() == []
    assert timeline.state.cancellation is None
    assert timeline.state.shipped_at == T0 + days(3)


def test_the_unpaid_expiry_fires_once_a_shipment_waiting_for_a_payment_gives_up() -> None:
    timeline = Timeline("o-never-paid")
    timeline.send(f.order_placed("o-never-paid", at=T0), now=T0 + days(4))
    timeline.send(f.shipped("o-never-paid", at=T0 + days(3)), now=T0 + days(4))

    timeline.advance(T0 + days(4) + timedelta(minutes=10))  # the shipment's hold ends

    assert [letter.message["type"] for letter in timeline.dead_letters] == ["order.shipped"]
    assert timeline.one("order.cancelled").by == "platform"
