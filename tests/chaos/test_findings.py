"""What the chaos run found in the rules, reduced to the smallest reproduction.

Marked xfail(strict=True): each documents today's behaviour and turns into a failure
("XPASS") once the rules are fixed, so the marker is then removed (docs/chaos.md).
"""

from __future__ import annotations

import pytest

from tests.factories import T0, days, hours, order_placed, paid, shipped
from tests.unit.harness import Timeline


@pytest.mark.xfail(strict=True, reason="a message that must wait for the payment fires the "
                   "unpaid expiry first (docs/chaos.md, Findings 1)")
def test_a_shipment_that_waits_for_the_payment_does_not_expire_the_order_first() -> None:
    """A prepaid order paid an hour after it was placed, shipped three days later. The
    shipment arrives before the payment (out of order, as the contract allows): it is
    held for `order.paid` (README, "Held, not refused"). When the payment comes, the
    order is paid, shipped, and was never cancelled: the payment happened long before
    the 48 h unpaid expiry.

    Today the held shipment first catches up the order's timers to its own event time,
    so the unpaid expiry fires (`order.cancelled` by platform) before the shipment is
    found to be waiting; the payment is then refunded as a payment for a cancelled order
    and the shipment refused (`order_cancelled`). In the opposite arrival order nothing
    of that happens: the outcome depends on arrival order."""
    order = Timeline("o-finding-1")
    placed = order_placed("o-finding-1", at=T0)
    order.send(placed, now=T0 + days(4))
    order.send(shipped("o-finding-1", at=T0 + days(3)), now=T0 + days(4))
    order.send(paid("o-finding-1", at=T0 + hours(1)), now=T0 + days(4))

    assert order.types() == []
    assert order.state.cancellation is None
    assert order.state.shipped_at == T0 + days(3)
