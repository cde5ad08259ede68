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
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
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
class Cash:
    """An amount in a currency. Adding, subtracting or comparing two currencies raises:
    a 1,500 limit in GBP says nothing about 1,500 JPY."""

    amount: Decimal
    currency: str

    def _same(self, other: Cash) -> Decimal:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be mixed")
        return other.amount

    def __add__(self, other: Cash) -> Cash:
        return Cash(self.amount + self._same(other), self.currency)

    def __sub__(self, other: Cash) -> Cash:
        return Cash(self.amount - self._same(other), self.currency)

    def __lt__(self, other: Cash) -> bool:
        return self.amount < self._same(other)

    def __le__(self, other: Cash) -> bool:
        return self.amount <= self._same(other)

    def __gt__(self, other: Cash) -> bool:
        return self.amount > self._same(other)

    def __ge__(self, other: Cash) -> bool:
        return self.amount >= self._same(other)


class CurrencyMismatch(ValueError):
    """Two currencies met in one sum or comparison: a bug, never a business outcome."""


@dataclass(frozen=True)
class Refund:
    """The parts of one refund; each is rounded to the minor unit, so they add up exactly."""

    items: Decimal
    shipping_fee: Decimal
    deduction: Decimal  # buyer-paid return shipping (rule 11)
    postage_refund: Decimal = ZERO  # the buyer's own postage, seller-fault reasons (1.1)

    @property
    def amount(self) -> Decimal:
        return self.items + self.shipping_fee - self.deduction + self.postage_refund


def remaining_refund(state: OrderState, order: OrderFacts) -> Refund:
    """Everything paid and not yet refunded: a cancellation refunds this.

    Units settled by an accepted partial refund (1.2) were to be kept for the rest of
    their price; an order cancelled before delivery keeps nothing, so that rest goes back
    too: the partial refunds come off the items' part first, then the fee's."""
    refunded = _refunded_quantities(state.returns.values(), None, settled=False)
    rest = tuple(
        ItemSelection(sku=i.sku, quantity=i.quantity - refunded.get(i.sku, 0))
        for i in order.items
        if i.quantity > refunded.get(i.sku, 0)
    )
    items = _items_refund(order, refunded, rest)
    # With no unit left, the fee went back with the last of them.
    fee = round_money(order.shipping_fee, order.currency) if rest else ZERO
    partial = sum((r.refund or ZERO for r in state.returns.values() if _partly(r)), ZERO)
    off_items = min(partial, items)
    return Refund(items - off_items, fee - min(partial - off_items, fee), ZERO)


def full_refund(order: OrderFacts) -> Refund:
    """A cancelled paid order: everything back, nothing deducted."""
    items = round_money(items_value(order, whole_order(order)), order.currency)
    return Refund(items, round_money(order.shipping_fee, order.currency), ZERO)


def refund_for(
    state: OrderState, request: ReturnRequest, order: OrderFacts, postage_cap: Cash | None = None
) -> Refund:
    """Rule 13, plus the buyer's own postage for seller-fault self-arranged returns.

    The items' part is the rounded value of every unit refunded so far, this request's
    included, minus that of the units refunded before: partial refunds then add up to
    exactly what was paid, and no rounding remainder is left to report.
    """
    currency = order.currency
    before = _refunded_quantities(state.returns.values(), request)
    items = _items_refund(order, before, request.items)
    # Rule 13: every item refunded; units kept with a partial refund (1.2) never are.
    after = _add(
        _refunded_quantities(state.returns.values(), request, settled=False), request.items
    )
    everything = all(after.get(i.sku, 0) >= i.quantity for i in order.items)
    fee = round_money(order.shipping_fee, currency) if everything else ZERO
    buyer_pays = request.payer == "buyer" and request.kind == "return_and_refund"
    deduction = round_money(request.return_cost, currency) if buyer_pays else ZERO
    deduction = min(deduction, items + fee)  # a refund is never negative
    postage = ZERO
    if request.payer == "seller" and request.postage is not None:
        paid = Cash(request.postage, currency)
        if postage_cap is not None:
            paid = min(paid, postage_cap)
        postage = round_money(paid.amount, currency)
    return Refund(items, fee, deduction, postage)


def _items_refund(
    order: OrderFacts, before: dict[str, int], selection: Iterable[ItemSelection]
) -> Decimal:
    def value(quantities: dict[str, int]) -> Decimal:
        chosen = [ItemSelection(sku=sku, quantity=q) for sku, q in quantities.items() if q]
        return round_money(items_value(order, chosen), order.currency)

    return value(_add(before, selection)) - value(before)


def _add(quantities: dict[str, int], selection: Iterable[ItemSelection]) -> dict[str, int]:
    total = dict(quantities)
    for s in selection:
        total[s.sku] = total.get(s.sku, 0) + s.quantity
    return total


def _partly(request: ReturnRequest) -> bool:
    """1.2: settled by an accepted partial refund (the units kept for the rest)."""
    return request.status == "closed" and request.closed_reason == "offer_accepted"


def _refunded_quantities(
    requests: Iterable[ReturnRequest], current: ReturnRequest | None, settled: bool = True
) -> dict[str, int]:
    """Units refunded by requests other than `current` (1.2, unless `settled` is False:
    and units settled by an accepted partial refund: they are never refunded again)."""
    done = [
        r
        for r in requests
        if (r.status == "refunded" or (settled and _partly(r)))
        and (current is None or r.request_id != current.request_id)
    ]
    quantities: dict[str, int] = {}
    for request in done:
        quantities = _add(quantities, request.items)
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
    limits_currency: str,
) -> str | None:
    """Why a drop-off is not allowed (rule 9), or None when it is.

    `limits_currency`: the marketplace's currency, which its money limits are in.
    """
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
    value = Cash(items_value(order, selection), order.currency)
    if rules.max_value is not None and value > Cash(rules.max_value, limits_currency):
        return f"the returned value {value.amount} {order.currency} is over {rules.max_value}"
    return None


def drop_off_cost(
    rules: DropOffPolicy,
    order: OrderFacts,
    selection: tuple[ItemSelection, ...],
    parcel: Parcel | None,
    limits_currency: str,
) -> Decimal:
    """The label's price in the order's currency: the first rate covering the weight; the
    top rate if unknown. Rates are in `limits_currency`, which must be the order's."""
    if not rules.rates:
        return ZERO
    weight = parcel_weight(order, selection, parcel)
    price = next(
        (rate.price for rate in rules.rates if weight is not None and weight <= rate.up_to_kg),
        rules.rates[-1].price,
    )
    return (Cash(ZERO, order.currency) + Cash(price, limits_currency)).amount
