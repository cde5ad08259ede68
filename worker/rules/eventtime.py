"""Event time all the way: a message is judged against the order as it was at its
`occurred_at`, whatever the order in which messages arrive.

The order keeps a short history: the state right after its last published outcome (the
base) and the inputs decided since then, which published nothing (facts such as
`order.paid` or `order.shipped`, and parked messages). A message that happened before one
of those inputs is put in its place: the inputs are decided again from the base, with it,
in event-time order. Nothing published is ever taken back, because the base is never
rewound: after a replay it moves to the state after the last input that published
anything (those inputs are the facts the outcome was decided with). A message that
happened before a published outcome is decided after it, and where its rule refuses it
only because that outcome came first, the refusal says so (`outcome_already_published`).

Replays are short: every published outcome starts a new history, so it holds the silent
facts of one stretch of an order's life (typically placed, paid, shipped, delivered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from schemas.events import ActionRejectedData
from schemas.inbound import ANY_MESSAGE, InboundMessage
from worker.rules.codes import RejectionCode
from worker.rules.parking import is_parked
from worker.rules.state import (
    DeadLetter,
    DeadlineFired,
    Decision,
    EventOut,
    History,
    LabelGenerated,
    LabelJob,
    Logged,
    OrderState,
    field_of,
)

DecideOne = Callable[[OrderState, InboundMessage, datetime], Decision]

# Refusals that only mean "the order has moved on": when what moved it happened after the
# refused message, the refusal is the exception of event time, not the rule's verdict.
_MOVED_ON: frozenset[str] = frozenset(
    {
        "request_not_open",
        "no_cancel_request",
        "already_shipped",
        "already_ready_to_ship",
        "offer_open",  # 1.2: a seller's answer that happened before its published offer
    }
)
SUPERSEDED: RejectionCode = "outcome_already_published"


def needs_replay(state: OrderState, msg: InboundMessage) -> bool:
    """An input decided since the last published outcome happened after `msg`."""
    history = state.history
    if history is None:
        return False
    later = False
    for item in history.inputs:
        if item.message["message_id"] == msg.message_id:
            return False  # the same message again: decided where it stands, like any duplicate
        later = later or item.occurred_at > msg.occurred_at
    return later


@dataclass(frozen=True)
class Replayed:
    decision: Decision
    kept: History | None  # the inputs after the last one that published, from its state


def replay(
    state: OrderState, msg: InboundMessage, now: datetime, decide_one: DecideOne
) -> Replayed:
    """Decide the unpublished inputs again from the base, with `msg`, in event-time order.

    The inputs that come after the last one that published anything stay unpublished
    (kept), so a later message can still be put before them.
    """
    history = cast(History, state.history)
    inputs = (*history.inputs, _logged(msg, now))
    ordered = sorted(range(len(inputs)), key=lambda i: (inputs[i].occurred_at, i))
    current = history.base
    events: list[EventOut] = []
    letters: list[DeadLetter] = []
    jobs: list[LabelJob] = []
    kept: History | None = None
    for position, i in enumerate(ordered):
        item = inputs[i]
        message = msg if i == len(inputs) - 1 else ANY_MESSAGE.validate_python(item.message)
        decision = decide_one(current, message, item.at)
        current = decision.state
        if _publishes(decision):
            rest = tuple(inputs[j] for j in ordered[position + 1 :])
            kept = History(base=current, inputs=rest) if rest else None
        events += decision.events
        letters += decision.dead_letters
        jobs += decision.label_jobs
    decision = Decision(
        state=current,
        events=tuple(events),
        dead_letters=tuple(letters),
        label_jobs=tuple(jobs),
        applied=not is_parked(current, msg.message_id),
    )
    return Replayed(decision, kept)


def remember(
    before: OrderState,
    input: InboundMessage | DeadlineFired | LabelGenerated,
    now: datetime,
    decision: Decision,
    kept: History | None = None,
) -> Decision:
    """Keep the history up to date: a published outcome starts a new one (from `kept`, the
    unpublished inputs after it, if a replay left some); a silent message is added to it."""
    published = before.published
    history: History | None
    if _publishes(decision):
        published = dict(published)
        for event in decision.events:
            if event.type != "action.rejected":
                subject = field_of(event.data, "request_id") or ""
                published[subject] = max(event.time, published.get(subject, event.time))
        history = kept
    elif isinstance(input, DeadlineFired | LabelGenerated):
        if decision.state == before:
            return decision
        history = None  # a timer changed the state silently: start afresh from here
    else:
        old = before.history or History(base=before)
        history = History(base=old.base, inputs=(*old.inputs, _logged(input, now)))
    state = decision.state.model_copy(update={"published": published, "history": history})
    return decision.model_copy(update={"state": state})


def _publishes(decision: Decision) -> bool:
    return bool(decision.events or decision.dead_letters or decision.label_jobs)


def published_first(before: OrderState, msg: InboundMessage, decision: Decision) -> Decision:
    """Refusals of `msg` caused by an outcome that happened after it get the exception's code."""
    events = tuple(_recode(before, msg, event) for event in decision.events)
    if events == decision.events:
        return decision
    return decision.model_copy(update={"events": events})


def _recode(before: OrderState, msg: InboundMessage, event: EventOut) -> EventOut:
    data = event.data
    if not isinstance(data, ActionRejectedData) or data.message_id != msg.message_id:
        return event
    if data.code not in _MOVED_ON:
        return event
    moved_at = _moved_on_at(before, msg, data.code)
    if moved_at is None or moved_at <= msg.occurred_at:
        return event
    detail = f"{data.detail}; decided at {moved_at.isoformat()}, after this message happened"
    return event.model_copy(
        update={"data": data.model_copy(update={"code": SUPERSEDED, "detail": detail})}
    )


def _moved_on_at(before: OrderState, msg: InboundMessage, code: str) -> datetime | None:
    if code == "already_shipped":
        return before.shipped_at
    if code == "already_ready_to_ship":
        return before.ready_to_ship_at
    return before.published.get(field_of(msg, "request_id") or "")


def _logged(msg: InboundMessage, now: datetime) -> Logged:
    return Logged(message=msg.model_dump(mode="json"), occurred_at=msg.occurred_at, at=now)
