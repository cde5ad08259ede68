"""Return requests (rules 6-8): asking, the seller's answer, resubmission and appeal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from schemas.events import (
    ReturnApprovedData,
    ReturnAutoApprovedData,
    ReturnRejectedData,
    ReturnRequestedData,
)
from schemas.inbound import (
    AppealSubmitted,
    ArbitrationDecided,
    ItemSelection,
    ReturnRequested,
    SellerReturnApproved,
    SellerReturnRejected,
)
from schemas.policy import MarketplacePolicy
from worker.rules.calendar import add_business_hours
from worker.rules.fulfilment import approve, close, request_timers
from worker.rules.money import ZERO, drop_off_cost, drop_off_problem, round_money, whole_order
from worker.rules.state import Deadline, OrderFacts, OrderState, ReturnRequest
from worker.rules.step import Park, Step, facts, reject, terms
from worker.rules.units import Taken, earlier_requests, first_tries, second_tries


def respond_by(policy: MarketplacePolicy, at: datetime) -> datetime:
    """Rules 6-7: the seller's answer window, in business hours where the policy says so."""
    window = policy.return_response_window
    if policy.return_response_calendar == "business":
        return add_business_hours(at, window.nominal, policy.timezone, policy.holidays)
    return policy.end(window, at)


BEFORE_DELIVERY = "before delivery only refund_only is possible"
REPLACEMENT_KINDS = ("reshipment", "exchange")
COD_BEFORE_DELIVERY = "a cash-on-delivery order is paid on delivery: nothing to refund before it"
NOT_SHIPPED = "the order had not shipped when this was asked: cancel it instead"


def return_requested(state: OrderState, msg: ReturnRequested) -> Step | Park:
    if msg.request_id in state.returns:
        return reject(state, msg, "duplicate_request", "this request_id is already used")
    if msg.kind in REPLACEMENT_KINDS and not msg.reason.seller_fault:
        detail = f"{msg.kind} is for seller-fault reasons only (the seller pays every shipment)"
        return reject(state, msg, "kind_not_allowed", detail)
    if _before_shipping(state, msg):
        return reject(state, msg, "not_shipped", NOT_SHIPPED)
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is cancelled")
    if state.shipped_at is None and msg.kind == "refund_only":
        # Refused if the shipment never comes, or comes but happened after the request.
        return Park("order.shipped", refuse=("not_shipped", NOT_SHIPPED))
    if state.shipped_at is None:
        return Park("order.shipped")
    order = facts(state)
    if order.payment_method == "cod":
        # Paid on delivery (1.1): before it there is nothing to refund.
        if state.delivered_at is None:
            return Park("order.delivered", refuse=("not_delivered", COD_BEFORE_DELIVERY))
        if msg.occurred_at < state.delivered_at:
            return reject(state, msg, "not_delivered", COD_BEFORE_DELIVERY)
    if state.paid_at is None:
        return Park("order.paid")
    selection = _selection(order, msg)
    if isinstance(selection, str):
        return reject(state, msg, "invalid_items", selection)
    found = earlier_requests(state, selection, _late(state, msg))
    if isinstance(found, tuple):
        return reject(state, msg, found[0], found[1])
    return _check_window(state, msg, selection, taken=found)


def _late(state: OrderState, msg: ReturnRequested) -> bool:
    """After the return window (counted from delivery; no window before it)."""
    delivered_at = state.delivered_at
    policy = terms(state)
    return delivered_at is not None and msg.occurred_at > policy.end(
        policy.return_window, delivered_at
    )


def _before_shipping(state: OrderState, msg: ReturnRequested) -> bool:
    """A refund_only that happened before the shipment, or before a cancellation that
    stopped the order from ever shipping (event time, whatever the arrival order)."""
    if msg.kind != "refund_only":
        return False
    if state.shipped_at is not None:
        return msg.occurred_at < state.shipped_at
    return state.cancellation is not None and msg.occurred_at < state.cancellation.at


def _selection(order: OrderFacts, msg: ReturnRequested) -> tuple[ItemSelection, ...] | str:
    if msg.items is None:
        return whole_order(order)
    ordered = {item.sku: item.quantity for item in order.items}
    for s in msg.items:
        if s.sku not in ordered:
            return f"sku {s.sku} is not in the order"
        if s.quantity > ordered[s.sku]:
            return f"sku {s.sku}: {s.quantity} asked, {ordered[s.sku]} ordered"
    return tuple(msg.items)


def _check_window(
    state: OrderState,
    msg: ReturnRequested,
    selection: tuple[ItemSelection, ...],
    taken: Taken,
) -> Step | Park:
    policy = terms(state)
    delivered_at = state.delivered_at
    if msg.kind != "refund_only" and delivered_at is None:
        # Most likely early rather than wrong: the app offers returns after delivery, so
        # wait for order.delivered; refuse only if it never comes.
        return Park("order.delivered", refuse=("not_delivered", BEFORE_DELIVERY))
    if msg.kind != "refund_only" and delivered_at and msg.occurred_at < delivered_at:
        return reject(state, msg, "not_delivered", BEFORE_DELIVERY)
    # A resubmission has its own 48 h (rule 8), even when it runs past the return window.
    if not taken.by_request and _late(state, msg):
        return reject(state, msg, "outside_return_window", "the return window has passed")
    cost = ZERO
    if msg.method == "drop_off":
        order = facts(state)
        # Money limits are in the marketplace's currency; without one there are none.
        limits = policy.currency or order.currency
        problem = drop_off_problem(policy.drop_off, order, selection, msg.parcel, limits)
        if problem is not None:
            return reject(state, msg, "drop_off_ineligible", problem)
        cost = round_money(
            drop_off_cost(policy.drop_off, order, selection, msg.parcel, limits), order.currency
        )
    return _open(state, msg, selection, taken, cost)


def _open(
    state: OrderState,
    msg: ReturnRequested,
    selection: tuple[ItemSelection, ...],
    taken: Taken,
    cost: Decimal,
) -> Step:
    due = respond_by(terms(state), msg.occurred_at)
    again = taken.units
    request = ReturnRequest(
        request_id=msg.request_id,
        status="requested",
        kind=msg.kind,
        reason=msg.reason,
        method=msg.method,
        items=selection,
        parcel=msg.parcel,
        attempt=2 if again else 1,
        previous_request_id=next(iter(taken.by_request), None),
        second_tries=tuple(ItemSelection(sku=k, quantity=q) for k, q in sorted(again.items()))
        if again
        else None,
        requested_at=msg.occurred_at,
        respond_by=due,
        return_cost=cost,
        payer="seller" if msg.reason.seller_fault else "buyer",  # rule 11
    )
    step = Step(state)
    for request_id, units in taken.by_request.items():
        step = _take_over(step, request_id, units)
    request = _told_by_the_superseded(step.state, request)
    step = step.put_return(request).start_timer("return_response", msg.request_id, due)
    data = ReturnRequestedData(
        request_id=msg.request_id,
        kind=msg.kind,
        method=msg.method,
        reason=msg.reason,
        respond_by=due,
    )
    return step.emit("return.requested", data, msg.occurred_at, msg.message_id)


def _told_by_the_superseded(state: OrderState, request: ReturnRequest) -> ReturnRequest:
    """The request without `second_tries` when the request it resubmits tells them: that
    one is superseded (it gave all its units, and a superseded request never changes
    again), and its units shared with this one are exactly the units asked again, as
    releases before 1.2 read a resubmission (units.second_tries derives them so). Stored
    without them, the state stays format 2, which 1.1 workers read during a rolling upgrade
    (docs/operations.md, "Upgrades": expand, then contract); only what 1.1 cannot say (units
    taken from a request that waits on, or from several) makes it format 3."""
    previous = state.returns.get(request.previous_request_id or "")
    if request.second_tries is None or previous is None or previous.status != "superseded":
        return request
    bare = request.model_copy(update={"second_tries": None})
    return bare if second_tries(state, bare) == second_tries(state, request) else request


def _take_over(step: Step, request_id: str, units: dict[str, int]) -> Step:
    """A rejected request gives units (rejected once) to the request that asks for them
    again: with none left it is superseded, else it waits on with the rest (1.2)."""
    rejected = step.state.returns[request_id]
    rest = tuple(
        ItemSelection(sku=s.sku, quantity=s.quantity - units.get(s.sku, 0))
        for s in rejected.items
        if s.quantity > units.get(s.sku, 0)
    )
    if not rest:
        step = step.stop_timers(*request_timers(request_id))
        return step.change_return(request_id, status="superseded")
    return step.change_return(request_id, items=rest)


def seller_answer(
    state: OrderState, msg: SellerReturnApproved | SellerReturnRejected
) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status == "offered":
        detail = f"the seller's offer on request {request.request_id} waits for the buyer"
        return reject(state, msg, "offer_open", detail)
    if request.status != "requested":
        return reject(state, msg, "request_not_open", _status(request))
    at, cause = msg.occurred_at, msg.message_id
    step = Step(state)
    if isinstance(msg, SellerReturnApproved):
        data = ReturnApprovedData(request_id=msg.request_id, by="seller")
        return approve(
            step.emit("return.approved", data, at, cause), msg.request_id, "seller", at, cause
        )
    step = step.stop_timers(*request_timers(msg.request_id))
    step = step.change_return(msg.request_id, status="rejected")
    rejected = ReturnRejectedData(
        request_id=msg.request_id,
        reason=msg.reason,
        can_resubmit=bool(first_tries(state, request)),
        can_appeal=True,
    )
    step = step.emit("return.rejected", rejected, at, cause)
    policy = terms(state)
    return step.start_timer("resubmit", msg.request_id, policy.end(policy.resubmit_window, at))


def appeal(state: OrderState, msg: AppealSubmitted) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status in ("requested", "offered"):
        return Park(f"the seller's answer to return request {msg.request_id}")
    if request.status != "rejected":
        return reject(state, msg, "request_not_open", _status(request))
    step = Step(state).stop_timers(*request_timers(msg.request_id))
    return step.change_return(msg.request_id, status="appealed")


def arbitration(state: OrderState, msg: ArbitrationDecided) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status in ("requested", "rejected", "offered"):
        return Park(f"buyer.appeal_submitted {msg.request_id}")
    if request.status != "appealed":
        return reject(state, msg, "request_not_open", _status(request))
    at, cause = msg.occurred_at, msg.message_id
    if msg.outcome == "reject":
        return close(Step(state), msg.request_id, "arbitration_rejected", at, cause)
    data = ReturnApprovedData(request_id=msg.request_id, by="platform")
    step = Step(state).emit("return.approved", data, at, cause)
    return approve(step, msg.request_id, "platform", at, cause)


def _status(request: ReturnRequest) -> str:
    return f"request {request.request_id} is {request.closed_reason or request.status}"


# --- deadlines ----------------------------------------------------------------------


def auto_approve(step: Step, deadline: Deadline, cause: str) -> Step:
    """Rule 6: no answer by respond_by approves the request."""
    data = ReturnAutoApprovedData(request_id=deadline.ref, deadline=deadline.due_at)
    step = step.emit("return.auto_approved", data, deadline.due_at, cause)
    return approve(step, deadline.ref, "timer", deadline.due_at, cause)


def close_rejected(step: Step, deadline: Deadline, cause: str) -> Step:
    """Rule 8: neither resubmitted nor appealed in time."""
    return close(step, deadline.ref, "rejected_final", deadline.due_at, cause)
