"""The chaos run's oracle: a small reference model of the rules (README "Rules" and its
"Readings of the contract"), written from the contract alone.

It imports nothing from `worker/` or `schemas/` (tests/chaos/test_chaos.py checks that),
so a bug shared by the worker and its own tests cannot hide here. It takes the wire
messages of one order, applies them in event-time order (`occurred_at`), fires every
timer due at or before each message first (a deadline is due at exactly its time) and
then every timer due up to `horizon`, and returns the outcome events it expects, each
with the data fields that matter (amounts, reasons, who, request ids, due times).

It models only what the workload generator produces (tests/chaos/workload.py); a
message it has no rule for raises, so a generator change cannot silently go unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.chaos.model import (
    CENT,
    Outcome,
    Request,
    Terms,
    parse_time,
    terms_for,
    uk_business_hours,
)
from tests.chaos.oracle_returns import ReturnRules

__all__ = [
    "Order",
    "Outcome",
    "expected_outcomes",
    "parse_time",
    "pending_timers",
    "uk_business_hours",
]


@dataclass
class Order(ReturnRules):
    """The oracle's state of one order."""

    order_id: str
    horizon: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    placed: dict[str, Any] | None = None
    terms: Terms = field(default_factory=Terms)
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    collected: bool = False  # 1.1: a delivered cod order is paid
    ready_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled: bool = False
    cancel_request: dict[str, Any] | None = None
    returns: dict[str, Request] = field(default_factory=dict)
    refunded: Decimal = Decimal(0)
    timers: dict[tuple[str, str], datetime] = field(default_factory=dict)

    # --- driving -------------------------------------------------------------------

    def run(self, messages: list[dict[str, Any]]) -> list[Outcome]:
        ordered = sorted(enumerate(messages), key=lambda m: (parse_time(m[1]["occurred_at"]), m[0]))
        for _, message in ordered:
            at = parse_time(message["occurred_at"])
            self.catch_up(at)
            self.apply(message, at)
        self.catch_up(self.horizon)
        for request in self.returns.values():  # a label loses to an earlier end
            if request.label is not None and request.status != "approved":
                request.label.optional = True
        return self.outcomes

    def catch_up(self, upto: datetime) -> None:
        while True:
            due = sorted((when, key) for key, when in self.timers.items() if when <= upto)
            if not due:
                return
            when, key = due[0]
            del self.timers[key]
            self.fire(key[0], key[1], when)

    def emit(
        self, type_: str, ref: str, data: dict[str, Any], due: datetime | None = None
    ) -> Outcome:
        outcome = Outcome(self.order_id, type_, ref, data, due)
        self.outcomes.append(outcome)
        return outcome

    def refuse(self, message: dict[str, Any], code: str) -> None:
        self.emit(
            "action.rejected",
            message["message_id"],
            {"code": code, "type": message["type"], "message_id": message["message_id"]},
        )

    def stop(self, *kinds: str, ref: str = "") -> None:
        for kind in kinds:
            self.timers.pop((kind, ref), None)

    # --- money ---------------------------------------------------------------------

    @property
    def currency(self) -> str:
        return str(self.placed["currency"]) if self.placed else ""

    def prices(self) -> dict[str, Decimal]:
        assert self.placed is not None
        return {i["sku"]: Decimal(i["unit_price"]) for i in self.placed["items"]}

    def sold(self) -> dict[str, int]:
        assert self.placed is not None
        return {i["sku"]: int(i["quantity"]) for i in self.placed["items"]}

    def fee(self) -> Decimal:
        assert self.placed is not None
        return Decimal(self.placed["shipping_fee"]).quantize(CENT, ROUND_HALF_UP)

    def value(self, items: dict[str, int]) -> Decimal:
        prices = self.prices()
        total = sum((prices[sku] * qty for sku, qty in items.items()), Decimal(0))
        return total.quantize(CENT, ROUND_HALF_UP)

    def is_paid(self) -> bool:
        return self.paid_at is not None or self.collected

    def refund(
        self,
        request_id: str | None,
        items: Decimal,
        fee: Decimal,
        deduction: Decimal,
        at: datetime,
        due: datetime | None = None,
        postage: Decimal = Decimal(0),
    ) -> None:
        amount = items + fee - deduction + postage
        self.refunded += amount
        breakdown = {"items": items, "shipping_fee": fee, "return_shipping_deduction": deduction}
        if postage:
            breakdown["return_shipping_refund"] = postage
        self.emit(
            "refund.initiated",
            request_id or "",
            {
                "request_id": request_id,
                "amount": amount,
                "currency": self.currency,
                "breakdown": breakdown,
            },
            due,
        )

    # --- messages ------------------------------------------------------------------

    def apply(self, m: dict[str, Any], at: datetime) -> None:
        handler = getattr(self, "on_" + m["type"].replace(".", "_"), None)
        if handler is None:
            raise NotImplementedError(f"the oracle has no rule for {m['type']}")
        if m["type"] != "order.placed" and self.placed is None:
            raise NotImplementedError("a fact before order.placed (in event time)")
        handler(m, at)

    def on_order_placed(self, m: dict[str, Any], at: datetime) -> None:
        if self.placed is not None:
            return self.refuse(m, "order_already_placed")
        self.placed, self.placed_at = m, at
        self.terms = terms_for(m["marketplace"])
        if m["payment_method"] == "prepaid":
            due = at + self.terms.unpaid_after
            if m["pricing"] == "subsidized":
                due = parse_time(m["payment_due_at"])
            self.timers[("unpaid", "")] = due
        return None

    def on_order_paid(self, m: dict[str, Any], at: datetime) -> None:
        if self.paid_at is not None:
            return self.refuse(m, "already_paid")
        self.paid_at = at
        self.stop("unpaid")
        if self.cancelled:  # paid after the cancellation: everything goes back
            self.refund(None, self.value(self.sold()), self.fee(), Decimal(0), at)
        return None

    def on_order_ready_to_ship(self, m: dict[str, Any], at: datetime) -> None:
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        self.ready_at = self.ready_at or at
        return None

    def on_order_shipped(self, m: dict[str, Any], at: datetime) -> None:
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        if self.shipped_at is None:
            self.shipped_at = at
            self.ready_at = self.ready_at or at
            request = self.cancel_request
            if request is not None and request["status"] == "open":
                request["status"] = "rejected"
                self.stop("cancel_response")
                self.emit("cancellation.rejected", "", {"by": "system"})
        return None

    def on_order_delivered(self, m: dict[str, Any], at: datetime) -> None:
        cod = self.placed is not None and self.placed["payment_method"] == "cod"
        if self.cancelled and cod:
            # 1.2: the courier collected the cash of a cancelled order: it all goes back.
            if not self.collected:
                self.collected = True
                self.refund(None, self.value(self.sold()), self.fee(), Decimal(0), at)
            return None
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        self.delivered_at = self.delivered_at or at
        if self.placed and self.placed["payment_method"] == "cod":
            self.collected = True  # 1.1: the courier collected the money
        return None

    def cancel(
        self, by: str, reason: str | None, at: datetime, due: datetime | None = None
    ) -> None:
        self.cancelled = True
        paid = self.is_paid()
        items, fee = self.value(self.sold()), self.fee()
        data: dict[str, Any] = {
            "by": by,
            "seller_fault": by == "seller",
            "refund": {"amount": items + fee, "currency": self.currency} if paid else None,
        }
        if reason is not None:
            data["reason"] = reason
        self.emit("order.cancelled", "", data, due)
        if self.cancel_request and self.cancel_request["status"] == "open":
            self.cancel_request["status"] = "order_cancelled"
        self.stop("unpaid", "cancel_response")
        if paid:
            self.refund(None, items, fee, Decimal(0), at, due)

    def in_free_window(self, at: datetime) -> bool:
        assert self.placed is not None and self.placed_at is not None
        if self.placed["payment_method"] == "cod":
            return at - self.placed_at <= self.terms.free_cancel
        if self.paid_at is None:
            return True
        return at - self.paid_at <= self.terms.free_cancel

    def on_buyer_cancel_requested(self, m: dict[str, Any], at: datetime) -> None:
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        if self.shipped_at is not None:
            return self.refuse(m, "already_shipped")
        if self.cancel_request is not None:
            open_ = self.cancel_request["status"] == "open"
            return self.refuse(m, "cancel_request_open" if open_ else "cancel_request_rejected")
        if self.in_free_window(at):
            return self.cancel("buyer", m["reason"], at)
        respond_by = at + self.terms.cancel_response
        self.cancel_request = {"status": "open", "reason": m["reason"]}
        self.timers[("cancel_response", "")] = respond_by
        self.emit("cancellation.requested", "", {"respond_by": respond_by})
        return None

    def on_seller_cancel_accepted(self, m: dict[str, Any], at: datetime) -> None:
        self.seller_answer(m, at, accepted=True)

    def on_seller_cancel_rejected(self, m: dict[str, Any], at: datetime) -> None:
        self.seller_answer(m, at, accepted=False)

    def seller_answer(self, m: dict[str, Any], at: datetime, accepted: bool) -> None:
        request = self.cancel_request
        if request is None:
            return self.refuse(m, "no_cancel_request")
        if request["status"] != "open":
            return self.refuse(m, "request_not_open")
        self.stop("cancel_response")
        if not accepted:
            request["status"] = "rejected"
            self.emit("cancellation.rejected", "", {"by": "seller", "reason": m["reason"]})
            return None
        request["status"] = "accepted"
        self.emit("cancellation.accepted", "", {"by": "seller"})
        return self.cancel("buyer", request["reason"], at)

    def on_seller_order_cancelled(self, m: dict[str, Any], at: datetime) -> None:
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        if self.ready_at is not None:
            return self.refuse(m, "already_ready_to_ship")
        return self.cancel("seller", m["reason"], at)

    def on_platform_order_cancelled(self, m: dict[str, Any], at: datetime) -> None:
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        if self.delivered_at is not None:
            raise NotImplementedError("the contract names no code for this refusal")
        self.cancel("platform", m["reason"], at)
        for request in self.returns.values():
            if request.status in ("requested", "approved", "rejected", "appealed"):
                raise NotImplementedError("platform cancellation with open requests")

    # --- timers --------------------------------------------------------------------

    def fire(self, kind: str, ref: str, due: datetime) -> None:
        if kind == "unpaid":
            self.cancel("platform", None, due, due)
        elif kind == "cancel_response":
            assert self.cancel_request is not None
            self.cancel_request["status"] = "auto_accepted"
            self.emit("cancellation.auto_accepted", "", {"deadline": due}, due)
            self.cancel("buyer", self.cancel_request["reason"], due, due)
        elif kind == "return_response":
            request = self.returns[ref]
            self.emit("return.auto_approved", ref, {"request_id": ref, "deadline": due}, due)
            self.approve(request, due, due)
        elif kind == "resubmit":
            self.close(self.returns[ref], "rejected_final", due)
        elif kind == "tracking":
            self.close(self.returns[ref], "tracking_not_submitted", due)
        elif kind == "label":
            self.close(self.returns[ref], "label_expired", due)
        elif kind == "receipt":
            self.received(self.returns[ref], due, due)
        elif kind == "replacement":  # 1.2: no replacement in time: refunded instead
            self.refund_request(self.returns[ref], due, due)
        elif kind == "offer":
            self.offer_lapsed(self.returns[ref], due)
        else:  # pragma: no cover - every timer above
            raise AssertionError(kind)


def expected_outcomes(
    order_id: str, messages: list[dict[str, Any]], horizon: datetime
) -> list[Outcome]:
    """The outcomes the rules give for one order's messages, timers fired up to `horizon`."""
    return Order(order_id, horizon).run(messages)


def pending_timers(
    order_id: str, messages: list[dict[str, Any]], horizon: datetime
) -> list[tuple[str, datetime]]:
    """Timers still pending after `horizon` (the generator keeps them far away)."""
    order = Order(order_id, horizon)
    order.run(messages)
    return sorted(((kind, due) for (kind, _), due in order.timers.items()), key=lambda t: t[1])
