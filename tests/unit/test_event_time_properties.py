"""Properties of event time.

Every generated history arrives within the hold time (one processing instant), in every
order hypothesis picks; then time runs until every timer has fired. The outcomes must be
those of the history delivered in event-time order, except where the documented exception
applies: a message that arrived after an outcome that happened later than it had been
published (it is decided after that outcome, never before it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline

NOW = T0 + days(5)  # every message arrives at this processing instant, within its hold
FAR = T0 + days(400)  # long after every timer of the order
FEW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(placed: Any, messages: list[Any]) -> tuple[Timeline, bool]:
    """Send `messages` in this order after `placed`; True if the exception could apply: a
    message arrived after an outcome was published while a message that happened after
    it was already known (the published outcome may have been decided with it)."""
    timeline = Timeline(placed.order_id)
    timeline.send(placed)
    excepted, fixed, known = False, placed.occurred_at, placed.occurred_at
    for msg in messages:
        excepted |= msg.occurred_at < fixed
        known = max(known, msg.occurred_at)
        if timeline.send(msg, now=NOW).events:
            fixed = known
    timeline.advance(FAR)
    return timeline, excepted


def outcomes(timeline: Timeline, keep: Any = lambda data: True) -> list[tuple[str, str]]:
    return sorted((e.type, e.data.model_dump_json()) for e in timeline.events if keep(e.data))


# --- item 11: facts of one order, any arrival order --------------------------------------


ACTIONS: dict[str, Any] = {
    "cancel": f.cancel_requested,
    "seller_cancel": f.seller_cancelled,
    "refund_only": lambda oid, at: f.return_requested(
        oid, at, request_id="r1", kind="refund_only", reason="not_received"
    ),
    "accept": f.cancel_accepted,
    "reject": f.cancel_rejected,
}


@st.composite
def order_histories(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    """An order's facts and a few actions, each at its own minute (no ties)."""
    placed = f.order_placed(marketplace=draw(st.sampled_from(["UK", "US"])))
    oid = placed.order_id
    minutes = draw(st.lists(st.integers(1, 4 * 60), min_size=8, max_size=8, unique=True))
    facts = zip([f.paid, f.ready_to_ship, f.shipped, f.delivered], sorted(minutes[:4]), strict=True)
    chosen = [make(oid, _at(at)) for make, at in facts if draw(st.booleans())]
    times = iter(minutes[4:])  # the actions fall anywhere among the facts
    actions = draw(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=3, unique=True))
    for action in actions:
        chosen.append(ACTIONS[action](oid, _at(next(times))))
    return placed, chosen


@FEW
@given(order_histories(), st.data())
def test_any_arrival_order_gives_the_outcomes_of_event_time_order(
    history: tuple[Any, list[Any]],
    data: st.DataObject,
) -> None:
    placed, messages = history
    in_order, _ = run(placed, sorted(messages, key=lambda m: m.occurred_at))
    arrival = data.draw(st.permutations(messages))
    shuffled, excepted = run(placed, arrival)
    event("exception" if excepted else "same outcomes")
    if not excepted:
        assert outcomes(shuffled) == outcomes(in_order)
    assert shuffled.state.parked == () and shuffled.state.deadlines == {}


# --- item 2: a held message about another request --------------------------------------------


@st.composite
def request_histories(draw: st.DrawFn) -> tuple[Any, list[Any], list[Any], Timeline]:
    """r1 asked at T0 + 2 days (answer window ends T0 + 4 days); its later messages, and
    messages about r2: the seller's approval, perhaps the request it answers."""
    placed = f.order_placed(marketplace="US")
    oid = placed.order_id
    prefix = [
        f.paid(oid, T0),
        f.shipped(oid, T0 + hours(1)),
        f.delivered(oid, T0 + days(1)),
        f.return_requested(
            oid,
            T0 + days(2),
            request_id="r1",
            method="self_arrange",
            items=[{"sku": "sku-a", "quantity": 1}],
        ),
    ]
    offsets = st.integers(-30, 30).map(lambda h: T0 + days(4) + hours(h) + timedelta(minutes=1))
    answer_at = draw(offsets)
    answer = draw(st.sampled_from([f.return_approved, f.return_rejected]))(oid, "r1", answer_at)
    r1 = [answer]
    if draw(st.booleans()):
        r1.append(f.tracking_submitted(oid, "r1", answer_at + hours(draw(st.integers(1, 9)))))
    approved_at = draw(offsets)
    r2 = [f.return_approved(oid, "r2", approved_at)]
    if draw(st.booleans()):
        r2.append(
            f.return_requested(
                oid,
                approved_at - hours(draw(st.integers(1, 20))),
                request_id="r2",
                kind="refund_only",
                reason="damaged",
                items=[{"sku": "sku-b", "quantity": 1}],
            )
        )
    base = Timeline(oid)
    base.send(placed, *prefix)
    return placed, prefix + r1, r2, base


def _about_r1(messages: list[Any]) -> Any:
    ids = {m.message_id for m in messages}
    return lambda data: (
        getattr(data, "request_id", None) == "r1" or getattr(data, "message_id", None) in ids
    )


@FEW
@given(request_histories(), st.data())
def test_a_held_message_about_another_request_changes_no_outcome_of_this_one(
    history: tuple[Any, list[Any], list[Any], Timeline],
    data: st.DataObject,
) -> None:
    placed, own, other, _ = history
    keep = _about_r1(own)
    alone, _ = run(placed, own)
    prefix, later = own[:4], own[4:]
    arrival = data.draw(st.permutations(later + other))
    mixed, excepted = run(placed, prefix + arrival)
    event("exception" if excepted else "same outcomes")
    if not excepted:
        assert outcomes(mixed, keep) == outcomes(alone, keep)
    assert mixed.state.parked == () and mixed.state.deadlines == {}
