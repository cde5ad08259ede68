"""Which units of an order a return request may ask for (docs/rules.md: units, not SKUs).

Free units = sold - refunded - in open requests - finally refused - waiting in a rejected
request (for its resubmission or appeal). Free units make a new request, inside the
return window. Rejections are counted per unit (1.2): a unit rejected once may be asked
for once more (its resubmission) while its rejected request waits, whatever other units
shared that request; a unit rejected twice only by an appeal. A request that needs units
rejected once takes them over from their rejected requests (a request left with no unit
is `superseded`; one with units left waits on with them), and may add free units only
inside the return window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.inbound import ItemSelection
from worker.rules.codes import RejectionCode
from worker.rules.state import OrderState, ReturnRequest
from worker.rules.step import facts

FINAL_CLOSINGS = ("rejected_final", "arbitration_rejected")
SETTLED = "offer_accepted"  # 1.2: the buyer took a partial refund and keeps the units
MAX_ATTEMPTS = 2  # rule 8: a rejected unit may be asked for once more

Units = dict[str, int]


@dataclass(frozen=True)
class Taken:
    """What a new request takes over: per rejected request, the units (rejected once) it
    asks for again. Empty: a new request of free units only."""

    by_request: dict[str, Units] = field(default_factory=dict)

    @property
    def units(self) -> Units:
        total: Units = {}
        for units in self.by_request.values():
            total = _plus(total, units)
        return total


def earlier_requests(
    state: OrderState, selection: tuple[ItemSelection, ...], late: bool
) -> Taken | tuple[RejectionCode, str]:
    """The units this request asks for again (and from which rejected requests), or why
    the units are not free. Free units are used first; after the return window only
    units rejected once may be asked for."""
    free = _free_units(state)
    asked = {s.sku: s.quantity for s in selection}
    if not late and _within(asked, free):
        return Taken()
    pools = _pools(state)
    pooled = _sum(pools.values())
    need = asked if late else {sku: q - free.get(sku, 0) for sku, q in asked.items()}
    need = {sku: q for sku, q in need.items() if q > 0}
    if _within(need, pooled):
        return _take(need, pools)
    if late and set(asked) & set(pooled) and _within(asked, _plus(free, pooled)):
        return "resubmission_adds_items", (
            "after the return window a request may ask again only for units rejected "
            "once, and nothing more"
        )
    if late and _within(asked, free):
        return Taken()  # free units, but too late: the window check refuses it
    return _why_not_free(state, asked, _plus(free, pooled))


def second_tries(state: OrderState, request: ReturnRequest) -> Units:
    """The units of `request` asked for the second time. Requests stored before 1.2, and
    resubmissions of all of a rejected request's units (returns._told_by_the_superseded),
    do not say: a resubmission's units shared with the request it resubmitted."""
    if request.second_tries is not None:
        return _units(request.second_tries)
    if request.attempt < MAX_ATTEMPTS:
        return {}
    mine = _units(request.items)
    previous = state.returns.get(request.previous_request_id or "")
    if previous is None:
        return mine
    theirs = _units(previous.items)
    return {sku: min(q, theirs.get(sku, 0)) for sku, q in mine.items() if theirs.get(sku, 0)}


def first_tries(state: OrderState, request: ReturnRequest) -> Units:
    """The units of `request` asked for the first time (rejected: they may be asked again)."""
    again = second_tries(state, request)
    units = {s.sku: s.quantity - again.get(s.sku, 0) for s in request.items}
    return {sku: q for sku, q in units.items() if q > 0}


def _take(need: Units, pools: dict[str, Units]) -> Taken:
    """Units rejected once, from the earliest rejected requests first."""
    taken: dict[str, Units] = {}
    for sku, quantity in need.items():
        for request_id, pool in pools.items():
            if quantity == 0:
                break
            n = min(quantity, pool.get(sku, 0))
            if n:
                taken.setdefault(request_id, {})[sku] = n
                quantity -= n
    return Taken(taken)


def _pools(state: OrderState) -> dict[str, Units]:
    """Per rejected request (earliest first), its units rejected once."""
    pools = {r.request_id: first_tries(state, r) for r in _by_time(state) if r.status == "rejected"}
    return {request_id: units for request_id, units in pools.items() if units}


def _why_not_free(state: OrderState, asked: Units, free: Units) -> tuple[RejectionCode, str]:
    sku = next(sku for sku, quantity in asked.items() if quantity > free.get(sku, 0))
    holders = [r for r in _by_time(state) if sku in _units(r.items)]
    for r in holders:
        if r.status == "appealed":
            return "appeal_pending", f"sku {sku}: request {r.request_id} is under appeal"
    for r in holders:
        if r.status == "rejected" and second_tries(state, r).get(sku, 0):
            says = "its units were rejected twice: appeal it"
            return "resubmission_used", f"sku {sku}: request {r.request_id}: {says}"
    for r in holders:
        if r.status == "closed" and r.closed_reason in FINAL_CLOSINGS:
            return "return_refused", f"sku {sku}: request {r.request_id} was finally refused"
    for r in holders:
        if r.status == "replaced":
            return "already_replaced", f"sku {sku}: request {r.request_id} replaced them"
        if r.status == "closed" and r.closed_reason == SETTLED:
            detail = f"sku {sku}: request {r.request_id} settled them with a partial refund"
            return "already_refunded", detail
    sold = next(i.quantity for i in facts(state).items if i.sku == sku)
    if _quantities(state, ("refunded",)).get(sku, 0) + asked[sku] > sold:
        return "already_refunded", f"sku {sku}: {asked[sku]} asked, some are already refunded"
    return "items_in_open_request", f"sku {sku}: units are in another open request"


def _holds(request: ReturnRequest) -> bool:
    """A request that keeps its units from a new request: all but the superseded and
    those closed by a timer of the return leg (label expired, tracking not sent)."""
    if request.status == "superseded":
        return False
    if request.status == "closed":
        return request.closed_reason in (*FINAL_CLOSINGS, SETTLED)
    return True


def _free_units(state: OrderState) -> Units:
    free = {item.sku: item.quantity for item in facts(state).items}
    for request in state.returns.values():
        if _holds(request):
            for s in request.items:
                free[s.sku] -= s.quantity
    return free


def _by_time(state: OrderState) -> list[ReturnRequest]:
    return sorted(state.returns.values(), key=lambda r: (r.requested_at, r.request_id))


def _units(selection: tuple[ItemSelection, ...]) -> Units:
    return {s.sku: s.quantity for s in selection}


def _plus(a: Units, b: Units) -> Units:
    return {sku: a.get(sku, 0) + b.get(sku, 0) for sku in a.keys() | b.keys()}


def _sum(many: object) -> Units:
    total: Units = {}
    for units in many:  # type: ignore[attr-defined]
        total = _plus(total, units)
    return total


def _within(asked: Units, available: Units) -> bool:
    return all(quantity <= available.get(sku, 0) for sku, quantity in asked.items())


def _quantities(state: OrderState, statuses: tuple[str, ...]) -> dict[str, int]:
    quantities: dict[str, int] = {}
    for request in state.returns.values():
        if request.status in statuses:
            for s in request.items:
                quantities[s.sku] = quantities.get(s.sku, 0) + s.quantity
    return quantities
