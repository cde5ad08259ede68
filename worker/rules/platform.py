"""Platform cancellation (docs/rules.md): customer service cancels an order before delivery.

It wins over everything still open: open return requests close (`order_cancelled`),
every deadline ends, and what was paid and not yet refunded goes back. A delivered order
is refused: arbitration covers it.
"""

from __future__ import annotations

from schemas.inbound import PlatformOrderCancelled
from worker.rules.cancellation import cancel_order
from worker.rules.fulfilment import close
from worker.rules.state import OrderState
from worker.rules.step import Step, reject

_OPEN = ("requested", "approved", "rejected", "appealed", "offered", "replacing")


def order_cancelled(state: OrderState, msg: PlatformOrderCancelled) -> Step:
    if state.cancellation is not None:
        return reject(state, msg, "order_cancelled", "the order is already cancelled")
    if state.delivered_at is not None:
        detail = "the order is delivered: a platform decision on it goes through arbitration"
        return reject(state, msg, "already_delivered", detail)
    at = msg.occurred_at
    step = Step(state)
    for request in sorted(state.returns.values(), key=lambda r: (r.requested_at, r.request_id)):
        if request.status in _OPEN:
            # One cause per request: several return.closed of one message stay distinct.
            step = close(
                step,
                request.request_id,
                "order_cancelled",
                at,
                f"{msg.message_id}:{request.request_id}",
            )
    # Parked messages keep their hold timers: they are still answered when they move.
    timers = [key for key, d in step.state.deadlines.items() if d.kind != "hold"]
    step = step.stop_timers(*timers)
    return cancel_order(step, "platform", msg.reason, at, msg.message_id)
