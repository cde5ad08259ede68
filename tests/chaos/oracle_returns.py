"""The oracle's return rules (contract rules 6-13, sections 6-7 and docs/rules.md's
readings), a part of `tests.chaos.oracle.Order`, which supplies the order's state
(`returns`, `terms`, `delivered_at`...) and its helpers (`emit`, `refuse`, `refund`,
`value`...).

1.2 (contract section 7): rejections counted per unit, reshipment and exchange requests
with their replacement window, and the seller's offer.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.chaos.model import SELLER_FAULT, Request, uk_business_hours

REPLACED_BY = ("reshipment", "exchange")
# Request statuses whose units no new request may take: all but these (docs/rules.md).
FREEING = ("superseded", "closed")


class ReturnRules:
    """Return requests, answers, appeals, parcels and refunds."""

    # Provided by Order; declared here for readers (and linters).
    returns: dict[str, Request]
    timers: dict[tuple[str, str], datetime]
    refunded: Decimal

    def on_buyer_return_requested(self, m: dict[str, Any], at: datetime) -> None:
        rid = m["request_id"]
        if rid in self.returns:
            return self.refuse(m, "duplicate_request")
        if m["kind"] in REPLACED_BY and m["reason"] not in SELLER_FAULT:
            return self.refuse(m, "kind_not_allowed")  # 1.2: the seller pays the shipments
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        if self.shipped_at is None or not self.is_paid():
            raise NotImplementedError("a return before shipping or payment (in event time)")
        sold = self.sold()
        items = {s["sku"]: int(s["quantity"]) for s in m.get("items") or []} or dict(sold)
        if any(sku not in sold or qty > sold[sku] for sku, qty in items.items()):
            return self.refuse(m, "invalid_items")
        delivered = self.delivered_at
        late = delivered is not None and at - delivered > self.terms.return_window
        found = self.earlier(items, late)
        if isinstance(found, str):
            return self.refuse(m, found)
        if m["kind"] != "refund_only" and (delivered is None or at < delivered):
            return self.refuse(m, "not_delivered")
        if not found and late:
            return self.refuse(m, "outside_return_window")
        cost = Decimal(0)
        if m.get("method") == "drop_off":
            cost_or_problem = self.drop_off_cost(m, items)
            if cost_or_problem is None:
                return self.refuse(m, "drop_off_ineligible")
            cost = cost_or_problem
        return self.open_request(m, at, items, found, cost)

    def earlier(self, items: dict[str, int], late: bool) -> dict[str, dict[str, int]] | str:
        """Which rejected requests' units this one asks for again ({} for a new request of
        free units only), or the code refusing it (docs/rules.md "Units, not SKUs" and
        1.2 "Rejections per unit").

        Free units: sold - held by any request but superseded ones and those closed by a
        return-leg timer. Each unit counts its own rejections: a rejected request's units
        asked for the first time may be asked for once more while it waits. Free units
        are taken first; what is short comes from rejected requests, earliest first. After
        the return window only units rejected once may be asked for."""
        free = self.sold()
        for r in self.returns.values():
            if r.status not in FREEING:
                for sku, qty in r.items.items():
                    free[sku] -= qty
        by_time = sorted(self.returns.values(), key=lambda r: (r.requested_at, r.request_id))
        pools = {r.request_id: self.first_tries(r) for r in by_time if r.status == "rejected"}
        pooled: dict[str, int] = {}
        for pool in pools.values():
            for sku, qty in pool.items():
                pooled[sku] = pooled.get(sku, 0) + qty

        def within(asked: dict[str, int], available: dict[str, int]) -> bool:
            return all(qty <= available.get(sku, 0) for sku, qty in asked.items())

        both = {sku: free.get(sku, 0) + pooled.get(sku, 0) for sku in free.keys() | pooled}
        if not late and within(items, free):
            return {}
        short = items if late else {s: q - free.get(s, 0) for s, q in items.items()}
        short = {sku: qty for sku, qty in short.items() if qty > 0}
        if within(short, pooled):
            taken: dict[str, dict[str, int]] = {}
            for sku, qty in short.items():
                for rid, pool in pools.items():
                    n = min(qty, pool.get(sku, 0))
                    if n:
                        taken.setdefault(rid, {})[sku] = n
                        qty -= n
            return taken
        if late and set(items) & set(pooled) and within(items, both):
            return "resubmission_adds_items"
        if late and within(items, free):
            return {}  # free, but after the window: refused for the window
        sku = next(sku for sku, qty in items.items() if qty > both.get(sku, 0))
        holders = [r for r in by_time if sku in r.items]
        for code, holds in (
            ("appeal_pending", lambda r: r.status == "appealed"),
            ("resubmission_used", lambda r: r.status == "rejected" and (r.again or {}).get(sku)),
            ("return_refused", lambda r: r.status in ("rejected_final", "arbitration_rejected")),
            ("already_replaced", lambda r: r.status == "replaced"),
            ("already_refunded", lambda r: r.status == "settled"),
        ):
            if any(holds(r) for r in holders):
                return code
        refunded = sum(r.items.get(sku, 0) for r in self.returns.values() if r.status == "refunded")
        if refunded + items[sku] > self.sold()[sku]:
            return "already_refunded"
        return "items_in_open_request"

    @staticmethod
    def first_tries(request: Request) -> dict[str, int]:
        again = request.again or {}
        units = {sku: qty - again.get(sku, 0) for sku, qty in request.items.items()}
        return {sku: qty for sku, qty in units.items() if qty > 0}

    def drop_off_cost(self, m: dict[str, Any], items: dict[str, int]) -> Decimal | None:
        """Rule 9 on the request's explicit parcel; None when it is not eligible."""
        terms = self.terms
        parcel = m["parcel"]
        weight = Decimal(str(parcel["weight_kg"]))
        a, b, c = sorted((Decimal(str(d)) for d in parcel["dimensions_cm"]), reverse=True)
        if terms.max_weight is not None and weight > terms.max_weight:
            return None
        if terms.max_perimeter is not None and a + 2 * (b + c) >= terms.max_perimeter:
            return None
        if terms.max_value is not None and self.value(items) > terms.max_value:
            return None
        if not terms.rates:
            return Decimal("0.00")
        for up_to, price in terms.rates:
            if weight <= up_to:
                return price
        return None

    def open_request(
        self,
        m: dict[str, Any],
        at: datetime,
        items: dict[str, int],
        taken: dict[str, dict[str, int]],
        cost: Decimal,
    ) -> None:
        rid = m["request_id"]
        respond_by = self.answer_by(at)
        again: dict[str, int] = {}
        for previous_id, units in taken.items():
            previous = self.returns[previous_id]
            for sku, qty in units.items():
                again[sku] = again.get(sku, 0) + qty
                previous.items[sku] -= qty
            previous.items = {sku: qty for sku, qty in previous.items.items() if qty}
            if not previous.items:
                self.stop_request(previous_id)
                previous.status = "superseded"
        self.returns[rid] = Request(
            request_id=rid,
            kind=m["kind"],
            method=m.get("method"),
            reason=m["reason"],
            items=items,
            attempt=2 if again else 1,
            requested_at=at,
            cost=cost,
            payer="seller" if m["reason"] in SELLER_FAULT else "buyer",
            again=again or None,
        )
        self.timers[("return_response", rid)] = respond_by
        self.emit(
            "return.requested",
            rid,
            {
                "request_id": rid,
                "kind": m["kind"],
                "method": m.get("method"),
                "reason": m["reason"],
                "respond_by": respond_by,
            },
        )

    def answer_by(self, at: datetime) -> datetime:
        if self.terms.business_hours:
            return uk_business_hours(at, self.terms.return_response)
        return at + self.terms.return_response

    def stop_request(self, rid: str) -> None:
        self.stop(
            "return_response", "resubmit", "tracking", "label", "receipt", "replacement",
            "offer", ref=rid,
        )  # fmt: skip

    def request(self, m: dict[str, Any], *statuses: str) -> Request | None:
        request = self.returns.get(m["request_id"])
        if request is None:
            raise NotImplementedError("a request answer before the request (in event time)")
        if request.status not in statuses:
            self.refuse(m, "request_not_open")
            return None
        return request

    def on_seller_return_approved(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "requested")) is not None:
            self.emit(
                "return.approved",
                request.request_id,
                {"request_id": request.request_id, "by": "seller"},
            )
            self.approve(request, at)

    def on_seller_return_rejected(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "requested")) is not None:
            self.stop_request(request.request_id)
            request.status = "rejected"
            self.emit(
                "return.rejected",
                request.request_id,
                {
                    "request_id": request.request_id,
                    "reason": m["reason"],
                    "can_resubmit": bool(self.first_tries(request)),
                    "can_appeal": True,
                },
            )
            self.timers[("resubmit", request.request_id)] = at + self.terms.resubmit

    def on_buyer_appeal_submitted(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "rejected")) is not None:
            self.stop_request(request.request_id)
            request.status = "appealed"

    def on_platform_arbitration_decided(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "appealed")) is None:
            return
        if m["outcome"] == "reject":
            self.close(request, "arbitration_rejected")
            return
        self.emit(
            "return.approved",
            request.request_id,
            {"request_id": request.request_id, "by": "platform"},
        )
        self.approve(request, at)

    def approve(self, request: Request, at: datetime, due: datetime | None = None) -> None:
        self.stop_request(request.request_id)
        request.status, request.approved_at = "approved", at
        rid = request.request_id
        if request.kind == "refund_only":
            self.refund_request(request, at, due)
        elif request.kind == "reshipment":
            self.await_replacement(request, at)
        elif request.method == "drop_off":
            label: dict[str, Any] = {
                "request_id": rid,
                "payer": request.payer,
                "valid_until": at + self.terms.label,
                "cost": {"amount": request.cost, "currency": self.currency},
            }
            if self.terms.carrier:
                label["carrier"] = self.terms.carrier
            request.label = self.emit("return.label_generated", rid, label)
            self.timers[("label", rid)] = at + self.terms.label
        else:
            self.timers[("tracking", rid)] = at + self.terms.tracking

    def await_replacement(self, request: Request, at: datetime) -> None:
        """1.2: the replacement window, from a reshipment's approval or an exchange's receipt."""
        self.stop_request(request.request_id)
        request.status = "replacing"
        if self.terms.business_hours:
            due = uk_business_hours(at, self.terms.replacement)
        else:
            due = at + self.terms.replacement
        self.timers[("replacement", request.request_id)] = due

    def received(self, request: Request, at: datetime, due: datetime | None = None) -> None:
        if request.kind == "exchange":
            self.await_replacement(request, at)
        else:
            self.refund_request(request, at, due)

    def refund_request(self, request: Request, at: datetime, due: datetime | None = None) -> None:
        """Rules 11-13, capped at what was paid."""
        items, fee, deduction, postage = self.refund_parts(request)
        request.status = "refunded"
        self.refund(request.request_id, items, fee, deduction, at, due, postage)

    def refund_parts(self, request: Request) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """What the request refunds if approved now: items, fee, deduction, postage."""
        items = self.value(request.items)
        sold = self.sold()
        refunded: dict[str, int] = dict(request.items)
        for r in self.returns.values():
            # Rule 13's "every item refunded": units kept with a partial refund never are.
            if r.status == "refunded" and r is not request:
                for sku, qty in r.items.items():
                    refunded[sku] = refunded.get(sku, 0) + qty
        everything = all(refunded.get(sku, 0) >= qty for sku, qty in sold.items())
        fee = self.fee() if everything else Decimal(0)
        deduction = Decimal(0)
        if request.payer == "buyer" and request.kind == "return_and_refund":
            deduction = min(request.cost, items + fee)
        room = max(Decimal(0), self.value(sold) + self.fee() - self.refunded)
        deduction += max(Decimal(0), items + fee - deduction - room)
        postage = Decimal(0)
        if request.payer == "seller" and request.postage and self.terms.postage_cap:
            postage = min(request.postage, self.terms.postage_cap)  # 1.1
        return items, fee, deduction, postage

    def close(self, request: Request, reason: str, due: datetime | None = None) -> None:
        self.stop_request(request.request_id)
        request.status = (
            reason if reason in ("rejected_final", "arbitration_rejected") else "closed"
        )
        self.emit(
            "return.closed",
            request.request_id,
            {"request_id": request.request_id, "reason": reason},
            due,
        )

    def parcel_sent(self, m: dict[str, Any], at: datetime, method: str) -> None:
        if (request := self.request(m, "approved")) is None:
            return
        if request.method != method or request.kind not in ("return_and_refund", "exchange"):
            return self.refuse(m, "wrong_method")
        if request.shipped_back:
            return self.refuse(m, "already_shipped_back")
        request.shipped_back = True
        if m.get("postage") is not None:
            request.postage = Decimal(m["postage"])
        self.stop_request(request.request_id)
        self.timers[("receipt", request.request_id)] = at + self.terms.receipt
        return None

    def on_buyer_return_tracking_submitted(self, m: dict[str, Any], at: datetime) -> None:
        self.parcel_sent(m, at, "self_arrange")

    def on_carrier_return_dropped_off(self, m: dict[str, Any], at: datetime) -> None:
        self.parcel_sent(m, at, "drop_off")

    def on_seller_return_received(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "approved")) is not None:
            self.received(request, at)

    def on_buyer_label_email_requested(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "approved")) is None:
            return
        if request.method != "drop_off":
            return self.refuse(m, "no_label")
        self.emit(
            "return.label_email_requested",
            request.request_id,
            {"request_id": request.request_id, "email": m["email"]},
        )
        return None

    # --- 1.2: replacements and the seller's offer -----------------------------------------

    def on_seller_replacement_shipped(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "replacing")) is None:
            return
        if request.kind not in REPLACED_BY:
            raise NotImplementedError("a replacement for a refund request")
        self.stop_request(request.request_id)
        request.status = "replaced"
        self.emit(
            "replacement.shipped",
            request.request_id,
            {
                "request_id": request.request_id,
                "kind": request.kind,
                "carrier": m.get("carrier"),
                "tracking_number": m["tracking_number"],
            },
        )

    def on_seller_offer_made(self, m: dict[str, Any], at: datetime) -> None:
        request = self.returns[m["request_id"]]
        if request.offer is not None:
            return self.refuse(m, "offer_already_made")
        if (request := self.request(m, "requested")) is None:
            return None
        if m["offer"] == request.kind or (m["offer"] == "exchange" and request.method is None):
            return self.refuse(m, "offer_not_allowed")
        amount = None
        if m["offer"] == "partial_refund":
            amount = Decimal(m["amount"])
            items, fee, deduction, postage = self.refund_parts(request)
            if amount > items + fee - deduction + postage:
                return self.refuse(m, "offer_too_high")
        self.stop_request(request.request_id)
        request.status = "offered"
        request.offer = {"kind": m["offer"], "amount": amount, "status": "open"}
        respond_by = at + self.terms.offer
        self.timers[("offer", request.request_id)] = respond_by
        self.emit(
            "offer.made",
            request.request_id,
            {
                "request_id": request.request_id,
                "offer": m["offer"],
                "amount": None if amount is None else {"amount": amount, "currency": self.currency},
                "respond_by": respond_by,
            },
        )
        return None

    def on_buyer_offer_accepted(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "offered")) is None:
            return
        assert request.offer is not None
        self.stop_request(request.request_id)
        request.offer["status"] = "accepted"
        rid = request.request_id
        if request.offer["kind"] == "partial_refund":
            items, fee, deduction, postage = self.refund_parts(request)
            paid = min(request.offer["amount"], items + fee - deduction + postage)
            request.status = "settled"
            self.refund(rid, paid, Decimal(0), Decimal(0), at)
            self.emit("return.closed", rid, {"request_id": rid, "reason": "offer_accepted"})
            return
        request.kind, request.payer = request.offer["kind"], "seller"
        self.emit("return.approved", rid, {"request_id": rid, "by": "seller"})
        self.approve(request, at)

    def on_buyer_offer_declined(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "offered")) is not None:
            respond_by = self.back_to_seller(request, "declined", at)
            self.emit(
                "offer.declined",
                request.request_id,
                {"request_id": request.request_id, "respond_by": respond_by},
            )

    def back_to_seller(self, request: Request, status: str, at: datetime) -> datetime:
        """The seller's answer window starts again, in full."""
        assert request.offer is not None
        self.stop_request(request.request_id)
        request.offer["status"] = status
        request.status = "requested"
        respond_by = self.answer_by(at)
        self.timers[("return_response", request.request_id)] = respond_by
        return respond_by

    def offer_lapsed(self, request: Request, due: datetime) -> None:
        respond_by = self.back_to_seller(request, "lapsed", due)
        self.emit(
            "offer.lapsed",
            request.request_id,
            {"request_id": request.request_id, "deadline": due, "respond_by": respond_by},
            due,
        )
