"""Firing deadlines: which rule each timer belongs to, and catching up on overdue ones.

Rules are computed in event time, so before an input at time T is applied every timer
due at or before T fires first (in due order): the outcome is then the same whether the
schedule fired the timer before the input arrived or not. A timer never fires past a
parked message that happened before it (backlog safety, docs/design.md), and a message that
happened after such a held-back timer waits behind it (`held_back`).
"""

from __future__ import annotations

from datetime import datetime

from worker.rules.cancellation import auto_accept, expire_unpaid
from worker.rules.fulfilment import close, parcel_received, refund
from worker.rules.offers import offer_lapsed
from worker.rules.returns import auto_approve, close_rejected
from worker.rules.state import Deadline, OrderState
from worker.rules.step import Step, deadline_cause

# The status a request must be in for each of its timers to mean anything.
_REQUEST_STATUS = {
    "return_response": "requested",
    "resubmit": "rejected",
    "tracking": "approved",
    "label_validity": "approved",
    "receipt_confirm": "approved",
    "replacement_ship": "replacing",
    "offer_response": "offered",
}


BEHIND = "the deadline"
"""How a message waiting behind a held-back deadline names what it waits for."""


PAYMENT = "order.paid"
"""What a parked ready-to-ship or shipment of an unpaid order waits for (orders.py)."""


def held_back(state: OrderState, upto: datetime) -> Deadline | None:
    """The first timer due by `upto` that a parked message holds back, if any."""
    due = [
        d
        for d in state.deadlines.values()
        if d.kind != "hold" and d.due_at <= upto and blocked(state, d)
    ]
    return min(due, key=lambda d: (d.due_at, d.id)) if due else None


def blocked(state: OrderState, deadline: Deadline) -> bool:
    """A parked message that happened before the deadline must be applied first; and a
    message parked for the payment (a shipment: sellers ship paid orders) holds back the
    unpaid expiry whenever it happened, until the payment comes or its hold ends."""
    return any(
        parked.occurred_at < deadline.due_at
        or (deadline.kind == "unpaid_expiry" and parked.waiting_for == PAYMENT)
        for parked in state.parked
    )


def catch_up(step: Step, upto: datetime) -> Step:
    """Fire every timer due at or before `upto` that no parked message holds back."""
    while True:
        due = [
            d
            for d in step.state.deadlines.values()
            if d.kind != "hold" and d.due_at <= upto and not blocked(step.state, d)
        ]
        if not due:
            return step
        step = fire(step, min(due, key=lambda d: (d.due_at, d.id)))


def fire(step: Step, deadline: Deadline) -> Step:
    step = step.stop_timers(deadline.id)
    if not _still_meaningful(step.state, deadline):
        return step
    cause = deadline_cause(deadline)
    at, ref = deadline.due_at, deadline.ref
    match deadline.kind:
        case "unpaid_expiry":
            return expire_unpaid(step, deadline, cause)
        case "cancel_response":
            return auto_accept(step, deadline, cause)
        case "return_response":
            return auto_approve(step, deadline, cause)
        case "resubmit":
            return close_rejected(step, deadline, cause)
        case "tracking":
            return close(step, ref, "tracking_not_submitted", at, cause)
        case "label_validity":
            return close(step, ref, "label_expired", at, cause)
        case "receipt_confirm":
            return parcel_received(step, ref, at, cause)
        case "replacement_ship":  # 1.2: no replacement in time: the units are refunded
            return refund(step, ref, at, cause)
        case "offer_response":
            return offer_lapsed(step, deadline, cause)
        case _:  # "hold" deadlines are handled by parking
            return step


def _still_meaningful(state: OrderState, deadline: Deadline) -> bool:
    # Timers are stopped with every transition, so this only guards against corrupt state.
    wanted = _REQUEST_STATUS.get(deadline.kind)
    if wanted is None:
        return True
    request = state.returns.get(deadline.ref)
    return request is not None and request.status == wanted
