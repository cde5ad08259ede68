"""The oracle's return rules (contract rules 6-13 and the README's readings), a part of
`tests.chaos.oracle.Order`, which supplies the order's state (`returns`, `terms`,
`delivered_at`...) and its helpers (`emit`, `refuse`, `refund`, `value`...).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.chaos.model import MAX_ATTEMPTS, SELLER_FAULT, Request, uk_business_hours


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
        if m["kind"] == "return_and_refund" and (delivered is None or at < delivered):
            return self.refuse(m, "not_delivered")
        if found is None and late:
            return self.refuse(m, "outside_return_window")
        cost = Decimal(0)
        if m.get("method") == "drop_off":
            cost_or_problem = self.drop_off_cost(m, items)
            if cost_or_problem is None:
                return self.refuse(m, "drop_off_ineligible")
            cost = cost_or_problem
        return self.open_request(m, at, items, found, cost)

    def earlier(self, items: dict[str, int], late: bool) -> Request | str | None:
        """Contract 1.1, units not SKUs (docs/rules.md "Units, not SKUs"): the rejected
        request this one resubmits, None for a new request, or the code refusing it.

        Free units: sold - refunded - in open or appealed requests - finally refused -
        waiting in a rejected request. Free units make a new request (inside the window);
        units of a rejected request make its resubmission, which may add free units only
        inside the window."""
        free = self.sold()
        for r in self.returns.values():
            if r.status not in ("superseded", "closed"):
                for sku, qty in r.items.items():
                    free[sku] -= qty

        def within(available: dict[str, int]) -> bool:
            return all(qty <= available.get(sku, 0) for sku, qty in items.items())

        def plus(mine: dict[str, int]) -> dict[str, int]:
            return {sku: free.get(sku, 0) + mine.get(sku, 0) for sku in free.keys() | mine}

        if not late and within(free):
            return None
        by_time = sorted(self.returns.values(), key=lambda r: (r.requested_at, r.request_id))
        for r in by_time:
            if r.status != "rejected" or r.attempt >= MAX_ATTEMPTS:
                continue
            if within(r.items if late else plus(r.items)):
                return r
            if late and set(items) & set(r.items) and within(plus(r.items)):
                return "resubmission_adds_items"
        if late and within(free):
            return None  # free, but after the window: refused for the window
        sku = next(sku for sku, qty in items.items() if qty > free.get(sku, 0))
        holders = [r for r in by_time if sku in r.items]
        for code, holds in (
            ("appeal_pending", lambda r: r.status == "appealed"),
            ("resubmission_used", lambda r: r.status == "rejected" and r.attempt >= MAX_ATTEMPTS),
            ("return_refused", lambda r: r.status in ("rejected_final", "arbitration_rejected")),
        ):
            if any(holds(r) for r in holders):
                return code
        refunded = sum(r.items.get(sku, 0) for r in self.returns.values() if r.status == "refunded")
        if refunded + items[sku] > self.sold()[sku]:
            return "already_refunded"
        return "items_in_open_request"

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
        previous: Request | None,
        cost: Decimal,
    ) -> None:
        rid = m["request_id"]
        if self.terms.business_hours:
            respond_by = uk_business_hours(at, self.terms.return_response)
        else:
            respond_by = at + self.terms.return_response
        if previous is not None:
            self.stop_request(previous.request_id)
            previous.status = "superseded"
        self.returns[rid] = Request(
            request_id=rid,
            kind=m["kind"],
            method=m.get("method"),
            reason=m["reason"],
            items=items,
            attempt=previous.attempt + 1 if previous else 1,
            requested_at=at,
            cost=cost,
            payer="seller" if m["reason"] in SELLER_FAULT else "buyer",
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

    def stop_request(self, rid: str) -> None:
        self.stop("return_response", "resubmit", "tracking", "label", "receipt", ref=rid)

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
                    "can_resubmit": request.attempt < MAX_ATTEMPTS,
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

    def refund_request(self, request: Request, at: datetime, due: datetime | None = None) -> None:
        """Rules 11-13, capped at what was paid."""
        request.status = "refunded"
        items = self.value(request.items)
        sold = self.sold()
        refunded: dict[str, int] = {}
        for r in self.returns.values():
            if r.status == "refunded":
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
        self.refund(request.request_id, items, fee, deduction, at, due, postage)

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
        if request.method != method or request.kind != "return_and_refund":
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
            self.refund_request(request, at)

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
