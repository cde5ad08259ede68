"""The `code` values of `action.rejected`: stable snake_case, part of the public surface.

Consumers branch on these codes, so a code is never renamed or reused for another
meaning; new refusals get new codes.
"""

from __future__ import annotations

from typing import Literal

from schemas.dead_letters import DeadLetterReason

RejectionCode = Literal[
    "order_already_placed",
    "already_paid",
    "order_cancelled",
    "already_shipped",
    "outcome_already_published",
    "not_shipped",
    "already_ready_to_ship",
    "cancel_request_open",
    "cancel_request_rejected",
    "no_cancel_request",
    "request_not_open",
    "duplicate_request",
    "invalid_items",
    "not_delivered",
    "outside_return_window",
    "drop_off_ineligible",
    "already_refunded",
    "items_in_open_request",
    "resubmission_used",
    "appeal_pending",
    "return_refused",
    "wrong_method",
    "already_shipped_back",
    "no_label",
    "resubmission_adds_items",
    "already_delivered",
    "kind_not_allowed",
    "offer_open",
    "offer_already_made",
    "offer_not_allowed",
    "offer_too_high",
    "not_a_replacement",
    "already_replaced",
]

REJECTION_CODES: dict[RejectionCode, str] = {
    "order_already_placed": "a second order.placed for an order already placed",
    "already_paid": "order.paid for an order whose payment is already recorded",
    "order_cancelled": "the order is cancelled (ready-to-ship, shipment, prepaid delivery, "
    "cancellation or return of a cancelled order)",
    "already_shipped": "the buyer asked to cancel an order that has shipped",
    "outcome_already_published": "the message happened before an outcome that was already "
    "published (a timer fired, a request decided) but arrived after it: published outcomes "
    "are never undone",
    "not_shipped": "a refund_only that happened before the order shipped (whatever the "
    "arrival order); one arriving before the shipment fact waits for it first",
    "already_ready_to_ship": "the seller cancelled after ready-to-ship (rule 4)",
    "cancel_request_open": "a cancellation request of this order is already waiting for the seller",
    "cancel_request_rejected": "the seller already rejected this order's cancellation request "
    "(one request per order)",
    "no_cancel_request": "a seller answer to a cancellation request that does not exist and "
    "can no longer be made (order cancelled or shipped)",
    "request_not_open": "the request was already answered, decided by its deadline, or closed",
    "duplicate_request": "a return request with a request_id already used",
    "invalid_items": "returned items not in the order, or more than were ordered",
    "not_delivered": "return_and_refund that happened before delivery (only refund_only is "
    "allowed then), or any return of a cash-on-delivery order before its delivery (its "
    "payment); one arriving before the delivery fact waits for it first",
    "outside_return_window": "a return requested after the return window (14 days, UK 30 days)",
    "drop_off_ineligible": "drop_off refused: too heavy, too large, too valuable or of "
    "unknown weight or size (rule 9)",
    "already_refunded": "items that have already been refunded",
    "items_in_open_request": "items that are already in another open return request",
    "resubmission_used": "a new request for units rejected twice: only an appeal remains",
    "appeal_pending": "a new request for items whose rejection is under appeal",
    "return_refused": "a new request for items whose return was finally refused "
    "(rejected_final or arbitration_rejected)",
    "wrong_method": "tracking for a drop_off return, or a drop-off scan for a self_arrange "
    "or refund_only request",
    "already_shipped_back": "tracking or a drop-off scan already recorded for the request",
    "no_label": "a label e-mail for a request that has no drop-off label",
    "resubmission_adds_items": "a request after the return window asks for units not "
    "rejected once (after the window only units rejected once may be asked again)",
    "already_delivered": "platform.order_cancelled for a delivered order (arbitration covers "
    "delivered orders)",
    "kind_not_allowed": "a reshipment or exchange request for a reason that is not the "
    "seller's fault (the seller pays every shipment of those kinds)",
    "offer_open": "a seller's approval or rejection while the seller's offer on the request "
    "waits for the buyer's answer",
    "offer_already_made": "a second seller.offer_made for a request (one offer per request)",
    "offer_not_allowed": "an offer of the request's own kind (approve it instead), or an "
    "exchange offer for a request whose units do not go back (no method), or a partial refund "
    "finer than the currency's minor unit (0.004 USD, 12.5 JPY: it is paid as offered)",
    "offer_too_high": "a partial refund of more than the request would refund",
    "not_a_replacement": "seller.replacement_shipped for a request that is neither a "
    "reshipment nor an exchange",
    "already_replaced": "a new request for units already replaced (replacement.shipped)",
}
"""Every `action.rejected` code with its one-line meaning (shown in docs/rules.md)."""

ORDER_EXPIRED: DeadLetterReason = "order_expired"
"""Not an `action.rejected` code but a dead-letter reason (docs/input-safety.md): a message
for an order whose keys expired (worker/rules/retention.py, docs/rules.md#retention)."""
