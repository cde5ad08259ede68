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
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CENT = Decimal("0.01")
SELLER_FAULT = frozenset(
    {"damaged", "defective", "wrong_item", "missing_items", "not_as_described", "not_received"}
)
MAX_ATTEMPTS = 2  # rule 8: one resubmission
# England and Wales bank holidays (gov.uk), substitute days included, around the run.
GB_ENG_HOLIDAYS = frozenset(
    date(year, month, day)
    for year, month, day in (
        (2025, 12, 25), (2025, 12, 26), (2026, 1, 1), (2026, 4, 3), (2026, 4, 6),
        (2026, 5, 4), (2026, 5, 25), (2026, 8, 31), (2026, 12, 25), (2026, 12, 28),
        (2027, 1, 1), (2027, 3, 26), (2027, 3, 29), (2027, 5, 3), (2027, 5, 31),
        (2027, 8, 30), (2027, 12, 27), (2027, 12, 28),
    )
)


@dataclass(frozen=True)
class Terms:
    """Contract section 4 defaults, and section 5's built-in UK."""

    return_window: timedelta = timedelta(days=14)
    business_hours: bool = False
    carrier: str | None = None  # None: not compared (the built-in default has no name)
    rates: tuple[tuple[Decimal, Decimal], ...] = ()
    max_weight: Decimal | None = None
    max_perimeter: Decimal | None = None
    max_value: Decimal | None = None
    postage_cap: Decimal | None = None
    free_cancel: timedelta = HOUR
    cancel_response: timedelta = timedelta(hours=48)
    unpaid_after: timedelta = timedelta(hours=48)
    return_response: timedelta = timedelta(hours=48)
    resubmit: timedelta = timedelta(hours=48)
    tracking: timedelta = timedelta(days=5)
    label: timedelta = timedelta(days=14)
    receipt: timedelta = timedelta(days=8)


UK = Terms(
    return_window=timedelta(days=30), business_hours=True, carrier="Evri",
    rates=((Decimal(2), Decimal("2.99")), (Decimal(5), Decimal("4.49")),
           (Decimal(15), Decimal("6.99"))),
    max_weight=Decimal(15), max_perimeter=Decimal(245), max_value=Decimal(1500),
    postage_cap=Decimal("6.99"),
)
TERMS = {"UK": UK}


def terms_for(marketplace: str) -> Terms:
    return TERMS.get(marketplace, Terms())


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def uk_business_hours(start: datetime, hours: timedelta) -> datetime:
    """Rule 7: business days hold 24 h each, counted in London local time; a request on a
    non-business day starts at the next business day's midnight."""
    zone = ZoneInfo("Europe/London")
    cursor = start.astimezone(zone).replace(tzinfo=None)
    remaining = hours
    while True:
        midnight = datetime.combine(cursor.date() + DAY, time())
        business = cursor.weekday() < 5 and cursor.date() not in GB_ENG_HOLIDAYS
        if business and remaining <= midnight - cursor:
            return (cursor + remaining).replace(tzinfo=zone).astimezone(UTC)
        if business:
            remaining -= midnight - cursor
        cursor = midnight


@dataclass
class Outcome:
    """One logical outcome: `ref` is the request id, the refused message id
    (`action.rejected`) or "" (once per order)."""

    order_id: str
    type: str
    ref: str
    data: dict[str, Any]
    due: datetime | None = None  # set when a timer caused it
    optional: bool = False  # may or may not happen (a label that loses to a refund)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.order_id, self.type, self.ref)


@dataclass
class Request:
    request_id: str
    kind: str
    method: str | None
    reason: str
    items: dict[str, int]
    attempt: int
    requested_at: datetime
    cost: Decimal
    payer: str
    status: str = "requested"
    approved_at: datetime | None = None
    shipped_back: bool = False
    postage: Decimal = Decimal(0)
    label: Outcome | None = None


@dataclass
class Order:
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

    def emit(self, type_: str, ref: str, data: dict[str, Any], due: datetime | None = None
             ) -> Outcome:
        outcome = Outcome(self.order_id, type_, ref, data, due)
        self.outcomes.append(outcome)
        return outcome

    def refuse(self, message: dict[str, Any], code: str) -> None:
        self.emit("action.rejected", message["message_id"],
                  {"code": code, "type": message["type"], "message_id": message["message_id"]})

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

    def refund(self, request_id: str | None, items: Decimal, fee: Decimal,
               deduction: Decimal, at: datetime, due: datetime | None = None,
               postage: Decimal = Decimal(0)) -> None:
        amount = items + fee - deduction + postage
        self.refunded += amount
        breakdown = {"items": items, "shipping_fee": fee, "return_shipping_deduction": deduction}
        if postage:
            breakdown["return_shipping_refund"] = postage
        self.emit("refund.initiated", request_id or "", {
            "request_id": request_id, "amount": amount, "currency": self.currency,
            "breakdown": breakdown,
        }, due)

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
        if self.cancelled:
            return self.refuse(m, "order_cancelled")
        self.delivered_at = self.delivered_at or at
        if self.placed and self.placed["payment_method"] == "cod":
            self.collected = True  # 1.1: the courier collected the money
        return None

    def cancel(self, by: str, reason: str | None, at: datetime, due: datetime | None = None
               ) -> None:
        self.cancelled = True
        paid = self.is_paid()
        items, fee = self.value(self.sold()), self.fee()
        data: dict[str, Any] = {"by": by, "seller_fault": by == "seller",
                                "refund": {"amount": items + fee, "currency": self.currency}
                                if paid else None}
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

    # --- returns -------------------------------------------------------------------

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
        found = self.earlier(items)
        if isinstance(found, str):
            return self.refuse(m, found)
        delivered = self.delivered_at
        if m["kind"] == "return_and_refund" and (delivered is None or at < delivered):
            return self.refuse(m, "not_delivered")
        late = delivered is not None and at - delivered > self.terms.return_window
        if found is None and late:
            return self.refuse(m, "outside_return_window")
        cost = Decimal(0)
        if m.get("method") == "drop_off":
            cost_or_problem = self.drop_off_cost(m, items)
            if cost_or_problem is None:
                return self.refuse(m, "drop_off_ineligible")
            cost = cost_or_problem
        return self.open_request(m, at, items, found, cost)

    def earlier(self, items: dict[str, int]) -> Request | str | None:
        """README "Resubmission" and "Several requests": the rejected request this one
        resubmits, or the code refusing it."""
        overlapping = sorted(
            (r for r in self.returns.values()
             if r.status != "superseded" and set(items) & set(r.items)),
            key=lambda r: (r.requested_at, r.request_id),
        )
        for r in overlapping:
            if r.status == "appealed":
                return "appeal_pending"
            if r.status == "rejected" and r.attempt >= MAX_ATTEMPTS:
                return "resubmission_used"
            if r.status in ("rejected_final", "arbitration_rejected"):
                return "return_refused"
        sold = self.sold()
        for sku, qty in items.items():
            refunded = sum(r.items.get(sku, 0) for r in self.returns.values()
                           if r.status == "refunded")
            taken = sum(r.items.get(sku, 0) for r in self.returns.values()
                        if r.status in ("requested", "approved"))
            if refunded + qty > sold[sku]:
                return "already_refunded"
            if refunded + taken + qty > sold[sku]:
                return "items_in_open_request"
        return next((r for r in overlapping if r.status == "rejected"), None)

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

    def open_request(self, m: dict[str, Any], at: datetime, items: dict[str, int],
                     previous: Request | None, cost: Decimal) -> None:
        rid = m["request_id"]
        if self.terms.business_hours:
            respond_by = uk_business_hours(at, self.terms.return_response)
        else:
            respond_by = at + self.terms.return_response
        if previous is not None:
            self.stop_request(previous.request_id)
            previous.status = "superseded"
        self.returns[rid] = Request(
            request_id=rid, kind=m["kind"], method=m.get("method"), reason=m["reason"],
            items=items, attempt=previous.attempt + 1 if previous else 1, requested_at=at,
            cost=cost, payer="seller" if m["reason"] in SELLER_FAULT else "buyer",
        )
        self.timers[("return_response", rid)] = respond_by
        self.emit("return.requested", rid, {
            "request_id": rid, "kind": m["kind"], "method": m.get("method"),
            "reason": m["reason"], "respond_by": respond_by,
        })

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
            self.emit("return.approved", request.request_id,
                      {"request_id": request.request_id, "by": "seller"})
            self.approve(request, at)

    def on_seller_return_rejected(self, m: dict[str, Any], at: datetime) -> None:
        if (request := self.request(m, "requested")) is not None:
            self.stop_request(request.request_id)
            request.status = "rejected"
            self.emit("return.rejected", request.request_id, {
                "request_id": request.request_id, "reason": m["reason"],
                "can_resubmit": request.attempt < MAX_ATTEMPTS, "can_appeal": True,
            })
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
        self.emit("return.approved", request.request_id,
                  {"request_id": request.request_id, "by": "platform"})
        self.approve(request, at)

    def approve(self, request: Request, at: datetime, due: datetime | None = None) -> None:
        self.stop_request(request.request_id)
        request.status, request.approved_at = "approved", at
        rid = request.request_id
        if request.kind == "refund_only":
            self.refund_request(request, at, due)
        elif request.method == "drop_off":
            label: dict[str, Any] = {
                "request_id": rid, "payer": request.payer, "valid_until": at + self.terms.label,
                "cost": {"amount": request.cost, "currency": self.currency},
            }
            if self.terms.carrier:
                label["carrier"] = self.terms.carrier
            request.label = self.emit("return.label_generated", rid, label)
            self.timers[("label", rid)] = at + self.terms.label
        else:
            self.timers[("tracking", rid)] = at + self.terms.tracking

    def refund_request(self, request: Request, at: datetime, due: datetime | None = None
                       ) -> None:
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
        request.status = reason if reason in ("rejected_final", "arbitration_rejected") \
            else "closed"
        self.emit("return.closed", request.request_id,
                  {"request_id": request.request_id, "reason": reason}, due)

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
        self.emit("return.label_email_requested", request.request_id,
                  {"request_id": request.request_id, "email": m["email"]})
        return None

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
            self.refund_request(self.returns[ref], due, due)
        else:  # pragma: no cover - every timer above
            raise AssertionError(kind)


def expected_outcomes(order_id: str, messages: list[dict[str, Any]], horizon: datetime
                      ) -> list[Outcome]:
    """The outcomes the rules give for one order's messages, timers fired up to `horizon`."""
    return Order(order_id, horizon).run(messages)


def pending_timers(order_id: str, messages: list[dict[str, Any]], horizon: datetime
                   ) -> list[tuple[str, datetime]]:
    """Timers still pending after `horizon` (the generator keeps them far away)."""
    order = Order(order_id, horizon)
    order.run(messages)
    return sorted(((kind, due) for (kind, _), due in order.timers.items()), key=lambda t: t[1])
