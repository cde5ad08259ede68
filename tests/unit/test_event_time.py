"""Event time all the way (docs/design.md): a message is judged against the order as it was
at its occurred_at, whatever the arrival order; published outcomes are never undone.
"""

from __future__ import annotations

import pytest

from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline

NOW = T0 + days(5)  # processing time: only the holds use it
MIN = hours(1 / 60)


def _outcomes(timeline: Timeline) -> list[tuple[str, str]]:
    """Every outcome as (type, data), sorted: the same set whatever the arrival order."""
    return sorted((e.type, e.data.model_dump_json()) for e in timeline.events)


def _rejections(timeline: Timeline) -> list[tuple[str, str]]:
    return [(d.type, d.code) for d in timeline.of("action.rejected")]


# --- item 11: cancel vs shipment ---------------------------------------------------------


@pytest.mark.parametrize("shipment_first", [False, True])
def test_a_free_cancel_before_the_shipment_wins_in_both_arrival_orders(
    shipment_first: bool,
) -> None:
    """Paid 10:00, cancelled 10:30 (inside the free hour), shipped 10:40."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    cancel = f.cancel_requested(oid, T0 + hours(0.5))
    ship = f.shipped(oid, T0 + hours(0.5) + 10 * MIN)
    for msg in (ship, cancel) if shipment_first else (cancel, ship):
        timeline.send(msg, now=NOW)
    assert sorted(timeline.types()) == ["action.rejected", "order.cancelled", "refund.initiated"]
    assert timeline.one("order.cancelled").by == "buyer"
    assert timeline.refunded() == ["54.99"]
    assert _rejections(timeline) == [("order.shipped", "order_cancelled")]
    assert timeline.one("action.rejected").message_id == ship.message_id
    assert timeline.state.shipped_at is None and timeline.state.ready_to_ship_at is None


def test_a_cancel_after_the_shipment_is_refused() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    ship = f.shipped(oid, T0 + hours(0.5))
    timeline.send(ship, f.cancel_requested(oid, T0 + hours(0.5) + MIN), now=NOW)
    assert _rejections(timeline) == [("buyer.cancel_requested", "already_shipped")]
    assert timeline.state.shipped_at == ship.occurred_at


def test_a_published_cancel_is_not_undone_by_an_earlier_shipment_arriving_later() -> None:
    """The exception: the cancellation is out; the shipment must be stopped."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    timeline.send(f.cancel_requested(oid, T0 + hours(0.5) + MIN), now=NOW)
    timeline.send(f.shipped(oid, T0 + hours(0.5)), now=NOW)
    assert _rejections(timeline) == [("order.shipped", "order_cancelled")]
    assert timeline.one("order.cancelled").by == "buyer"


@pytest.mark.parametrize("arrival", [(0, 1, 2), (0, 2, 1), (2, 0, 1)])
def test_a_cancel_request_before_the_shipment_is_rejected_by_it_in_any_arrival_order(
    arrival: tuple[int, int, int],
) -> None:
    """Outside the free window the request opens, and the later shipment rejects it (the
    payment is known before the request: a cancel before it would be an instant one)."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed)
    facts = (
        f.paid(oid, T0 + hours(1)),
        f.cancel_requested(oid, T0 + hours(3)),
        f.shipped(oid, T0 + hours(4)),
    )
    for i in arrival:
        timeline.send(facts[i], now=NOW)
    expected = [("cancellation.rejected", '{"by":"system","reason":"the order has shipped"}')]
    assert [o for o in _outcomes(timeline) if o[0] == "cancellation.rejected"] == expected
    assert "cancellation.requested" in timeline.types()
    assert timeline.state.cancellation is None


@pytest.mark.parametrize("rts_first", [False, True])
def test_a_seller_cancel_before_ready_to_ship_wins_in_both_arrival_orders(
    rts_first: bool,
) -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    cancel = f.seller_cancelled(oid, T0 + hours(2))
    rts = f.ready_to_ship(oid, T0 + hours(3))
    for msg in (rts, cancel) if rts_first else (cancel, rts):
        timeline.send(msg, now=NOW)
    assert timeline.one("order.cancelled").by == "seller"
    assert _rejections(timeline) == [("order.ready_to_ship", "order_cancelled")]


def test_a_late_payment_before_a_published_cancel_is_refunded() -> None:
    """The documented exception: the cancel was published as unpaid; the payment that
    happened before it arrives later and is refunded in full (docs/rules.md)."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed)
    timeline.send(f.cancel_requested(oid, T0 + hours(0.5)), now=NOW)
    assert timeline.one("order.cancelled").refund is None
    timeline.send(f.paid(oid, T0 + hours(0.25)), now=NOW)
    assert timeline.refunded() == ["54.99"]


# --- the exception: published outcomes stand -----------------------------------------------


def requested_return(marketplace: str = "US") -> tuple[Timeline, str, str]:
    """A delivered order with a self-arranged return of sku-a asked at T0 + 2 days; in the
    US (calendar hours) its answer window ends at T0 + 4 days."""
    placed = f.order_placed(marketplace=marketplace)
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed, f.paid(oid, T0), f.shipped(oid, T0 + hours(1)), f.delivered(oid, T0 + days(1))
    )
    request = f.return_requested(
        oid, T0 + days(2), method="self_arrange", items=[{"sku": "sku-a", "quantity": 1}]
    )
    timeline.send(request)
    return timeline, oid, request.request_id


def test_an_answer_that_happened_before_a_fired_timer_gets_outcome_already_published() -> None:
    timeline, oid, rid = requested_return()
    timeline.fire("return_response", rid)  # due T0 + 4 days
    timeline.send(f.return_rejected(oid, rid, T0 + days(4) - MIN), now=NOW)
    assert timeline.codes() == ["outcome_already_published"]
    assert timeline.of("action.rejected")[0].type == "seller.return_rejected"


def test_an_answer_after_the_deadline_keeps_request_not_open() -> None:
    timeline, oid, rid = requested_return()
    timeline.fire("return_response", rid)
    timeline.send(f.return_rejected(oid, rid, T0 + days(4) + MIN), now=NOW)
    assert timeline.codes() == ["request_not_open"]


def test_a_cancel_before_a_shipment_that_already_published_gets_outcome_already_published() -> None:
    """The shipment rejected an open request (published): it cannot be taken back, so the
    seller's acceptance that happened before it is refused with the exception's code."""
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed,
        f.paid(oid, T0),
        f.cancel_requested(oid, T0 + hours(3)),
        f.shipped(oid, T0 + hours(5)),
    )
    timeline.send(f.cancel_accepted(oid, T0 + hours(4)), now=NOW)
    assert timeline.codes() == ["outcome_already_published"]
    assert timeline.state.cancellation is None


# --- not shipped yet -------------------------------------------------------------------------


@pytest.mark.parametrize("shipment_first", [False, True])
def test_refund_only_before_the_shipment_is_refused_in_both_arrival_orders(
    shipment_first: bool,
) -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    ask = f.return_requested(oid, T0 + hours(2), kind="refund_only", reason="not_received")
    ship = f.shipped(oid, T0 + hours(3))
    for msg in (ship, ask) if shipment_first else (ask, ship):
        timeline.send(msg, now=NOW)
    assert _rejections(timeline) == [("buyer.return_requested", "not_shipped")]
    assert timeline.state.returns == {} and timeline.state.parked == ()


def test_refund_only_whose_shipment_never_comes_is_refused_not_shipped() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    ask = f.return_requested(oid, T0 + hours(2), kind="refund_only", reason="not_received")
    timeline.send(ask, now=NOW)
    timeline.fire("hold", ask.message_id)
    assert timeline.codes() == ["not_shipped"] and timeline.dead_letters == []


def test_refund_only_at_the_shipment_time_is_accepted() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0))
    ask = f.return_requested(oid, T0 + hours(3), kind="refund_only", reason="not_received")
    timeline.send(ask, now=NOW)
    timeline.send(f.shipped(oid, T0 + hours(3)), now=NOW)
    assert timeline.types() == ["return.requested"]


@pytest.mark.parametrize("delivery_first", [False, True])
def test_a_return_before_the_delivery_is_refused_in_both_arrival_orders(
    delivery_first: bool,
) -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0), f.shipped(oid, T0 + hours(1)))
    ask = f.return_requested(oid, T0 + days(1), method="self_arrange")
    arrive = f.delivered(oid, T0 + days(1) + MIN)
    for msg in (arrive, ask) if delivery_first else (ask, arrive):
        timeline.send(msg, now=NOW)
    assert _rejections(timeline) == [("buyer.return_requested", "not_delivered")]


def test_a_silent_fact_is_kept_for_replay_and_a_published_outcome_clears_it() -> None:
    placed = f.order_placed()
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(placed, f.paid(oid, T0), f.shipped(oid, T0 + hours(2)))
    history = timeline.state.history
    assert history is not None and history.base.order is None
    assert [i.message["type"] for i in history.inputs] == [
        "order.placed",
        "order.paid",
        "order.shipped",
    ]
    timeline.send(f.cancel_requested(oid, T0 + hours(3)))
    assert timeline.state.history is None
    assert timeline.state.published == {}, "a refusal is no outcome of a subject"
    timeline.send(
        f.delivered(oid, T0 + days(1)), f.return_requested(oid, T0 + days(2), request_id="r1")
    )
    assert timeline.state.published == {"r1": T0 + days(2)}
