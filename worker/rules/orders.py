"""Order facts: placed, paid, ready to ship, shipped, delivered.

A fact that arrives after the order has moved on is answered consistently (docs/rules.md):
a payment for a cancelled order is refunded in full (1.2: the delivery of a cancelled
cash-on-delivery order too, the courier having collected the cash), ready-to-ship or
shipping of a cancelled order is refused with `order_cancelled` so the shipment can be
stopped.
"""

from __future__ import annotations

from schemas.inbound import (
    TASK_OF_TYPE,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
)
from schemas.policy import PolicySet
from worker.rules.cancellation import UNPAID_TIMER, refund_event, reject_by_system
from worker.rules.money import full_refund
from worker.rules.state import DeadLetter, OrderFacts, OrderState
from worker.rules.step import Park, Step, facts, reject, unchanged

SHIPPED_REASON = "the order has shipped"


def placed(state: OrderState, msg: OrderPlaced, policies: PolicySet) -> Step:
    """Snapshot the marketplace's terms: they govern the order for its whole life."""
    if state.order is not None:
        return reject(state, msg, "order_already_placed", "the order was placed before")
    policy = policies.for_marketplace(msg.marketplace)
    order = OrderFacts(
        marketplace=msg.marketplace,
        seller_id=msg.seller_id,
        buyer_id=msg.buyer_id,
        payment_method=msg.payment_method,
        pricing=msg.pricing,
        payment_due_at=msg.payment_due_at,
        currency=msg.currency,
        shipping_fee=msg.shipping_fee,
        items=tuple(msg.items),
        placed_at=msg.occurred_at,
    )
    step = Step(state).update(order=order, policy=policy)
    if msg.payment_method == "cod":
        return step  # rule 5: cash-on-delivery orders never expire unpaid
    due = policy.end(policy.unpaid_cancel_after, msg.occurred_at)
    if msg.pricing == "subsidized" and msg.payment_due_at is not None:
        due = msg.payment_due_at
    return step.start_timer("unpaid_expiry", "", due)


def wrong_currency(msg: OrderPlaced, policies: PolicySet) -> DeadLetter | None:
    """1.1: a marketplace that names its currency takes orders in it only.

    Its limits and rates are in that currency, so an order in another one cannot be
    judged: it is refused like an invalid message, to the dead-letter queue.
    """
    currency = policies.for_marketplace(msg.marketplace).currency
    if currency is None or msg.currency == currency:
        return None
    reason = (
        f"order.placed in {msg.currency}: marketplace {msg.marketplace} takes orders in "
        f"{currency} only (its limits and rates are in {currency})"
    )
    return DeadLetter(
        message=msg.model_dump(mode="json"),
        task=TASK_OF_TYPE[msg.type],
        reason=reason,
        kind="invalid_message",
    )


def paid(state: OrderState, msg: OrderPaid) -> Step:
    if facts(state).payment_method == "cod":
        return unchanged(state)  # 1.1: its delivery is its payment; this pays nothing
    if state.paid_at is not None:
        return reject(state, msg, "already_paid", "the payment is already recorded")
    step = Step(state).update(paid_at=msg.occurred_at).stop_timers(UNPAID_TIMER)
    if state.cancellation is None:
        return step
    # Paid after the order was cancelled: everything goes back.
    refund = full_refund(facts(state))
    step = step.update(cancellation=state.cancellation.model_copy(update={"refund": refund.amount}))
    return refund_event(step, None, refund, msg.occurred_at, msg.message_id)


def _awaits_payment(state: OrderState) -> bool:
    return facts(state).payment_method == "prepaid" and state.paid_at is None


def ready_to_ship(state: OrderState, msg: OrderReadyToShip) -> Step | Park:
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is cancelled: do not ship it")
    if _awaits_payment(state):
        return Park("order.paid")
    if state.ready_to_ship_at is not None:
        return unchanged(state)
    return Step(state).update(ready_to_ship_at=msg.occurred_at)


def shipped(state: OrderState, msg: OrderShipped) -> Step | Park:
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is cancelled: stop the shipment")
    if _awaits_payment(state):
        return Park("order.paid")
    if state.shipped_at is not None:
        return unchanged(state)
    step = Step(state).update(
        shipped_at=msg.occurred_at,
        ready_to_ship_at=state.ready_to_ship_at or msg.occurred_at,
        tracking_number=msg.tracking_number,
    )
    return reject_by_system(step, SHIPPED_REASON, msg.occurred_at, msg.message_id)


def delivered(state: OrderState, msg: OrderDelivered) -> Step | Park:
    if state.cancellation is not None and facts(state).payment_method == "cod":
        return _cod_delivered_cancelled(state, msg)
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is cancelled")
    if state.shipped_at is None:
        return Park("order.shipped")
    if state.delivered_at is not None:
        return unchanged(state)
    step = Step(state).update(delivered_at=msg.occurred_at)
    if facts(state).payment_method == "cod":
        # 1.1: the courier collects the money on delivery: this is the payment.
        step = step.update(paid_at=msg.occurred_at)
    return step


def _cod_delivered_cancelled(state: OrderState, msg: OrderDelivered) -> Step:
    """1.2: a cancelled cash-on-delivery parcel delivered anyway: the courier collected the
    cash, a payment for a cancelled order, so everything collected (items and shipping
    fee) goes back, as for a prepaid payment after a cancellation. A second delivery
    collected nothing more."""
    cancellation = state.cancellation
    assert cancellation is not None
    if state.paid_at is not None:
        return unchanged(state)
    refund = full_refund(facts(state))
    step = Step(state).update(
        paid_at=msg.occurred_at,
        delivered_at=msg.occurred_at,
        cancellation=cancellation.model_copy(update={"refund": refund.amount}),
    )
    return refund_event(step, None, refund, msg.occurred_at, msg.message_id)
