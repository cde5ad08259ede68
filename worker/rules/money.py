"""Money, parcels and refunds (rules 9, 11, 13).

Amounts are Decimal throughout and rounded once, at the end, to the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from schemas.inbound import ItemSelection, OrderItem, Parcel
from schemas.policy import DropOffPolicy
from worker.rules.state import OrderFacts, OrderState, ReturnRequest

ZERO = Decimal("0")

# ISO 4217 minor units that differ from the usual 2 (cents, pence).
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def round_money(value: Decimal, currency: str) -> Decimal:
    exponent = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    return value.quantize(exponent, rounding=ROUND_HALF_UP)


def items_value(order: OrderFacts, selection: Iterable[ItemSelection]) -> Decimal:
    prices = {item.sku: item.unit_price for item in order.items}
    return sum((prices[s.sku] * s.quantity for s in selection), ZERO)


def whole_order(order: OrderFacts) -> tuple[ItemSelection, ...]:
    return tuple(ItemSelection(sku=i.sku, quantity=i.quantity) for i in order.items)


@dataclass(frozen=True)
class Refund:
    items: Decimal
    shipping_fee: Decimal
    deduction: Decimal

    @property
    def amount(self) -> Decimal:
        return self.items + self.shipping_fee - self.deduction


def full_refund(order: OrderFacts) -> Refund:
    """A cancelled paid order: everything back, nothing deducted."""
    items = round_money(items_value(order, whole_order(order)), order.currency)
    return Refund(items, round_money(order.shipping_fee, order.currency), ZERO)


def refund_for(state: OrderState, request: ReturnRequest, order: OrderFacts) -> Refund:
    """Rule 13, capped so that the order's total refund never exceeds what was paid."""
    currency = order.currency
    items = round_money(items_value(order, request.items), currency)
    refunded = _refunded_quantities(state.returns.values(), request)
    everything = all(refunded.get(i.sku, 0) >= i.quantity for i in order.items)
    fee = round_money(order.shipping_fee, currency) if everything else ZERO
    buyer_pays = request.payer == "buyer" and request.kind == "return_and_refund"
    deduction = round_money(request.return_cost, currency) if buyer_pays else ZERO
    deduction = min(deduction, items + fee)  # a refund is never negative
    paid = full_refund(order).amount
    room = max(ZERO, paid - state.refunded_total)
    excess = max(ZERO, items + fee - deduction - room)
    return Refund(items, fee, deduction + excess)


def _refunded_quantities(
    requests: Iterable[ReturnRequest], current: ReturnRequest
) -> dict[str, int]:
    counted = [r for r in requests if r.status == "refunded" and r.request_id != current.request_id]
    quantities: dict[str, int] = {}
    for request in [*counted, current]:
        for s in request.items:
            quantities[s.sku] = quantities.get(s.sku, 0) + s.quantity
    return quantities


# --- parcels and drop-off (rule 9) ---------------------------------------------------


def _lines(order: OrderFacts, selection: Iterable[ItemSelection]) -> list[tuple[OrderItem, int]]:
    by_sku = {item.sku: item for item in order.items}
    return [(by_sku[s.sku], s.quantity) for s in selection]


def parcel_weight(
    order: OrderFacts, selection: Iterable[ItemSelection], parcel: Parcel | None
) -> Decimal | None:
    """The parcel's weight, else the items' weight times quantity; None when unknown."""
    if parcel is not None:
        return parcel.weight_kg
    lines = _lines(order, selection)
    if any(item.weight_kg is None for item, _ in lines):
        return None
    return sum((item.weight_kg * qty for item, qty in lines if item.weight_kg), ZERO)


def parcel_dimensions(
    order: OrderFacts, selection: Iterable[ItemSelection], parcel: Parcel | None
) -> tuple[Decimal, Decimal, Decimal] | None:
    """Sides of the parcel, longest first; None when unknown.

    Without a `parcel`, the items are stacked on their flattest side: the parcel is as
    long and as wide as the longest and widest item, and as high as all items' smallest
    sides (times quantity) together.
    """
    if parcel is not None:
        a, b, c = sorted(parcel.dimensions_cm, reverse=True)
        return a, b, c
    lines = _lines(order, selection)
    if any(item.dimensions_cm is None for item, _ in lines):
        return None
    sides = [(sorted(item.dimensions_cm or (), reverse=True), qty) for item, qty in lines]
    length = max(s[0] for s, _ in sides)
    width = max(s[1] for s, _ in sides)
    height = sum((s[2] * qty for s, qty in sides), ZERO)
    a, b, c = sorted((length, width, height), reverse=True)
    return a, b, c


def drop_off_problem(
    rules: DropOffPolicy,
    order: OrderFacts,
    selection: tuple[ItemSelection, ...],
    parcel: Parcel | None,
) -> str | None:
    """Why a drop-off is not allowed (rule 9), or None when it is."""
    weight = parcel_weight(order, selection, parcel)
    if rules.max_weight_kg is not None:
        if weight is None:
            return "the parcel's weight is unknown: give parcel.weight_kg"
        if weight > rules.max_weight_kg:
            return f"the parcel weighs {weight} kg, over {rules.max_weight_kg} kg"
    if weight is not None and rules.rates and weight > rules.rates[-1].up_to_kg:
        return f"no drop-off rate for {weight} kg"
    if rules.max_perimeter_cm is not None:
        sides = parcel_dimensions(order, selection, parcel)
        if sides is None:
            return "the parcel's size is unknown: give parcel.dimensions_cm"
        a, b, c = sides
        if a + 2 * (b + c) >= rules.max_perimeter_cm:
            return f"length + girth is {a + 2 * (b + c)} cm, not under {rules.max_perimeter_cm} cm"
    value = items_value(order, selection)
    if rules.max_value is not None and value > rules.max_value:
        return f"the returned value {value} {order.currency} is over {rules.max_value}"
    return None


def drop_off_cost(
    rules: DropOffPolicy,
    order: OrderFacts,
    selection: tuple[ItemSelection, ...],
    parcel: Parcel | None,
) -> Decimal:
    """The label's price: the first rate covering the weight; the top rate if unknown."""
    if not rules.rates:
        return ZERO
    weight = parcel_weight(order, selection, parcel)
    for rate in rules.rates:
        if weight is not None and weight <= rate.up_to_kg:
            return rate.price
    return rules.rates[-1].price
