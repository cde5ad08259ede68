"""Rules 9-13: drop-off eligibility and labels, self-arranged returns, receipt, refunds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from schemas.inbound import ReturnReason
from schemas.policy import build_policy
from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from worker.rules.money import round_money

DELIVERED = T0 + days(3)
ASKED = DELIVERED + hours(1)  # Tuesday 11:00 UTC: 48 business hours is Thursday 11:00
APPROVED = ASKED + hours(2)


def order(**overrides: object) -> tuple[Timeline, str]:
    msg = f.order_placed(**overrides)
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(
        msg, f.paid(oid, T0 + hours(1)), f.shipped(oid, T0 + hours(5)), f.delivered(oid, DELIVERED)
    )
    return timeline, oid


def ask(timeline: Timeline, **overrides: object) -> str:
    msg = f.return_requested(timeline.order_id, overrides.pop("at", ASKED), **overrides)
    timeline.send(msg)
    return str(msg.request_id)


def expensive(price: str) -> dict[str, object]:
    return {"items": [f.item("sku-x", 1, price, weight_kg=1, dimensions_cm=[10, 10, 10])]}


# --- rule 9: drop-off eligibility ----------------------------------------------------------


@pytest.mark.parametrize(
    ("parcel", "order_overrides", "eligible"),
    [
        ({"weight_kg": 15, "dimensions_cm": [40, 30, 20]}, {}, True),
        ({"weight_kg": 15.01, "dimensions_cm": [40, 30, 20]}, {}, False),
        ({"weight_kg": 2, "dimensions_cm": [22.45, 100, 50]}, {}, True),  # 244.9 cm
        ({"weight_kg": 2, "dimensions_cm": [50, 22.5, 100]}, {}, False),  # 245 cm
        (None, expensive("1500.00"), True),
        (None, expensive("1500.01"), False),
        (None, {"items": [f.item("sku-y", 1, "10.00")]}, False),  # weight and size unknown
    ],
    ids=["15kg", "15.01kg", "244.9cm", "245cm", "1500.00", "1500.01", "unknown"],
)
def test_rule9_drop_off_limits(
    parcel: dict[str, object] | None, order_overrides: dict[str, object], eligible: bool
) -> None:
    timeline, _ = order(**order_overrides)
    ask(timeline, method="drop_off", parcel=parcel)
    if eligible:
        assert timeline.types()[-1] == "return.requested"
    else:
        assert timeline.codes() == ["drop_off_ineligible"]


def test_rule9_default_parcel_from_items_stacks_them() -> None:
    # sku-a 30x20x10, 2 x sku-b 20x10x5: 30 x 20 x (10 + 5 + 5) -> 30 + 2 * (20 + 20) = 110.
    timeline, _ = order()
    rid = ask(timeline, method="drop_off")
    request = timeline.state.returns[rid]
    assert request.return_cost == Decimal("2.99"), "1 + 2 x 0.5 = 2 kg: the first rate"


def test_rule9_without_limits_any_parcel_goes() -> None:
    timeline, _ = order(marketplace="US", currency="USD", items=[f.item("big", 1, "9999.00")])
    rid = ask(timeline, method="drop_off")
    assert timeline.state.returns[rid].return_cost == Decimal("0"), "no charge by default"


@pytest.mark.parametrize(
    ("weight", "price"), [(2, "2.99"), (2.01, "4.49"), (5, "4.49"), (5.5, "6.99"), (15, "6.99")]
)
def test_rule9_rates_by_weight(weight: float, price: str) -> None:
    timeline, _ = order()
    rid = ask(
        timeline,
        method="drop_off",
        reason="changed_mind",
        parcel={"weight_kg": weight, "dimensions_cm": [30, 20, 10]},
    )
    assert timeline.state.returns[rid].return_cost == Decimal(price)


def approved_drop_off(reason: str = "changed_mind") -> tuple[Timeline, str, str]:
    timeline, oid = order()
    rid = ask(
        timeline,
        method="drop_off",
        reason=reason,
        parcel={"weight_kg": 3, "dimensions_cm": [30, 20, 10]},
    )
    timeline.send(f.return_approved(oid, rid, APPROVED))
    return timeline, oid, rid


def test_rule9_label_on_approval_valid_14_days() -> None:
    timeline, oid, rid = approved_drop_off()
    assert [job.request_id for job in timeline.label_jobs] == [rid]
    assert timeline.deadline("label_validity", rid).due_at == APPROVED + days(14)
    timeline.label(rid)
    label = timeline.one("return.label_generated")
    assert (label.carrier, label.payer, str(label.cost.amount), label.cost.currency) == (
        "Evri",
        "buyer",
        "4.49",
        "GBP",
    )
    assert label.valid_until == APPROVED + days(14)
    assert label.pdf_uri == f"file:///labels/{rid}.pdf"
    timeline.label(rid, pdf_uri="file:///other.pdf")
    assert len(timeline.of("return.label_generated")) == 1, "a second label is a no-op"
    timeline.send(f.label_email_requested(oid, rid, APPROVED + hours(1), email="a@b.example"))
    email = timeline.one("return.label_email_requested")
    assert (email.email, email.pdf_uri) == ("a@b.example", f"file:///labels/{rid}.pdf")


def test_rule9_label_expires_after_14_days() -> None:
    timeline, oid, rid = approved_drop_off()
    timeline.send(f.dropped_off(oid, rid, APPROVED + days(14)))
    assert timeline.one("return.closed").reason == "label_expired"
    assert timeline.codes() == ["request_not_open"]


def test_rule9_12_drop_off_scan_then_receipt_refund() -> None:
    timeline, oid, rid = approved_drop_off()
    scanned = APPROVED + days(14) - timedelta(seconds=1)
    timeline.send(f.dropped_off(oid, rid, scanned))
    assert timeline.deadline("label_validity", rid) is None
    assert timeline.deadline("receipt_confirm", rid).due_at == scanned + days(8)
    timeline.fire("receipt_confirm", rid)
    refund = timeline.one("refund.initiated")
    # Whole order (50.00) + shipping fee (4.99) - buyer-paid return shipping (4.49).
    assert (
        str(refund.amount),
        str(refund.breakdown.items),
        str(refund.breakdown.shipping_fee),
        str(refund.breakdown.return_shipping_deduction),
    ) == ("50.50", "50.00", "4.99", "4.49")
    assert timeline.events[-1].time == scanned + days(8)


def test_rule12_seller_receipt_refunds_at_once() -> None:
    timeline, oid, rid = approved_drop_off(reason="damaged")
    timeline.send(
        f.dropped_off(oid, rid, APPROVED + days(1)), f.return_received(oid, rid, APPROVED + days(3))
    )
    assert timeline.refunded() == ["54.99"], "seller's fault: nothing deducted"
    assert timeline.state.deadlines == {}
    timeline.send(f.return_received(oid, rid, APPROVED + days(4)))
    assert timeline.codes() == ["request_not_open"]


def test_rule10_self_arrange_tracking_within_5_days() -> None:
    timeline, oid = order()
    rid = ask(timeline, method="self_arrange")
    timeline.send(f.return_approved(oid, rid, APPROVED))
    assert timeline.label_jobs == []
    assert timeline.deadline("tracking", rid).due_at == APPROVED + days(5)
    timeline.send(f.tracking_submitted(oid, rid, APPROVED + days(5) - timedelta(seconds=1)))
    assert timeline.deadline("receipt_confirm", rid) is not None
    timeline.send(f.tracking_submitted(oid, rid, APPROVED + days(5)))
    assert timeline.codes() == ["already_shipped_back"]


def test_rule10_no_tracking_closes() -> None:
    timeline, oid = order()
    rid = ask(timeline, method="self_arrange")
    timeline.send(f.return_approved(oid, rid, APPROVED))
    timeline.fire("tracking", rid)
    closed = timeline.one("return.closed")
    assert (closed.reason, timeline.events[-1].time) == (
        "tracking_not_submitted",
        APPROVED + days(5),
    )


def test_wrong_method_and_no_label() -> None:
    timeline, oid = order()
    rid = ask(timeline, method="self_arrange")
    timeline.send(
        f.return_approved(oid, rid, APPROVED),
        f.dropped_off(oid, rid, APPROVED + hours(1)),
        f.label_email_requested(oid, rid, APPROVED + hours(1)),
    )
    assert timeline.codes() == ["wrong_method", "no_label"]


# --- rules 11 and 13: who pays the way back, how much comes back ----------------------------


@pytest.mark.parametrize("reason", list(ReturnReason))
def test_rule11_payer_by_reason(reason: ReturnReason) -> None:
    timeline, _ = order()
    rid = ask(timeline, method="drop_off", reason=reason.value)
    assert timeline.state.returns[rid].payer == ("seller" if reason.seller_fault else "buyer")


@pytest.mark.parametrize(
    ("returns", "reason", "amounts"),
    [
        # one request for part of the order: no shipping fee, 2.99 label deducted
        ([[{"sku": "sku-a", "quantity": 1}]], "changed_mind", ["17.01"]),
        ([[{"sku": "sku-a", "quantity": 1}]], "damaged", ["20.00"]),
        # the rest later: now every item is refunded, so the fee comes back too
        (
            [[{"sku": "sku-a", "quantity": 1}], [{"sku": "sku-b", "quantity": 2}]],
            "damaged",
            ["20.00", "34.99"],
        ),
        ([None], "defective", ["54.99"]),
        ([None], "no_longer_needed", ["52.00"]),
    ],
)
def test_rule13_partial_and_whole_refunds(
    returns: list[list[dict[str, object]] | None], reason: str, amounts: list[str]
) -> None:
    timeline, oid = order()
    for items in returns:
        rid = ask(timeline, method="drop_off", reason=reason, items=items)
        timeline.send(
            f.return_approved(oid, rid, APPROVED), f.return_received(oid, rid, APPROVED + days(2))
        )
    assert timeline.refunded() == amounts
    assert timeline.state.refunded_total == sum(Decimal(a) for a in amounts)


def test_rule13_items_are_refunded_once() -> None:
    timeline, oid = order()
    rid = ask(
        timeline,
        kind="refund_only",
        reason="missing_items",
        items=[{"sku": "sku-b", "quantity": 1}],
    )
    timeline.send(f.return_approved(oid, rid, APPROVED))
    ask(
        timeline,
        kind="refund_only",
        reason="missing_items",
        items=[{"sku": "sku-b", "quantity": 2}],
    )
    ask(
        timeline,
        kind="refund_only",
        reason="missing_items",
        items=[{"sku": "sku-b", "quantity": 1}],
    )
    assert timeline.codes() == ["already_refunded"]
    assert timeline.refunded() == ["15.00"]


def test_rule12_refund_only_before_delivery_is_refunded_on_approval() -> None:
    msg = f.order_placed()
    oid = msg.order_id
    timeline = Timeline(oid)
    timeline.send(msg, f.paid(oid, T0), f.shipped(oid, T0 + hours(2)))
    rid = ask(timeline, at=T0 + days(1), kind="refund_only", reason="not_received")
    timeline.fire("return_response", rid)
    assert timeline.types()[-2:] == ["return.auto_approved", "refund.initiated"]
    assert timeline.refunded() == ["54.99"]


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10.005", "GBP", "10.01"),
        ("10.5", "JPY", "11"),
        ("1.0005", "KWD", "1.001"),
        ("3", "EUR", "3.00"),
    ],
)
def test_rounding_to_the_minor_unit(value: str, currency: str, expected: str) -> None:
    assert str(round_money(Decimal(value), currency)) == expected


def test_yen_order_refund_has_no_decimals() -> None:
    policy = build_policy()
    msg = f.order_placed(
        marketplace="JP", currency="JPY", shipping_fee="500", items=[f.item("sku-j", 3, "333.4")]
    )
    timeline = Timeline(msg.order_id, policy)
    timeline.send(msg, f.paid(msg.order_id, T0), f.cancel_requested(msg.order_id, T0))
    assert timeline.refunded() == ["1500"]
