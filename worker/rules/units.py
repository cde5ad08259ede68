"""Which units of an order a return request may ask for (docs/rules.md: units, not SKUs).

Free units = sold - refunded - in open requests - finally refused - waiting in a rejected
request (for its resubmission or appeal). Free units make a new request, inside the
return window; units of a rejected request make its resubmission, which may add free
units only inside the window.
"""

from __future__ import annotations

from schemas.inbound import ItemSelection
from worker.rules.codes import RejectionCode
from worker.rules.state import OrderState, ReturnRequest
from worker.rules.step import facts

FINAL_CLOSINGS = ("rejected_final", "arbitration_rejected")
MAX_ATTEMPTS = 2  # rule 8: a rejected request may be submitted once more

Units = dict[str, int]


def earlier_requests(
    state: OrderState, selection: tuple[ItemSelection, ...], late: bool
) -> ReturnRequest | tuple[RejectionCode, str] | None:
    """The rejected request this one resubmits (or None), or why the units are not free."""
    free = _free_units(state)
    asked = {s.sku: s.quantity for s in selection}
    if not late and _within(asked, free):
        return None
    for request in _resubmittable(state):
        mine = _units(request.items)
        if _within(asked, mine if late else _plus(free, mine)):
            return request
        if late and set(asked) & set(mine) and _within(asked, _plus(free, mine)):
            return "resubmission_adds_items", (
                f"request {request.request_id} may be resubmitted after the return window "
                "only for its own units or fewer"
            )
    if late and _within(asked, free):
        return None  # free units, but too late: the window check refuses it
    return _why_not_free(state, asked, free)


def _why_not_free(state: OrderState, asked: Units, free: Units) -> tuple[RejectionCode, str]:
    sku = next(sku for sku, quantity in asked.items() if quantity > free.get(sku, 0))
    holders = [r for r in _by_time(state) if sku in _units(r.items)]
    blockers: tuple[tuple[str, RejectionCode, str], ...] = (
        ("appealed", "appeal_pending", "is under appeal"),
        ("rejected_twice", "resubmission_used", "was rejected twice: appeal it"),
        ("refused", "return_refused", "was finally refused"),
    )
    for status, code, says in blockers:
        for r in holders:
            if _category(r) == status:
                return code, f"sku {sku}: request {r.request_id} {says}"
    sold = next(i.quantity for i in facts(state).items if i.sku == sku)
    if _quantities(state, ("refunded",)).get(sku, 0) + asked[sku] > sold:
        return "already_refunded", f"sku {sku}: {asked[sku]} asked, some are already refunded"
    return "items_in_open_request", f"sku {sku}: units are in another open request"


def _category(request: ReturnRequest) -> str:
    """What a request does to its units: holds them, frees them, or refuses them."""
    if request.status == "rejected":
        return "rejected_twice" if request.attempt >= MAX_ATTEMPTS else "resubmittable"
    if request.status == "closed":
        return "refused" if request.closed_reason in FINAL_CLOSINGS else "free"
    if request.status == "superseded":
        return "free"
    return request.status  # requested, approved, appealed, refunded: held


def _free_units(state: OrderState) -> Units:
    free = {item.sku: item.quantity for item in facts(state).items}
    for request in state.returns.values():
        if _category(request) != "free":
            for s in request.items:
                free[s.sku] -= s.quantity
    return free


def _resubmittable(state: OrderState) -> list[ReturnRequest]:
    return [r for r in _by_time(state) if _category(r) == "resubmittable"]


def _by_time(state: OrderState) -> list[ReturnRequest]:
    return sorted(state.returns.values(), key=lambda r: (r.requested_at, r.request_id))


def _units(selection: tuple[ItemSelection, ...]) -> Units:
    return {s.sku: s.quantity for s in selection}


def _plus(a: Units, b: Units) -> Units:
    return {sku: a.get(sku, 0) + b.get(sku, 0) for sku in a.keys() | b.keys()}


def _within(asked: Units, available: Units) -> bool:
    return all(quantity <= available.get(sku, 0) for sku, quantity in asked.items())


def _quantities(state: OrderState, statuses: tuple[str, ...]) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for request in state.returns.values():
        if request.status in statuses:
            for s in request.items:
                quantities[s.sku] = quantities.get(s.sku, 0) + s.quantity
    return quantities
