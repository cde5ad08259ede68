"""The wire models against the contract, as tables: inbound messages and
outbound CloudEvents (docs/asyncapi.yaml) and the policy file (docs/rules.md).

Every inbound case starts from one of the valid bodies in `VALID` below, changes one
thing (`changed(body, path, value)`), and checks the verdict of the task that carries
that message type. A refusal must be a pydantic ValidationError whose `loc` points at
the field that was changed: the dead-letter queue shows that location to the producer.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal, NamedTuple, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas import inbound as ib
from schemas.events import (
    EVENT_DATA,
    EVENT_ID_NAMESPACE,
    Amount,
    CloudEvent,
    Data,
    build_event,
    event_body,
    event_id,
)
from schemas.inbound import TASK_MESSAGES, TYPES_BY_TASK, ReturnReason, parse_message
from schemas.policy import MarketplacePolicy, PolicyError, build_policy

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""The worker's clock in these tests; every valid body happened exactly then."""
PLUS_2 = timezone(timedelta(hours=2))

# ---------------------------------------------------------------------------------------
# The valid bodies: fields common to every message, then per type its model, the
# type-specific fields of the minimal form (required only) and what the full form adds
# (every optional field, nested ones included).
# ---------------------------------------------------------------------------------------

COMMON: dict[str, Any] = {
    "message_id": "m-1",
    "order_id": "o-1",
    "occurred_at": "2026-03-02T10:00:00Z",
}
LINE = {"sku": "sku-a", "quantity": 2, "unit_price": "12.50"}
FULL_LINE = {**LINE, "weight_kg": 1.5, "dimensions_cm": [30, 20, 10]}


class Spec(NamedTuple):
    model: type[BaseModel]
    minimal: dict[str, Any]
    full: dict[str, Any]


VALID: dict[str, Spec] = {
    # aftersales.order_event
    "order.placed": Spec(
        ib.OrderPlaced,
        {
            "marketplace": "UK",
            "seller_id": "s-1",
            "buyer_id": "b-1",
            "payment_method": "prepaid",
            "pricing": "regular",
            "currency": "GBP",
            "shipping_fee": "4.99",
            "items": [LINE],
        },
        {
            "pricing": "subsidized",
            "payment_due_at": "2026-03-03T12:00:00+02:00",
            "items": [FULL_LINE],
        },
    ),
    "order.paid": Spec(ib.OrderPaid, {}, {}),
    "order.ready_to_ship": Spec(ib.OrderReadyToShip, {}, {}),
    "order.shipped": Spec(ib.OrderShipped, {}, {"tracking_number": "TRK-1"}),
    "order.delivered": Spec(ib.OrderDelivered, {}, {}),
    # aftersales.buyer_action
    "buyer.cancel_requested": Spec(ib.CancelRequested, {"reason": "changed my mind"}, {}),
    "buyer.return_requested": Spec(
        ib.ReturnRequested,
        {"request_id": "r-1", "kind": "refund_only", "reason": "not_received"},
        {
            "kind": "return_and_refund",
            "reason": "damaged",
            "method": "drop_off",
            "items": [{"sku": "sku-a", "quantity": 1}],
            "parcel": {"weight_kg": "2.5", "dimensions_cm": [40, 30, 20]},
        },
    ),
    "buyer.return_tracking_submitted": Spec(
        ib.ReturnTrackingSubmitted,
        {"request_id": "r-1", "carrier": "Royal Mail", "tracking_number": "TRK-2"},
        {"postage": "3.20"},
    ),
    "buyer.label_email_requested": Spec(
        ib.LabelEmailRequested,
        {"request_id": "r-1", "email": "buyer@example.com"},
        {},
    ),
    "buyer.appeal_submitted": Spec(
        ib.AppealSubmitted,
        {"request_id": "r-1"},
        {"note": "it arrived broken"},
    ),
    # aftersales.seller_action
    "seller.cancel_accepted": Spec(ib.SellerCancelAccepted, {}, {}),
    "seller.cancel_rejected": Spec(ib.SellerCancelRejected, {"reason": "already packed"}, {}),
    "seller.order_cancelled": Spec(ib.SellerOrderCancelled, {"reason": "out of stock"}, {}),
    "seller.return_approved": Spec(ib.SellerReturnApproved, {"request_id": "r-1"}, {}),
    "seller.return_rejected": Spec(
        ib.SellerReturnRejected,
        {"request_id": "r-1", "reason": "item was used"},
        {},
    ),
    "seller.return_received": Spec(ib.SellerReturnReceived, {"request_id": "r-1"}, {}),
    # 1.2
    "seller.replacement_shipped": Spec(
        ib.ReplacementShipped,
        {"request_id": "r-1", "tracking_number": "RS-1"},
        {"carrier": "DHL"},
    ),
    "seller.offer_made": Spec(
        ib.OfferMade,
        {"request_id": "r-1", "offer": "reshipment"},
        {"offer": "partial_refund", "amount": "5.00"},
    ),
    "buyer.offer_accepted": Spec(ib.OfferAccepted, {"request_id": "r-1"}, {}),
    "buyer.offer_declined": Spec(ib.OfferDeclined, {"request_id": "r-1"}, {}),
    # aftersales.carrier_event
    "carrier.return_dropped_off": Spec(
        ib.ReturnDroppedOff,
        {"request_id": "r-1", "tracking_number": "EVRI-1"},
        {},
    ),
    # aftersales.platform_action
    "platform.arbitration_decided": Spec(
        ib.ArbitrationDecided,
        {"request_id": "r-1", "outcome": "refund"},
        {},
    ),
    "platform.order_cancelled": Spec(
        ib.PlatformOrderCancelled,
        {"reason": "fraud suspected"},
        {},
    ),
}

CONTRACT_TASKS: dict[str, set[str]] = {
    "aftersales.order_event": {
        "order.placed",
        "order.paid",
        "order.ready_to_ship",
        "order.shipped",
        "order.delivered",
    },
    "aftersales.buyer_action": {
        "buyer.cancel_requested",
        "buyer.return_requested",
        "buyer.return_tracking_submitted",
        "buyer.label_email_requested",
        "buyer.appeal_submitted",
        "buyer.offer_accepted",
        "buyer.offer_declined",
    },
    "aftersales.seller_action": {
        "seller.cancel_accepted",
        "seller.cancel_rejected",
        "seller.order_cancelled",
        "seller.return_approved",
        "seller.return_rejected",
        "seller.return_received",
        "seller.replacement_shipped",
        "seller.offer_made",
    },
    "aftersales.carrier_event": {"carrier.return_dropped_off"},
    "aftersales.platform_action": {"platform.arbitration_decided", "platform.order_cancelled"},
}
"""The table of tasks and their message types, transcribed (docs/asyncapi.yaml)."""

TASK_OF = {type_: task for task, types in TYPES_BY_TASK.items() for type_ in types}
TYPES = list(VALID)
ID_FIELDS = ("message_id", "order_id", "seller_id", "buyer_id", "request_id", "tracking_number")
"""Fields the contract makes opaque ids of 1-128 characters."""

DROP = object()
"""A `changed()` value meaning: remove the field."""


def valid_body(type_: str, form: Literal["minimal", "full"] = "minimal") -> dict[str, Any]:
    spec = VALID[type_]
    fields = spec.minimal if form == "minimal" else {**spec.minimal, **spec.full}
    return copy.deepcopy({"type": type_, **COMMON, **fields})


def changed(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of `body` with the field at `path` set to `value` (or removed: DROP)."""
    body = copy.deepcopy(body)
    *parents, last = path
    target: Any = body
    for key in parents:
        target = target[key]
    if value is DROP:
        del target[last]
    else:
        target[last] = value
    return body


def accepted(type_: str, body: dict[str, Any]) -> Any:
    return parse_message(TASK_OF[type_], body, now=NOW)


def refusal(task: str, body: Any, now: datetime | None = NOW) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        parse_message(task, body, now=now)
    return caught.value.errors()


def assert_refused_at(type_: str, body: dict[str, Any], path: tuple[str | int, ...]) -> None:
    """The message's task refuses `body` and names `path` (below the type tag) in `loc`."""
    locs = [error["loc"] for error in refusal(TASK_OF[type_], body)]
    assert locs == [(type_, *path)]


def label(value: Any) -> str:
    if value is DROP:
        return "missing"
    if isinstance(value, str) and len(value) > 24:
        return f"{len(value)}-chars"
    return json.dumps(value, ensure_ascii=False)


def case(type_: str, path: tuple[str | int, ...], value: Any, form: str = "full") -> Any:
    dotted = ".".join(str(part) for part in path)
    return pytest.param(type_, form, path, value, id=f"{type_}:{dotted}={label(value)}")


# ---------------------------------------------------------------------------------------
# The tables themselves follow the contract
# ---------------------------------------------------------------------------------------


def test_tasks_and_types_are_the_contracts() -> None:
    assert {task: set(types) for task, types in TYPES_BY_TASK.items()} == CONTRACT_TASKS
    assert set(TASK_MESSAGES) == set(CONTRACT_TASKS)
    assert set(VALID) == set(TASK_OF) and len(VALID) == 23


@pytest.mark.parametrize("type_", TYPES)
def test_minimal_form_has_exactly_the_required_fields_and_full_form_all(type_: str) -> None:
    fields = VALID[type_].model.model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    assert set(valid_body(type_, "minimal")) == required
    assert set(valid_body(type_, "full")) == set(fields)


# ---------------------------------------------------------------------------------------
# Valid forms are accepted by their task
# ---------------------------------------------------------------------------------------


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        return [
            leaf
            for name in type(value).model_fields
            for leaf in _leaves(getattr(value, name), f"{path}.{name}")
        ]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}.{i}")]
    return [(path, value)]


@pytest.mark.parametrize("form", ["minimal", "full"])
@pytest.mark.parametrize("type_", TYPES)
def test_valid_form_is_accepted_as_its_model(type_: str, form: Literal["minimal", "full"]) -> None:
    # Given a valid body / When its task parses it
    msg = accepted(type_, valid_body(type_, form))
    # Then it is the type's model, with aware UTC timestamps and no floats anywhere
    assert type(msg) is VALID[type_].model
    assert (msg.type, msg.message_id, msg.order_id) == (type_, "m-1", "o-1")
    leaves = _leaves(msg)
    for path, value in leaves:
        assert not isinstance(value, float), path
        if isinstance(value, datetime):
            assert value.tzinfo is UTC, path
    if form == "full":
        assert [path for path, value in leaves if value is None] == []


def test_money_and_measures_are_decimals() -> None:
    msg = accepted("order.placed", valid_body("order.placed", "full"))
    line = msg.items[0]
    assert (msg.shipping_fee, line.unit_price) == (Decimal("4.99"), Decimal("12.50"))
    assert type(msg.shipping_fee) is type(line.unit_price) is Decimal
    assert line.weight_kg == Decimal("1.5") and line.dimensions_cm == [30, 20, 10]
    parcel = accepted("buyer.return_requested", valid_body("buyer.return_requested", "full")).parcel
    assert parcel.weight_kg == Decimal("2.5")


@pytest.mark.parametrize(
    "text", ["0", "0.10", "12.5", "1500", "999999999999999.999999"], ids=lambda t: t
)
def test_money_string_is_kept_exactly(text: str) -> None:
    body = changed(valid_body("order.placed"), ("shipping_fee",), text)
    assert str(accepted("order.placed", body).shipping_fee) == text


@pytest.mark.parametrize("type_", TYPES)
def test_offset_is_normalised_to_utc(type_: str) -> None:
    body = changed(valid_body(type_), ("occurred_at",), "2026-03-02T12:00:00+02:00")
    occurred_at = accepted(type_, body).occurred_at
    assert occurred_at == NOW and occurred_at.tzinfo is UTC


def test_payment_due_at_is_normalised_to_utc() -> None:
    msg = accepted("order.placed", valid_body("order.placed", "full"))  # +02:00 in the body
    assert msg.payment_due_at == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert msg.payment_due_at.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T05:00:00-05:00",
        "2026-03-02t10:00:00z",
        "2026-03-02 10:00:00Z",
        "2026-03-02T10:00:00.000Z",
        "2026-03-02T10:00:00+00:00",
    ],
    ids=lambda t: t,
)
def test_rfc3339_spellings_are_accepted(text: str) -> None:
    assert (
        accepted(
            "order.paid", changed(valid_body("order.paid"), ("occurred_at",), text)
        ).occurred_at
        == NOW
    )


# Fields whose values are an enumeration in the contract: (type, field) -> values.
ENUMS: dict[tuple[str, str], set[str]] = {
    ("order.placed", "payment_method"): {"prepaid", "cod"},
    ("order.placed", "pricing"): {"regular", "subsidized"},
    ("buyer.return_requested", "kind"): {
        "refund_only",
        "return_and_refund",
        "reshipment",
        "exchange",
    },
    ("seller.offer_made", "offer"): {"partial_refund", "reshipment", "exchange"},
    ("buyer.return_requested", "method"): {"drop_off", "self_arrange"},
    ("buyer.return_requested", "reason"): {
        "damaged",
        "defective",
        "wrong_item",
        "missing_items",
        "not_as_described",
        "not_received",
        "changed_mind",
        "no_longer_needed",
        "ordered_by_mistake",
    },
    ("platform.arbitration_decided", "outcome"): {"refund", "reject"},
}


@pytest.mark.parametrize(
    ("type_", "name", "value"),
    [
        pytest.param(t, n, v, id=f"{t}:{n}={v}")
        for (t, n), values in ENUMS.items()
        for v in sorted(values)
    ],
)
def test_every_contract_enum_value_is_accepted(type_: str, name: str, value: str) -> None:
    body = changed(valid_body(type_, "full"), (name,), value)
    if name == "kind" and value in ("refund_only", "reshipment"):  # they forbid a method
        body = changed(body, ("method",), DROP)
    if name == "offer" and value != "partial_refund":  # only a partial refund has an amount
        body = changed(body, ("amount",), DROP)
    assert getattr(accepted(type_, body), name) == value


@pytest.mark.parametrize(("type_", "name"), list(ENUMS), ids=lambda x: x)
def test_enum_fields_allow_nothing_beyond_the_contract(type_: str, name: str) -> None:
    def values(annotation: Any) -> set[str]:  # Literal[...], Literal[...] | None, an enum
        if annotation is ReturnReason:
            return {reason.value for reason in ReturnReason}
        return {
            v
            for arg in get_args(annotation)
            for v in (values(arg) if get_args(arg) else {arg})
            if isinstance(v, str)
        }

    assert values(VALID[type_].model.model_fields[name].annotation) == ENUMS[type_, name]


@pytest.mark.parametrize("name", ID_FIELDS)
def test_ids_of_128_characters_are_accepted(name: str) -> None:
    type_ = next(t for t in TYPES if name in valid_body(t, "full"))
    body = changed(valid_body(type_, "full"), (name,), "x" * 128)
    assert getattr(accepted(type_, body), name) == "x" * 128


# ---------------------------------------------------------------------------------------
# Invalid forms are refused, naming the field
# ---------------------------------------------------------------------------------------


def _wrong_json_type(value: Any) -> Any:
    return "oops" if isinstance(value, list | dict) else 42


def _every_type_cases() -> list[Any]:
    """For each of the 18 types: each required field missing, each field of the full
    form with the wrong JSON type, empty and 129-char ids, an unknown extra field, and an
    event time without offset."""
    cases = []
    for type_ in TYPES:
        for name in valid_body(type_, "minimal"):
            if name != "type":  # the tag has its own tests below
                cases.append(case(type_, (name,), DROP, form="minimal"))
        for name, value in valid_body(type_, "full").items():
            if name != "type":
                cases.append(case(type_, (name,), _wrong_json_type(value)))
        for name in ID_FIELDS:
            if name in valid_body(type_, "full"):
                cases += [case(type_, (name,), ""), case(type_, (name,), "x" * 129)]
        cases.append(case(type_, ("surprise",), "unexpected"))
        cases.append(case(type_, ("occurred_at",), NO_OFFSET))
    return cases


BAD_MONEY = [
    12.5,
    12,
    True,
    "12,50",
    "1e3",
    "NaN",
    "Infinity",
    "",
    " 12.50",
    "12.50\n",
    "+12.50",
    ".50",
    "£12.50",
    "12.1234567",
    "-1.00",
    "\uff11\uff12.\uff15\uff10",
]  # the last is "12.50" in full-width digits
NO_OFFSET = "2026-03-02T10:00:00"
BAD_TIMESTAMPS = [
    NO_OFFSET,
    "2026-03-02",
    "2026-03-02T10:00Z",
    "2026-03-02T10:00:00+0200",
    "02/03/2026 10:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-03-02T25:00:00Z",
    "2026-03-02T10:00:00Z\n",
    "",
    1772445600,
]
BAD_QUANTITIES = [0, -1, "2", 2.5, True, None]
BAD_ENUM_VALUES = {
    "payment_method": ["card", "PREPAID", ""],
    "pricing": ["discounted"],
    "kind": ["replacement", "EXCHANGE"],
    "offer": ["refund", "full_refund"],
    "method": ["courier", "DROP_OFF"],
    "reason": ["other", "Damaged"],
    "outcome": ["partial", "REFUND"],
}

FIELD_CASES = [
    # money: a decimal string, never a JSON number, never negative
    *[
        case("order.placed", path, value)
        for path in (("shipping_fee",), ("items", 0, "unit_price"))
        for value in BAD_MONEY
    ],
    # timestamps: RFC 3339 with offset
    *[case("order.paid", ("occurred_at",), value) for value in BAD_TIMESTAMPS[1:]],
    *[case("order.placed", ("payment_due_at",), value) for value in BAD_TIMESTAMPS],
    # enumerations of the contract
    *[case(t, (name,), value) for t, name in ENUMS for value in BAD_ENUM_VALUES[name]],
    # order lines and return selections
    *[
        case(t, ("items", 0, "quantity"), q)
        for t in ("order.placed", "buyer.return_requested")
        for q in BAD_QUANTITIES
    ],
    *[
        case(t, ("items",), items)
        for t, line in (
            ("order.placed", LINE),
            ("buyer.return_requested", {"sku": "sku-a", "quantity": 1}),
        )
        for items in ([], [line, {**line, "quantity": 3}])
    ],
    case("order.placed", ("items", 0, "sku"), ""),
    case("buyer.return_requested", ("items", 0, "sku"), "x" * 129),
    case("order.placed", ("items", 0, "colour"), "red"),
    case("buyer.return_requested", ("parcel", "colour"), "red"),
    # weights and dimensions, on order lines and parcels
    *[
        case(t, (*where, "dimensions_cm"), dims)
        for t, where in (("order.placed", ("items", 0)), ("buyer.return_requested", ("parcel",)))
        for dims in ([30, 20], [30, 20, 10, 5], [], "30x20x10")
    ],
    *[
        case(t, (*where, "dimensions_cm", 1), measure)
        for t, where in (("order.placed", ("items", 0)), ("buyer.return_requested", ("parcel",)))
        for measure in (0, -5, "0", "wide", float("nan"))
    ],
    *[
        case(t, (*where, "weight_kg"), weight)
        for t, where in (("order.placed", ("items", 0)), ("buyer.return_requested", ("parcel",)))
        for weight in (0, -1, "-1", "heavy", "1e3", True, float("inf"))
    ],
    case("buyer.return_requested", ("parcel", "weight_kg"), DROP),
    case("buyer.return_requested", ("parcel", "dimensions_cm"), DROP),
    # currency: an ISO 4217 code
    *[case("order.placed", ("currency",), c) for c in ("usd", "US", "GBPX", "", "G8P")],
    # the label e-mail must at least be an address
    *[
        case("buyer.label_email_requested", ("email",), e)
        for e in ("buyer.example.com", "buyer@", "@example.com", "a@b@c", "bu yer@x.com", "")
    ],
    # seller refusals and cancellations must give a reason
    *[
        case(t, ("reason",), reason)
        for t in (
            "seller.cancel_rejected",
            "seller.return_rejected",
            "seller.order_cancelled",
            "platform.order_cancelled",
        )
        for reason in ("", " ", "\t\n ")
    ],
    # postage is money: a decimal string, not a number, not negative
    *[
        case("buyer.return_tracking_submitted", ("postage",), p)
        for p in (3.2, "3,20", "-1.00", "1e3", "")
    ],
]


@pytest.mark.parametrize(("type_", "form", "path", "value"), _every_type_cases() + FIELD_CASES)
def test_invalid_field_is_refused_naming_it(
    type_: str, form: Literal["minimal", "full"], path: tuple[str | int, ...], value: Any
) -> None:
    # Given a valid body with one field broken
    body = changed(valid_body(type_, form), path, value)
    # When its task parses it / Then the error's loc is that field
    assert_refused_at(type_, body, path)


# Rules across two fields are checked on the whole message: the error's loc is the
# message type and its text names the field the producer must fix.
CROSS_FIELD_CASES = [
    pytest.param(
        "order.placed",
        {"pricing": "subsidized"},
        "payment_due_at",
        id="order.placed:subsidized-without-payment_due_at",
    ),
    pytest.param(
        "order.placed",
        {"pricing": "subsidized", "payment_due_at": None},
        "payment_due_at",
        id="order.placed:subsidized-with-null-payment_due_at",
    ),
    pytest.param(
        "order.placed",
        {"payment_due_at": "2026-03-02T09:59:59Z"},
        "payment_due_at",
        id="order.placed:payment_due_at-before-occurred_at",
    ),
    pytest.param(
        "buyer.return_requested",
        {"kind": "return_and_refund"},
        "method",
        id="buyer.return_requested:return_and_refund-without-method",
    ),
    pytest.param(
        "buyer.return_requested",
        {"kind": "return_and_refund", "method": None},
        "method",
        id="buyer.return_requested:return_and_refund-with-null-method",
    ),
    pytest.param(
        "buyer.return_requested",
        {"method": "drop_off"},
        "method",
        id="buyer.return_requested:refund_only-with-method",
    ),
]


@pytest.mark.parametrize(("type_", "changes", "field"), CROSS_FIELD_CASES)
def test_cross_field_rule_is_refused_naming_the_field(
    type_: str, changes: dict[str, Any], field: str
) -> None:
    body = {**valid_body(type_, "minimal"), **changes}
    errors = refusal(TASK_OF[type_], body)
    assert [error["loc"] for error in errors] == [(type_,)]
    assert field in errors[0]["msg"]


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize(
    ("ahead", "ok"),
    [
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, seconds=1), False),
        (timedelta(minutes=6), False),
        (timedelta(days=-400), True),
    ],
    ids=["5m00s-ahead-ok", "5m01s-ahead-refused", "6m-ahead-refused", "past-ok"],
)
def test_event_time_may_be_at_most_5_minutes_ahead(type_: str, ahead: timedelta, ok: bool) -> None:
    # Given an event time `ahead` of the worker's clock, written with a +02:00 offset
    at = (NOW + ahead).astimezone(PLUS_2)
    body = changed(valid_body(type_), ("occurred_at",), at.isoformat())
    # When / Then
    if ok:
        assert accepted(type_, body).occurred_at == NOW + ahead
    else:
        assert_refused_at(type_, body, ("occurred_at",))


def test_future_check_needs_the_clock() -> None:
    body = changed(valid_body("order.paid"), ("occurred_at",), "2099-01-01T00:00:00Z")
    assert parse_message("aftersales.order_event", body).occurred_at.year == 2099


@pytest.mark.parametrize(
    ("type_", "task"),
    [
        pytest.param(t, task, id=f"{t}->{task}")
        for t in TYPES
        for task in TASK_MESSAGES
        if task != TASK_OF[t]
    ],
)
def test_type_sent_to_the_wrong_task_is_refused(type_: str, task: str) -> None:
    # Given a valid message of another task / When this task parses it
    errors = refusal(task, valid_body(type_, "full"))
    # Then the `type` tag is what is refused
    assert [(e["type"], e["ctx"]["discriminator"], e["ctx"]["tag"]) for e in errors] == [
        ("union_tag_invalid", "'type'", type_)
    ]


@pytest.mark.parametrize("task", list(TASK_MESSAGES))
@pytest.mark.parametrize(
    ("type_value", "error_type"),
    [
        ("order.refunded", "union_tag_invalid"),
        ("ORDER.PAID", "union_tag_invalid"),
        ("", "union_tag_invalid"),
        (DROP, "union_tag_not_found"),
        (7, "union_tag_invalid"),
    ],
    ids=["unknown", "wrong-case", "empty", "missing", "number"],
)
def test_unknown_or_missing_type_is_refused(task: str, type_value: Any, error_type: str) -> None:
    body = changed(valid_body(next(iter(TYPES_BY_TASK[task]))), ("type",), type_value)
    errors = refusal(task, body)
    assert [(e["type"], e["loc"]) for e in errors] == [(error_type, ())]
    assert errors[0]["ctx"]["discriminator"] == "'type'"


@pytest.mark.parametrize("task", list(TASK_MESSAGES))
@pytest.mark.parametrize(
    "body", [[], "order.paid", None, 1], ids=["array", "string", "null", "number"]
)
def test_body_that_is_not_an_object_is_refused(task: str, body: Any) -> None:
    assert refusal(task, body)


# ---------------------------------------------------------------------------------------
# Outbound CloudEvents (docs/asyncapi.yaml)
# ---------------------------------------------------------------------------------------

LATER = "2026-03-04T12:00:00+02:00"  # timestamps in `data` are given with an offset...
LATER_Z = "2026-03-04T10:00:00Z"  # ...and published in UTC with a Z

# A valid `data` for every event type, with the fields listed in the contract.
EVENTS: dict[str, dict[str, Any]] = {
    "order.cancelled": {
        "by": "buyer",
        "reason": "changed my mind",
        "seller_fault": False,
        "refund": {"amount": "54.99", "currency": "GBP"},
        "stop_shipment": {"tracking_number": "TRK-1"},
    },
    "cancellation.requested": {"respond_by": LATER},
    "cancellation.accepted": {"by": "seller"},
    "cancellation.auto_accepted": {"deadline": LATER},
    "cancellation.rejected": {"by": "system", "reason": "order shipped"},
    "return.requested": {
        "request_id": "r-1",
        "kind": "return_and_refund",
        "method": "drop_off",
        "reason": "damaged",
        "respond_by": LATER,
    },
    "return.approved": {"request_id": "r-1", "by": "platform"},
    "return.auto_approved": {"request_id": "r-1", "deadline": LATER},
    "return.rejected": {
        "request_id": "r-1",
        "reason": "item was used",
        "can_resubmit": True,
        "can_appeal": True,
    },
    "return.label_generated": {
        "request_id": "r-1",
        "carrier": "Evri",
        "tracking_number": "H01ABC",
        "qr_content": "EVRI:H01ABC",
        "qr_png_uri": "file:///var/labels/r-1.png",
        "pdf_uri": "file:///var/labels/r-1.pdf",
        "cost": {"amount": "2.99", "currency": "GBP"},
        "payer": "buyer",
        "valid_until": LATER,
    },
    "return.label_email_requested": {
        "request_id": "r-1",
        "email": "buyer@example.com",
        "pdf_uri": "file:///var/labels/r-1.pdf",
    },
    "return.closed": {"request_id": "r-1", "reason": "label_expired"},
    "refund.initiated": {
        "request_id": "r-1",
        "amount": "52.00",
        "currency": "GBP",
        "breakdown": {
            "items": "54.99",
            "shipping_fee": "0.00",
            "return_shipping_deduction": "2.99",
            "return_shipping_refund": "0.00",
        },
    },
    "action.rejected": {
        "message_id": "m-1",
        "type": "buyer.return_requested",
        "code": "drop_off_ineligible",
        "detail": "parcel weighs 20 kg",
    },
    "replacement.shipped": {
        "request_id": "r-1",
        "kind": "reshipment",
        "carrier": "DHL",
        "tracking_number": "RS-1",
    },
    "offer.made": {
        "request_id": "r-1",
        "offer": "partial_refund",
        "amount": {"amount": "5.00", "currency": "GBP"},
        "respond_by": LATER,
    },
    "offer.declined": {"request_id": "r-1", "respond_by": LATER},
    "offer.lapsed": {"request_id": "r-1", "deadline": LATER, "respond_by": LATER},
}
EVENT_VARIANTS = [
    *[pytest.param(t, data, id=t) for t, data in EVENTS.items()],
    pytest.param(
        "order.cancelled",
        {**EVENTS["order.cancelled"], "refund": None},
        id="order.cancelled:unpaid",
    ),
    pytest.param(
        "refund.initiated",
        {**EVENTS["refund.initiated"], "request_id": None},
        id="refund.initiated:cancellation",
    ),
    pytest.param(
        "return.requested",
        {**EVENTS["return.requested"], "kind": "refund_only", "method": None},
        id="return.requested:refund_only",
    ),
]
MONEY_IN = {
    "order.cancelled": [("refund", "amount")],
    "return.label_generated": [("cost", "amount")],
    "offer.made": [("amount", "amount")],
    "refund.initiated": [
        ("amount",),
        ("breakdown", "items"),
        ("breakdown", "shipping_fee"),
        ("breakdown", "return_shipping_deduction"),
        ("breakdown", "return_shipping_refund"),
    ],
}
TIMES_IN = {
    "cancellation.requested": "respond_by",
    "cancellation.auto_accepted": "deadline",
    "return.requested": "respond_by",
    "return.auto_approved": "deadline",
    "return.label_generated": "valid_until",
    "offer.made": "respond_by",
    "offer.declined": "respond_by",
    "offer.lapsed": "deadline",
}


def _at(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def test_every_event_type_of_the_contract_has_a_sample() -> None:
    assert set(EVENT_DATA) == set(EVENTS) and len(EVENTS) == 18
    for type_, data in EVENTS.items():
        assert set(EVENT_DATA[type_].model_fields) == set(data), type_


@pytest.mark.parametrize(("type_", "sample"), EVENT_VARIANTS)
def test_event_round_trips_as_cloudevent_json(type_: str, sample: dict[str, Any]) -> None:
    # Given valid data, built into an event at 12:00+02:00
    data = EVENT_DATA[type_].model_validate(sample)
    event = build_event(type_, "o-1", NOW.astimezone(PLUS_2), data, cause="m-1")
    # When it goes through JSON and back
    wire = json.loads(json.dumps(event.model_dump(mode="json")))
    # Then the envelope is CloudEvents 1.0 as the contract describes
    assert {k: v for k, v in wire.items() if k != "data"} == {
        "specversion": "1.0",
        "id": event_id("m-1", type_),
        "source": "aftersales",
        "type": type_,
        "subject": "o-1",
        "time": "2026-03-02T10:00:00Z",
        "datacontenttype": "application/json",
    }
    assert CloudEvent.model_validate(wire) == event
    assert EVENT_DATA[type_].model_validate(wire["data"]) == data
    # and money travels as strings, timestamps in UTC with a Z
    for path in MONEY_IN.get(type_, []):
        if sample.get(path[0]) is not None:
            assert _at(wire["data"], path) == _at(sample, path)
    if type_ in TIMES_IN:
        assert wire["data"][TIMES_IN[type_]] == LATER_Z


@pytest.mark.parametrize("build", [build_event, event_body], ids=lambda f: f.__name__)
@pytest.mark.parametrize("type_", list(EVENTS))
def test_an_event_refuses_data_of_another_type(type_: str, build: Any) -> None:
    other = next(t for t in EVENTS if EVENT_DATA[t] is not EVENT_DATA[type_])
    data = EVENT_DATA[other].model_validate(EVENTS[other])
    with pytest.raises(TypeError, match=EVENT_DATA[type_].__name__):
        build(type_, "o-1", NOW, data, cause="m-1")


TRACES: list[dict[str, str] | None] = [
    None,
    {},
    {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "v=1," * 128},
]


@pytest.mark.parametrize("trace", TRACES, ids=["none", "empty", "parent", "parent+state"])
@pytest.mark.parametrize(("type_", "sample"), EVENT_VARIANTS)
def test_event_body_is_the_models_body(
    type_: str, sample: dict[str, Any], trace: dict[str, str] | None
) -> None:
    """The firing path's `event_body` makes the dict `build_event(...).body()` makes,
    key order included (what is published and kept is the same text)."""
    data = EVENT_DATA[type_].model_validate(sample)
    for time in (NOW, NOW.astimezone(PLUS_2), NOW + timedelta(microseconds=1)):
        body = event_body(type_, "o-ümlaut-1", time, data, "m-1", trace)
        model = build_event(type_, "o-ümlaut-1", time, data, "m-1", trace).body()
        assert body == model
        assert json.dumps(body) == json.dumps(model)


BAD_ENVELOPES: list[tuple[str, dict[str, Any]]] = [
    ("empty subject", {"subject": ""}),
    ("long subject", {"subject": "o" * 129}),
    ("control in subject", {"subject": "o-1\n"}),
    ("naive time", {"time": NOW.replace(tzinfo=None)}),
    ("time before 1970", {"time": datetime(1969, 12, 31, 23, 59, tzinfo=UTC)}),
    ("bad traceparent", {"trace": {"traceparent": "00-xyz"}}),
    (
        "traceparent and a newline",
        {"trace": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01\n"}},
    ),
    (
        "long tracestate",
        {
            "trace": {
                "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                "tracestate": "x" * 513,
            }
        },
    ),
]


@pytest.mark.parametrize(("what", "change"), BAD_ENVELOPES, ids=[w for w, _ in BAD_ENVELOPES])
def test_event_body_refuses_what_the_model_refuses(what: str, change: dict[str, Any]) -> None:
    data = EVENT_DATA["return.closed"].model_validate(EVENTS["return.closed"])
    args: dict[str, Any] = {"subject": "o-1", "time": NOW, "trace": None, **change}
    with pytest.raises(ValidationError):
        build_event("return.closed", args["subject"], args["time"], data, "m-1", args["trace"])
    with pytest.raises(ValueError):
        event_body("return.closed", args["subject"], args["time"], data, "m-1", args["trace"])


@pytest.mark.parametrize("amount", [12.5, "12,50", "-1.00", "NaN", ""], ids=label)
def test_event_money_is_a_non_negative_decimal_string(amount: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Amount.model_validate({"amount": amount, "currency": "GBP"})
    assert [e["loc"] for e in caught.value.errors()] == [("amount",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("specversion", "0.3"),
        ("source", "shop"),
        ("datacontenttype", "text/plain"),
        ("type", "order.refunded"),
        ("time", "2026-03-02T10:00:00"),
        ("subject", ""),
        ("surprise", 1),
    ],
    ids=lambda v: str(v),
)
def test_cloudevent_refuses_a_foreign_envelope(field: str, value: Any) -> None:
    wire = build_event(
        "return.closed",
        "o-1",
        NOW,
        EVENT_DATA["return.closed"].model_validate(EVENTS["return.closed"]),
        cause="m-1",
    ).model_dump(mode="json")
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate({**wire, field: value})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_event_id_is_deterministic_per_cause_and_type() -> None:
    first = event_id("m-1", "order.cancelled")
    assert event_id("m-1", "order.cancelled") == first  # a republished outcome: same id
    assert event_id("m-2", "order.cancelled") != first  # another cause
    assert event_id("m-1", "refund.initiated") != first  # another outcome of the same cause
    assert uuid.UUID(first).version == 5


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cause=st.text(st.characters(codec=None, exclude_categories=())),  # surrogates too
    event_type=st.sampled_from(list(EVENTS)),
)
def test_event_id_is_uuid5_of_cause_and_type(cause: str, event_type: str) -> None:
    """The id as `uuid.uuid5` writes it (every release's ids: a republished outcome keeps
    its id across an upgrade)."""
    try:
        expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause}|{event_type}"))
    except UnicodeEncodeError:  # a lone surrogate: refused the same way
        with pytest.raises(UnicodeEncodeError):
            event_id(cause, event_type)
        return
    assert event_id(cause, event_type) == expected


@pytest.mark.parametrize("cause", ["\ud800", "m-1\udfff", "\udc80\ud800x"])
def test_event_id_of_a_lone_surrogate_is_refused_as_uuid5_refuses_it(cause: str) -> None:
    with pytest.raises(UnicodeEncodeError):
        uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause}|order.cancelled")
    with pytest.raises(UnicodeEncodeError):
        event_id(cause, "order.cancelled")


def test_same_outcome_built_twice_keeps_its_id() -> None:
    data: Data = EVENT_DATA["return.closed"].model_validate(EVENTS["return.closed"])
    once = build_event("return.closed", "o-1", NOW, data, cause="r-1:deadline")
    again = build_event(
        "return.closed", "o-1", NOW + timedelta(minutes=3), data, cause="r-1:deadline"
    )
    assert once.id == again.id == event_id("r-1:deadline", "return.closed")


# ---------------------------------------------------------------------------------------
# The policy file (docs/rules.md)
# ---------------------------------------------------------------------------------------

H, D = timedelta(hours=1), timedelta(days=1)


def test_built_in_uk_section_is_the_contracts() -> None:
    uk = build_policy(None).for_marketplace("UK")
    assert (uk.timezone, uk.holidays) == ("Europe/London", "GB-ENG")
    assert tuple(
        str(w)
        for w in (
            uk.free_cancel_window,
            uk.cancel_response_window,
            uk.unpaid_cancel_after,
            uk.return_window,
            uk.return_response_window,
            uk.return_response_calendar,
            uk.resubmit_window,
            uk.self_arrange_tracking_window,
            uk.label_validity,
            uk.receipt_confirm_window,
        )
    ) == ("PT1H", "PT48H", "PT48H", "P30D", "PT48H", "business", "PT48H", "P5D", "P14D", "P8D")
    assert (uk.currency, uk.self_arrange_postage_cap) == ("GBP", Decimal("6.99"))
    drop = uk.drop_off
    assert (drop.carrier, drop.max_weight_kg, drop.max_perimeter_cm, drop.max_value) == (
        "Evri",
        15,
        245,
        Decimal("1500"),
    )
    assert [(r.up_to_kg, r.price) for r in drop.rates] == [
        (2, Decimal("2.99")),
        (5, Decimal("4.49")),
        (15, Decimal("6.99")),
    ]


def _assert_section_4_defaults(policy: MarketplacePolicy) -> None:
    assert (policy.timezone, policy.holidays) == ("UTC", None)
    assert tuple(
        str(w)
        for w in (
            policy.free_cancel_window,
            policy.cancel_response_window,
            policy.unpaid_cancel_after,
            policy.return_window,
            policy.return_response_window,
            policy.return_response_calendar,
            policy.resubmit_window,
            policy.self_arrange_tracking_window,
            policy.label_validity,
            policy.receipt_confirm_window,
        )
    ) == ("PT1H", "PT48H", "PT48H", "P14D", "PT48H", "calendar", "PT48H", "P5D", "P14D", "P8D")
    assert (policy.currency, policy.self_arrange_postage_cap) == (None, None)
    drop = policy.drop_off
    assert (drop.max_weight_kg, drop.max_perimeter_cm, drop.max_value, drop.rates) == (
        None,
        None,
        None,
        [],
    )


def test_other_marketplaces_get_section_4_defaults() -> None:
    policy = build_policy(None)
    assert set(policy.marketplaces) == {"UK"}
    _assert_section_4_defaults(policy.for_marketplace("US"))
    assert build_policy({}) == policy


def test_override_keeps_the_keys_it_does_not_name() -> None:
    # Given a file changing one window and one drop-off limit of the UK
    policy = build_policy(
        {"marketplaces": {"UK": {"return_window": "P45D", "drop_off": {"max_weight_kg": 20}}}}
    )
    # Then those change and everything else stays as built in
    uk, built_in = policy.for_marketplace("UK"), build_policy(None).for_marketplace("UK")
    assert (str(uk.return_window), uk.drop_off.max_weight_kg) == ("P45D", 20)
    assert (
        uk.model_copy(
            update={"return_window": built_in.return_window, "drop_off": built_in.drop_off}
        )
        == built_in
    )
    assert uk.drop_off.model_copy(update={"max_weight_kg": 15}) == built_in.drop_off


def test_new_marketplace_starts_from_the_defaults() -> None:
    policy = build_policy({"marketplaces": {"DE": {"timezone": "Europe/Berlin", "holidays": "DE"}}})
    de = policy.for_marketplace("DE")
    _assert_section_4_defaults(de.model_copy(update={"timezone": "UTC", "holidays": None}))
    assert (de.timezone, de.holidays) == ("Europe/Berlin", "DE")
    assert policy.for_marketplace("UK") == build_policy(None).for_marketplace("UK")


@pytest.mark.parametrize(
    ("text", "expected", "written"),
    [
        ("PT1H", 1 * H, "PT1H"),
        ("PT90M", 1.5 * H, "PT1H30M"),
        ("PT30S", timedelta(seconds=30), "PT30S"),
        ("P14D", 14 * D, "P14D"),
        ("P2W", 14 * D, "P14D"),
        ("P1DT12H", 36 * H, "P1DT12H"),
        ("P1W2DT3H4M5S", timedelta(9, 3 * 3600 + 245), "P9DT3H4M5S"),
        ("PT720H", 30 * D, "PT720H"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_iso_durations_of_fixed_length_are_accepted(
    text: str, expected: timedelta, written: str
) -> None:
    policy = build_policy({"marketplaces": {"UK": {"label_validity": text}}})
    window = policy.for_marketplace("UK").label_validity
    assert (window.nominal, str(window)) == (expected, written), "days stay days, hours hours"


def _in_uk(**section: Any) -> dict[str, Any]:
    return {"marketplaces": {"UK": section}}


BAD_POLICIES = [
    # unknown keys, wherever they are
    ("typo-in-marketplace", _in_uk(retrun_window="P30D"), "marketplaces.UK.retrun_window"),
    (
        "typo-in-drop_off",
        _in_uk(drop_off={"max_wieght_kg": 10}),
        "marketplaces.UK.drop_off.max_wieght_kg",
    ),
    (
        "typo-in-rate",
        _in_uk(drop_off={"rates": [{"up_to_kg": 2, "cost": "1"}]}),
        "marketplaces.UK.drop_off.rates.0.cost",
    ),
    (
        "typo-in-new-marketplace",
        {"marketplaces": {"DE": {"timezon": "Europe/Berlin"}}},
        "marketplaces.DE.timezon",
    ),
    ("unknown-top-level", {"marketplace": {"UK": {}}}, "top-level key(s) marketplace;"),
    # durations
    *[
        (f"duration-{text or 'empty'}", _in_uk(return_window=text), "marketplaces.UK.return_window")
        for text in (
            "P1M",
            "P1Y",
            "PT0S",
            "P0D",
            "48h",
            "PT48",
            "P",
            "PT",
            "",
            "-PT1H",
            "PT48H\n",
            48,
        )
    ],
    (
        "duration-in-seller",
        _in_uk(sellers={"s-1": {"cancel_response_window": "P1M"}}),
        "marketplaces.UK.sellers.s-1.cancel_response_window",
    ),
    # other values
    (
        "calendar",
        _in_uk(return_response_calendar="weekdays"),
        "marketplaces.UK.return_response_calendar",
    ),
    (
        "rates-descending",
        _in_uk(
            drop_off={"rates": [{"up_to_kg": 5, "price": "4.49"}, {"up_to_kg": 2, "price": "2.99"}]}
        ),
        "marketplaces.UK.drop_off.rates",
    ),
    (
        "rates-repeated",
        _in_uk(
            drop_off={"rates": [{"up_to_kg": 2, "price": "2.99"}, {"up_to_kg": 2, "price": "4.49"}]}
        ),
        "marketplaces.UK.drop_off.rates",
    ),
    (
        "rate-price-float",
        _in_uk(drop_off={"rates": [{"up_to_kg": 2, "price": 2.99}]}),
        "marketplaces.UK.drop_off.rates.0.price",
    ),
    (
        "max-weight-zero",
        _in_uk(drop_off={"max_weight_kg": 0}),
        "marketplaces.UK.drop_off.max_weight_kg",
    ),
    (
        "max-value-negative",
        _in_uk(drop_off={"max_value": "-1"}),
        "marketplaces.UK.drop_off.max_value",
    ),
    *[
        (f"timezone-{tz or 'empty'}", _in_uk(timezone=tz), "marketplaces.UK.timezone")
        for tz in ("Europe/Londn", "Mars/Olympus_Mons", "")
    ],
    *[
        (f"holidays-{code}", _in_uk(holidays=code), "marketplaces.UK.holidays")
        for code in ("XX", "GB-XXX", "gb-eng")
    ],
    ("section-not-a-table", {"marketplaces": {"UK": "Europe/London"}}, "marketplaces.UK"),
    ("marketplaces-not-a-table", {"marketplaces": ["UK"]}, "marketplaces"),
]


@pytest.mark.parametrize(
    ("document", "key"), [pytest.param(doc, key, id=name) for name, doc, key in BAD_POLICIES]
)
def test_bad_policy_is_refused_naming_the_key(document: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyError) as caught:
        build_policy(document)
    assert key in str(caught.value), str(caught.value)
