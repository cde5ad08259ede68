"""1.2: the seller's offer on an open request, the buyer's answer, and replacements.

One offer per request (`seller.offer_made`): a partial refund, a reshipment or an
exchange. While it is open the seller's answer window stops; the buyer has
`offer_response_window` to accept or decline. Accepted, a partial refund is paid at once
and closes the request (`offer_accepted`); a reshipment or exchange continues as that
kind, approved. Declined or lapsed, the request is back with the seller, whose answer
window starts again in full. A reshipment (from approval) or exchange (from receipt)
waits `replacement_ship_window` for `seller.replacement_shipped`, else refunds the units;
an exchange's replacement that comes before its receipt waits for it (held).
"""

from __future__ import annotations

from datetime import datetime

from schemas.events import (
    OfferDeclinedData,
    OfferLapsedData,
    OfferMadeData,
    ReplacementShippedData,
    ReturnApprovedData,
)
from schemas.inbound import OfferAccepted, OfferDeclined, OfferMade, ReplacementShipped
from worker.rules.cancellation import refund_event
from worker.rules.fulfilment import approve, close, request_timers
from worker.rules.money import ZERO, Cash, Refund, refund_for, round_money
from worker.rules.returns import respond_by
from worker.rules.state import Deadline, Offer, OrderState, ReturnRequest
from worker.rules.step import Park, Step, amount, facts, reject, terms


def most_refundable(state: OrderState, request: ReturnRequest) -> Refund:
    """What the request would refund if approved (the cap of a partial refund)."""
    policy, order = terms(state), facts(state)
    cap = policy.self_arrange_postage_cap
    cash_cap = None if cap is None else Cash(cap, policy.currency or order.currency)
    return refund_for(state, request, order, cash_cap)


def offer_made(state: OrderState, msg: OfferMade) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.offer is not None:
        detail = f"request {msg.request_id} already had an offer ({request.offer.status})"
        return reject(state, msg, "offer_already_made", detail)
    if request.status != "requested":
        return reject(
            state, msg, "request_not_open", f"request {msg.request_id} is {request.status}"
        )
    if msg.offer == request.kind:
        return reject(state, msg, "offer_not_allowed", f"the request is a {msg.offer}: approve it")
    if msg.offer == "exchange" and request.method is None:
        detail = "an exchange needs the units back: this request has no return method"
        return reject(state, msg, "offer_not_allowed", detail)
    currency = facts(state).currency
    offered = None
    if msg.amount is not None:
        offered = round_money(msg.amount, currency)
        if offered != msg.amount:  # paid as offered: never rounded to nothing, or up
            detail = (
                f"{msg.amount} {currency} is finer than the currency's minor unit: "
                f"offer an amount such as {offered} {currency}"
            )
            return reject(state, msg, "offer_not_allowed", detail)
        most = most_refundable(state, request).amount
        if offered > most:
            detail = f"{offered} offered; the request would refund {round_money(most, currency)}"
            return reject(state, msg, "offer_too_high", detail)
    policy, at = terms(state), msg.occurred_at
    due = policy.end(policy.offer_response_window, at)
    offer = Offer(kind=msg.offer, amount=offered, made_at=at, respond_by=due)
    step = Step(state).stop_timers(*request_timers(msg.request_id))  # the answer window stops
    step = step.change_return(msg.request_id, status="offered", offer=offer)
    step = step.start_timer("offer_response", msg.request_id, due)
    data = OfferMadeData(
        request_id=msg.request_id,
        offer=msg.offer,
        amount=amount(offered, currency) if offered is not None else None,
        respond_by=due,
    )
    return step.emit("offer.made", data, at, msg.message_id)


def offer_answered(state: OrderState, msg: OfferAccepted | OfferDeclined) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status == "requested" and request.offer is None:
        return Park(f"seller.offer_made {msg.request_id}")
    if request.offer is None:
        status = request.closed_reason or request.status
        detail = f"request {msg.request_id} is {status} and had no offer"
        return reject(state, msg, "request_not_open", detail)
    if request.status != "offered":
        return reject(state, msg, "request_not_open", f"the offer is {request.offer.status}")
    at, cause = msg.occurred_at, msg.message_id
    if isinstance(msg, OfferDeclined):
        step = _back_to_seller(Step(state), request, "declined", at)
        due = step.state.returns[msg.request_id].respond_by
        declined = OfferDeclinedData(request_id=msg.request_id, respond_by=due)
        return step.emit("offer.declined", declined, at, cause)
    offer = request.offer.model_copy(update={"status": "accepted"})
    step = Step(state).stop_timers(*request_timers(msg.request_id))
    step = step.change_return(msg.request_id, offer=offer)
    if offer.kind == "partial_refund":
        return _partial_refund(step, request, offer, at, cause)
    # The seller pays every shipment of a reshipment or exchange.
    step = step.change_return(msg.request_id, kind=offer.kind, payer="seller", status="requested")
    data = ReturnApprovedData(request_id=msg.request_id, by="seller")
    step = step.emit("return.approved", data, at, cause)
    return approve(step, msg.request_id, "seller", at, cause)


def _partial_refund(
    step: Step, request: ReturnRequest, offer: Offer, at: datetime, cause: str
) -> Step:
    """Paid at once, never more than the request would refund; the request closes."""
    most = most_refundable(step.state, request).amount
    paid = min(offer.amount or ZERO, most)
    step = step.change_return(request.request_id, refund=paid)
    step = refund_event(step, request.request_id, Refund(paid, ZERO, ZERO), at, cause)
    return close(step, request.request_id, "offer_accepted", at, cause)


def _back_to_seller(step: Step, request: ReturnRequest, status: str, at: datetime) -> Step:
    """Declined or lapsed: the seller's answer window starts again, in full, from `at`."""
    assert request.offer is not None
    offer = request.offer.model_copy(update={"status": status})
    due = respond_by(terms(step.state), at)
    step = step.stop_timers(*request_timers(request.request_id))
    step = step.change_return(request.request_id, status="requested", offer=offer, respond_by=due)
    return step.start_timer("return_response", request.request_id, due)


def offer_lapsed(step: Step, deadline: Deadline, cause: str) -> Step:
    """No answer from the buyer by the offer's respond_by."""
    request = step.state.returns[deadline.ref]
    step = _back_to_seller(step, request, "lapsed", deadline.due_at)
    due = step.state.returns[deadline.ref].respond_by
    data = OfferLapsedData(request_id=deadline.ref, deadline=deadline.due_at, respond_by=due)
    return step.emit("offer.lapsed", data, deadline.due_at, cause)


# --- replacements -----------------------------------------------------------------------


def replacement_shipped(state: OrderState, msg: ReplacementShipped) -> Step | Park:
    request = state.returns.get(msg.request_id)
    if request is None:
        return Park(f"buyer.return_requested {msg.request_id}")
    if request.status in ("requested", "rejected", "appealed", "offered"):
        return Park(f"the approval of return request {msg.request_id}")
    if request.kind not in ("reshipment", "exchange"):
        detail = f"request {msg.request_id} is a {request.kind}: nothing is sent again"
        return reject(state, msg, "not_a_replacement", detail)
    if request.status == "approved":  # an exchange whose parcel is not in yet
        return Park(f"the receipt of return request {msg.request_id}")
    if request.status != "replacing":
        detail = f"request {msg.request_id} is {request.closed_reason or request.status}"
        return reject(state, msg, "request_not_open", detail)
    step = Step(state).stop_timers(*request_timers(msg.request_id))
    step = step.change_return(
        msg.request_id, status="replaced", replacement_tracking=msg.tracking_number
    )
    data = ReplacementShippedData(
        request_id=msg.request_id,
        kind=request.kind,
        carrier=msg.carrier,
        tracking_number=msg.tracking_number,
    )
    return step.emit("replacement.shipped", data, msg.occurred_at, msg.message_id)
