"""decide(state, input, now, policy) -> Decision: the one entry point of the rules."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.inbound import (
    ANY_MESSAGE,
    AppealSubmitted,
    ArbitrationDecided,
    CancelRequested,
    InboundMessage,
    LabelEmailRequested,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    PlatformOrderCancelled,
    ReturnDroppedOff,
    ReturnRequested,
    ReturnTrackingSubmitted,
    SellerCancelAccepted,
    SellerCancelRejected,
    SellerOrderCancelled,
    SellerReturnApproved,
    SellerReturnReceived,
    SellerReturnRejected,
)
from schemas.policy import PolicySet
from worker.rules import cancellation, fulfilment, orders, parking, platform, returns, timers
from worker.rules.state import Deadline, DeadlineFired, Decision, LabelGenerated, OrderState
from worker.rules.step import Park, Step

DEFAULT_HOLD = timedelta(minutes=10)  # contract section 2: held up to 10 minutes


def new_state(order_id: str) -> OrderState:
    """The state of an order not seen yet."""
    return OrderState(order_id=order_id)


def decide(
    state: OrderState,
    input: InboundMessage | DeadlineFired | LabelGenerated,
    now: datetime,
    policy: PolicySet,
    hold_for: timedelta = DEFAULT_HOLD,
) -> Decision:
    """Apply one input to an order. `now` is used only to time the hold of a parked input."""
    if isinstance(input, DeadlineFired):
        return _on_deadline(state, input.deadline, policy)
    if isinstance(input, LabelGenerated):
        return _finish(_retry(fulfilment.label_generated(state, input), policy))
    if parking.is_parked(state, input.message_id):
        return Decision(state=state, applied=False)
    if isinstance(input, OrderPlaced) and (letter := orders.wrong_currency(input, policy)):
        return Decision(state=state, dead_letters=(letter,))
    result = apply_message(state, input, policy)
    if isinstance(result, Park):
        parked = parking.park(state, input, now, hold_for, result)
        return Decision(state=parked, applied=False)
    return _finish(_retry(result, policy))


def apply_message(state: OrderState, msg: InboundMessage, policies: PolicySet) -> Step | Park:
    """Timers due by the message's event time fire first, then the message's own rule."""
    caught = timers.catch_up(Step(state), msg.occurred_at)
    result = _handle(caught.state, msg, policies)
    return result if isinstance(result, Park) else caught.then(result)


def _handle(state: OrderState, msg: InboundMessage, policies: PolicySet) -> Step | Park:
    if isinstance(msg, OrderPlaced):
        return orders.placed(state, msg, policies)
    if state.order is None:
        return Park("order.placed")
    match msg:
        case OrderPaid():
            return orders.paid(state, msg)
        case OrderReadyToShip():
            return orders.ready_to_ship(state, msg)
        case OrderShipped():
            return orders.shipped(state, msg)
        case OrderDelivered():
            return orders.delivered(state, msg)
        case CancelRequested():
            return cancellation.buyer_cancel(state, msg)
        case SellerCancelAccepted() | SellerCancelRejected():
            return cancellation.seller_answer(state, msg)
        case SellerOrderCancelled():
            return cancellation.seller_cancel(state, msg)
        case ReturnRequested():
            return returns.return_requested(state, msg)
        case SellerReturnApproved() | SellerReturnRejected():
            return returns.seller_answer(state, msg)
        case AppealSubmitted():
            return returns.appeal(state, msg)
        case ArbitrationDecided():
            return returns.arbitration(state, msg)
        case ReturnTrackingSubmitted() | ReturnDroppedOff():
            return fulfilment.parcel_sent(state, msg)
        case SellerReturnReceived():
            return fulfilment.received(state, msg)
        case LabelEmailRequested():
            return fulfilment.label_email(state, msg)
        case PlatformOrderCancelled():
            return platform.order_cancelled(state, msg)
    raise AssertionError(f"no rule for {msg.type}")  # pragma: no cover - union is exhaustive


def _on_deadline(state: OrderState, deadline: Deadline, policies: PolicySet) -> Decision:
    if state.deadlines.get(deadline.id) != deadline:
        return Decision(state=state)  # stale or duplicate timer: fenced off
    if deadline.kind == "hold":
        held, letter = parking.expire_hold(state, deadline)
        if letter is not None:
            return Decision(state=held.state, dead_letters=(letter,))
        return _finish(_retry(held, policies))
    if timers.blocked(state, deadline.due_at):
        return Decision(state=state, applied=False)  # the shell fires it again later
    return _finish(_retry(timers.catch_up(Step(state), deadline.due_at), policies))


def _retry(step: Step, policies: PolicySet) -> Step:
    """Apply parked messages, oldest event first, until none of them can move."""
    while True:
        for parked in sorted(step.state.parked, key=lambda p: (p.occurred_at, p.parked_at)):
            msg = ANY_MESSAGE.validate_python(parked.message)
            rest = parking.unpark(step.state, msg.message_id)
            result = apply_message(rest, msg, policies)
            if isinstance(result, Park):
                step = step.with_state(
                    parking.rewait(step.state, msg.message_id, result)
                )
                continue
            step = step.then(result)
            break
        else:
            return step


def _finish(step: Step) -> Decision:
    return Decision(state=step.state, events=step.events, label_jobs=step.label_jobs)
