"""decide(state, input, now, policy) -> Decision: the one entry point of the rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.inbound import (
    ANY_MESSAGE,
    AppealSubmitted,
    ArbitrationDecided,
    CancelRequested,
    InboundMessage,
    LabelEmailRequested,
    OfferAccepted,
    OfferDeclined,
    OfferMade,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    PlatformOrderCancelled,
    ReplacementShipped,
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
from worker.rules import (
    cancellation,
    eventtime,
    fulfilment,
    offers,
    orders,
    parking,
    platform,
    returns,
    timers,
)
from worker.rules.state import (
    DeadLetter,
    Deadline,
    DeadlineFired,
    Decision,
    LabelGenerated,
    OrderState,
    ParkedMessage,
)
from worker.rules.step import Park, Step, timer_id


def new_state(order_id: str) -> OrderState:
    """The state of an order not seen yet."""
    return OrderState(order_id=order_id)


def decide(
    state: OrderState,
    input: InboundMessage | DeadlineFired | LabelGenerated,
    now: datetime,
    policy: PolicySet,
    hold_for: timedelta = parking.DEFAULT_HOLD,
) -> Decision:
    """Apply one input to an order. `now` is used only to time the hold of a parked input.

    A message that happened before inputs decided since the order's last published outcome
    is put in its place among them (event time, see eventtime.py).
    """
    if isinstance(input, DeadlineFired | LabelGenerated):
        return eventtime.remember(
            state, input, now, _decide_one(state, input, now, policy, hold_for)
        )
    if parking.is_parked(state, input.message_id):
        return Decision(state=state, applied=False)

    def one(before: OrderState, msg: InboundMessage, at: datetime) -> Decision:
        return _decide_one(before, msg, at, policy, hold_for)

    if eventtime.needs_replay(state, input):
        replayed = eventtime.replay(state, input, now, one)
    else:
        replayed = eventtime.Replayed(one(state, input, now), kept=None)
    decision = eventtime.published_first(state, input, replayed.decision)
    return eventtime.remember(state, input, now, decision, replayed.kept)


def _decide_one(
    state: OrderState,
    input: InboundMessage | DeadlineFired | LabelGenerated,
    now: datetime,
    policy: PolicySet,
    hold_for: timedelta,
) -> Decision:
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
    """Timers due by the message's event time fire first, then the message's own rule.

    A timer due by then that a held message holds back must fire first all the same: the
    message waits behind it (held too), so holding one message never reorders others.
    """
    caught = timers.catch_up(Step(state), msg.occurred_at)
    behind = timers.held_back(caught.state, msg.occurred_at)
    if behind is not None:
        return Park(f"{timers.BEHIND} {behind.id} due {behind.due_at.isoformat()}")
    if caught.state is not state:
        # Timers fired. A message that waits for an earlier fact waits as the order was
        # when it came: a shipment of an order whose payment has not arrived waits for
        # it, rather than let the unpaid expiry it is evidence against fire first.
        early = _handle(state, msg, policies)
        if isinstance(early, Park):
            return early
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
        case OfferMade():
            return offers.offer_made(state, msg)
        case OfferAccepted() | OfferDeclined():
            return offers.offer_answered(state, msg)
        case ReplacementShipped():
            return offers.replacement_shipped(state, msg)
    raise AssertionError(f"no rule for {msg.type}")  # pragma: no cover - union is exhaustive


def _on_deadline(state: OrderState, deadline: Deadline, policies: PolicySet) -> Decision:
    if state.deadlines.get(deadline.id) != deadline:
        return Decision(state=state)  # stale or duplicate timer: fenced off
    if deadline.kind == "hold":
        return _expire_holds(state, deadline, policies)
    if timers.blocked(state, deadline):
        return Decision(state=state, applied=False)  # the shell fires it again later
    return _finish(_retry(timers.catch_up(Step(state), deadline.due_at), policies))


def _expire_holds(state: OrderState, hold: Deadline, policies: PolicySet) -> Decision:
    """Every hold due by this one ends, earliest event first, the others retried after each:
    a message held only behind a deadline that an earlier held message held back is then
    applied, not dead-lettered (and is held as long as that message, if that is longer)."""
    step, letters = Step(state), list[DeadLetter]()
    while True:
        due = [p for p in step.state.parked if _hold_due(step.state, p) <= hold.due_at]
        if not due:
            return Decision(
                state=step.state,
                events=step.events,
                label_jobs=step.label_jobs,
                dead_letters=tuple(letters),
            )
        first = min(due, key=lambda p: (p.occurred_at, p.parked_at))
        later = _blockers_hold(step.state, first)
        if later is not None:  # what holds its deadline back is held longer: so is it
            step = step.start_timer("hold", parking.message_id_of(first), later)
            continue
        deadline = step.state.deadlines[timer_id("hold", parking.message_id_of(first))]
        held, letter = parking.expire_hold(step.state, deadline)
        letters += [letter] if letter is not None else []
        step = _retry(step.then(held), policies)


def _blockers_hold(state: OrderState, parked: ParkedMessage) -> datetime | None:
    """For a message held behind a deadline: the latest hold of the earlier-happened held
    messages (those that can hold that deadline back), if it ends after its own."""
    if not parked.waiting_for.startswith(timers.BEHIND):
        return None
    own = _hold_due(state, parked)
    holds = (_hold_due(state, p) for p in state.parked if p.occurred_at < parked.occurred_at)
    latest = max((due for due in holds if due != _NO_HOLD), default=own)
    return latest if latest > own else None


def _hold_due(state: OrderState, parked: ParkedMessage) -> datetime:
    hold = state.deadlines.get(timer_id("hold", parking.message_id_of(parked)))
    return hold.due_at if hold is not None else _NO_HOLD


_NO_HOLD = datetime.max.replace(tzinfo=UTC)  # a parked message without a hold never ends it


def _retry(step: Step, policies: PolicySet) -> Step:
    """Apply parked messages, oldest event first, until none of them can move."""
    while True:
        for parked in sorted(step.state.parked, key=lambda p: (p.occurred_at, p.parked_at)):
            msg = ANY_MESSAGE.validate_python(parked.message)
            rest = parking.unpark(step.state, msg.message_id)
            result = apply_message(rest, msg, policies)
            if isinstance(result, Park):
                step = step.with_state(parking.rewait(step.state, msg.message_id, result))
                continue
            step = step.then(result)
            break
        else:
            return step


def _finish(step: Step) -> Decision:
    return Decision(state=step.state, events=step.events, label_jobs=step.label_jobs)
