"""`aftersales order`'s open-requests table shows the deadline each request waits for now,
the same as the pending-deadlines table: not the seller's old answer deadline once the
request is approved (the parcel's timers) or replacing (1.2: the replacement's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from rich.console import Console

from tests.support import factories as f
from tests.support.factories import hours
from tests.support.timeline import Timeline
from tests.unit.test_offers_replacements_and_rejections import US_DELIVERED, request, us_order
from worker.cli.views import open_requests, order_renderable

ASKED = US_DELIVERED + hours(1)


def requested(kind: str = "return_and_refund") -> tuple[Timeline, str]:
    timeline, _ = us_order()
    return timeline, request(timeline, kind, ASKED)


def approved() -> tuple[Timeline, str]:  # self-arranged: waits for the tracking
    timeline, rid = requested()
    timeline.send(f.return_approved(timeline.order_id, rid, ASKED + hours(2)))
    return timeline, rid


def tracked() -> tuple[Timeline, str]:  # approved, tracking in: waits for the receipt
    timeline, rid = approved()
    timeline.send(f.tracking_submitted(timeline.order_id, rid, ASKED + hours(3)))
    return timeline, rid


def replacing() -> tuple[Timeline, str]:  # 1.2: an approved reshipment
    timeline, rid = requested("reshipment")
    timeline.send(f.return_approved(timeline.order_id, rid, ASKED + hours(2)))
    return timeline, rid


def rejected() -> tuple[Timeline, str]:  # may be resubmitted until its resubmit deadline
    timeline, rid = requested()
    timeline.send(f.return_rejected(timeline.order_id, rid, ASKED + hours(2)))
    return timeline, rid


def offered() -> tuple[Timeline, str]:  # 1.2: the buyer answers the offer
    timeline, rid = requested()
    timeline.send(f.message("seller.offer_made", timeline.order_id, ASKED + hours(2),
                            request_id=rid, offer="partial_refund", amount="12.00"))  # fmt: skip
    return timeline, rid


@pytest.mark.parametrize(
    ("story", "status", "timer"),
    [
        (requested, "requested", "return_response"),
        (approved, "approved", "tracking"),
        (tracked, "approved", "receipt_confirm"),
        (replacing, "replacing", "replacement_ship"),
        (rejected, "rejected", "resubmit"),
        (offered, "offered", "offer_response"),
    ],
)
def test_an_open_request_shows_the_deadline_pending_for_its_status(
    story: Callable[[], tuple[Timeline, str]], status: str, timer: str
) -> None:
    timeline, rid = story()
    request_ = timeline.state.returns[rid]
    pending = timeline.deadline(timer, rid)
    assert request_.status == status and pending is not None, timeline.state.deadlines
    state = timeline.state.model_dump(mode="json")

    (row,) = open_requests(state)

    assert row["status"] == status
    assert parse(row["respond_by"]) == pending.due_at
    if status in ("approved", "replacing"):  # the bug: the seller's old answer deadline
        assert pending.due_at != request_.respond_by


def test_a_replacing_request_shows_the_same_time_in_both_tables() -> None:
    timeline, rid = replacing()
    pending = timeline.deadline("replacement_ship", rid)
    assert pending is not None
    answer_by = timeline.state.returns[rid].respond_by
    text = render(timeline)
    shown = f"{pending.due_at:%Y-%m-%d %H:%M:%S} UTC"
    assert text.count(shown) == 2, text  # open requests and pending deadlines
    assert f"{answer_by:%Y-%m-%d %H:%M:%S} UTC" not in text, text


def test_an_appealed_request_waits_for_no_timer_and_shows_none() -> None:
    timeline, rid = rejected()
    timeline.send(f.appeal_submitted(timeline.order_id, rid, ASKED + hours(3)))
    assert timeline.state.returns[rid].status == "appealed"
    state = timeline.state.model_dump(mode="json")

    (row,) = open_requests(state)

    assert row["respond_by"] is None
    text = render(timeline)
    assert "until ready to ship" not in text  # that is what an open cancellation shows
    assert f"{timeline.state.returns[rid].respond_by:%Y-%m-%d %H:%M:%S} UTC" not in text


def parse(value: str) -> datetime:
    from schemas.types import parse_timestamp

    return parse_timestamp(value)


def render(timeline: Timeline) -> str:
    state = timeline.state
    view = {
        "order_id": timeline.order_id,
        "version": 1,
        "timeline": [],
        "deadlines": [
            {"id": d.id, "kind": d.kind, "ref": d.ref, "due_at": d.due_at.isoformat()}
            for d in sorted(state.deadlines.values(), key=lambda d: d.due_at)
        ],
        "parked": [],
        "in_flight": [],
        "state": state.model_dump(mode="json"),
    }
    console = Console(width=220, record=True, highlight=False)
    console.print(order_renderable(view))
    return console.export_text()
