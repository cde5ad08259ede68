"""A message that happened after a deadline held back by a held message
waits behind that deadline, so holding one message never changes another's outcome.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from tests.unit.test_event_time import MIN, NOW, requested_return
from worker.rules.state import DeadlineFired


def _window_ended(held: bool) -> tuple[Timeline, str, str, datetime]:
    """r1's answer window ends at T0 + 4 days; an approval of r2 (not seen) may be held."""
    timeline, oid, rid = requested_return()
    due = timeline.deadline("return_response", rid).due_at
    if held:
        timeline.send(f.return_approved(oid, "r2", due - hours(1)), now=NOW)
    return timeline, oid, rid, due


@pytest.mark.parametrize("held", [False, True])
def test_a_late_answer_waits_behind_a_due_deadline_held_back_by_another_message(
    held: bool,
) -> None:
    timeline, oid, rid, due = _window_ended(held)
    timeline.send(f.return_rejected(oid, rid, due + hours(1)), now=NOW)
    if held:
        assert timeline.types() == ["return.requested"], "the answer waits behind the deadline"
        (approval,) = [p for p in timeline.state.parked if p.message["request_id"] == "r2"]
        timeline.fire("hold", str(approval.message["message_id"]))
        assert len(timeline.dead_letters) == 1
    assert timeline.types() == ["return.requested", "return.auto_approved", "action.rejected"]
    assert timeline.codes() == ["request_not_open"]
    assert timeline.state.parked == ()


def test_the_held_back_deadline_fires_when_the_held_message_is_applied() -> None:
    timeline, oid, rid, due = _window_ended(held=True)
    timeline.send(f.return_rejected(oid, rid, due + hours(1)), now=NOW)
    r2 = f.return_requested(
        oid,
        T0 + days(3),
        request_id="r2",
        kind="refund_only",
        reason="damaged",
        items=[{"sku": "sku-b", "quantity": 1}],
    )
    timeline.send(r2, now=NOW)
    assert timeline.types() == [
        "return.requested",
        "return.requested",
        "return.approved",
        "refund.initiated",
        "return.auto_approved",
        "action.rejected",
    ]
    assert timeline.state.parked == ()


def test_an_answer_before_the_held_back_deadline_is_applied_at_once() -> None:
    timeline, oid, rid, due = _window_ended(held=True)
    timeline.send(f.return_rejected(oid, rid, due - MIN), now=NOW)
    assert timeline.types() == ["return.requested", "return.rejected"]


def test_a_blocked_deadline_still_fires_nothing() -> None:
    timeline, oid, rid, _ = _window_ended(held=True)
    deadline = timeline.deadline("return_response", rid)
    decision = timeline.apply(DeadlineFired(order_id=oid, deadline=deadline), NOW)
    assert decision.applied is False and decision.events == ()


def test_when_holds_end_together_the_blocker_goes_first_and_the_message_behind_applies() -> None:
    timeline, oid, rid, due = _window_ended(held=True)
    rejection = f.return_rejected(oid, rid, due + hours(1))
    timeline.send(rejection, now=NOW)  # held at the same instant: both holds end together
    decision = timeline.fire("hold", rejection.message_id)
    (letter,) = decision.dead_letters
    assert letter.message["request_id"] == "r2"
    assert timeline.types() == ["return.requested", "return.auto_approved", "action.rejected"]
    assert timeline.codes() == ["request_not_open"]
    assert timeline.state.parked == () and timeline.state.deadlines.keys() == {f"tracking:{rid}"}


def test_a_message_behind_a_deadline_is_held_as_long_as_what_holds_the_deadline_back() -> None:
    """The answer for r3 waits for r3, then behind r1's deadline, which an approval of r2
    held later than it holds back: its hold ends first, but it is not dead-lettered."""
    timeline, oid, _, due = _window_ended(held=False)
    answer = f.return_rejected(oid, "r3", due + hours(1))
    timeline.send(answer, now=NOW)
    blocker = f.return_approved(oid, "r2", due - hours(1))
    timeline.send(blocker, now=NOW + MIN)
    timeline.send(
        f.return_requested(
            oid,
            T0 + days(3),
            request_id="r3",
            kind="refund_only",
            items=[{"sku": "sku-b", "quantity": 1}],
        ),
        now=NOW + 2 * MIN,
    )
    assert timeline.types() == ["return.requested", "return.requested"]
    decision = timeline.fire("hold", answer.message_id)
    assert decision.dead_letters == () and len(timeline.state.parked) == 2
    decision = timeline.fire("hold", blocker.message_id)
    assert [letter.message["message_id"] for letter in decision.dead_letters] == [
        blocker.message_id
    ]
    assert timeline.types()[2:] == ["return.auto_approved", "return.rejected"]
    assert timeline.state.parked == ()
