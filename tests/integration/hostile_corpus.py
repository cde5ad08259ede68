"""The hand-made hostile corpus and the hypothesis-generated payloads of test_hostile.py.

Every case is raw bytes plus properties, as a producer in any language could publish
them. `expect` is what the worker must do with it: ("dead", reason), ("rejected", code),
"applied", or None (generated cases: anything, as long as it is accounted for).
"""

from __future__ import annotations

import json
import pickle
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.messages import (
    BUYER_ACTION,
    CARRIER_EVENT,
    ORDER_EVENT,
    PLATFORM_ACTION,
    SELLER_ACTION,
    ago,
    message,
    new_id,
    placed,
    ts,
)
from tests.support.wire import protocol2_body, task_headers

TASKS = (ORDER_EVENT, BUYER_ACTION, SELLER_ACTION, CARRIER_EVENT, PLATFORM_ACTION)
EMBED = {"callbacks": None, "errbacks": None, "chain": None}
# The worker's default limit (AFTERSALES_MAX_MESSAGE_BYTES), spelled out: the test
# checks the documented default, not the module.
MAX_BYTES = 256 * 1024


@dataclass
class Case:
    name: str
    body: bytes
    expect: Any
    headers: dict[str, Any] | None = field(default_factory=lambda: task_headers(BUYER_ACTION))
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    queue: str = "aftersales.inbound"


def _task(task_name: str, msg: Any, **headers: Any) -> dict[str, Any]:
    return {"body": protocol2_body(msg), "headers": {**task_headers(task_name), **headers}}


def _nest(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _cancel(order: str | None = None, **fields: Any) -> dict[str, Any]:
    msg = message("buyer.cancel_requested", order or new_id("o"), ago(minutes=1), reason="x")
    msg.update(fields)
    return msg


def _case(name: str, expect: Any, task_name: str, msg: Any, **headers: Any) -> Case:
    built = _task(task_name, msg, **headers)
    return Case(name, built["body"], expect, built["headers"])


def hand_made(victim: str, victim_paid_id: str) -> list[Case]:
    """About 70 cases; those naming `victim` (a placed, paid, ready-to-ship order) must
    all be refused without changing its state."""
    dead = lambda reason: ("dead", reason)  # noqa: E731
    invalid = dead("invalid_message")
    v = lambda **fields: _cancel(victim, **fields)  # noqa: E731
    seller_cancel = message("seller.order_cancelled", victim, ago(minutes=1), reason="late")
    cases = [
        # --- bodies that are not a task body ----------------------------------------------
        Case("empty", b"", dead("undecodable")),
        Case("whitespace", b"  \n ", dead("undecodable")),
        Case("truncated-json", b'[[{"message_id": ', dead("undecodable")),
        Case("json-object", b'{"args": [], "kwargs": {}}', dead("invalid_task_message")),
        Case("ints", b"[1, 2, 3]", dead("invalid_task_message")),
        Case("two-items", b"[[], {}]", dead("invalid_task_message")),
        Case("null", b"null", dead("invalid_task_message")),
        Case("string", b'"hello"', dead("invalid_task_message")),
        Case("kwargs-list", b"[[], [], {}]", dead("invalid_task_message")),
        Case("nan", b"[[NaN], {}, {}]", None),
        Case("random-binary", bytes(range(256)) * 4, dead("undecodable")),
        Case("utf16-bom", "[[{}], {}, {}]".encode("utf-16"), dead("undecodable")),
        Case(
            "callbacks",
            json.dumps(
                [[v()], {}, {"callbacks": [{"task": "aftersales.deadline", "args": [victim, "x"]}]}]
            ).encode(),
            dead("invalid_task_message"),
        ),
        Case(
            "chain",
            json.dumps([[v()], {}, {"chain": [{"task": "aftersales.tick"}]}]).encode(),
            dead("invalid_task_message"),
        ),
        Case(
            "control-empty",
            b"",
            dead("undecodable"),
            task_headers("aftersales.tick"),
            queue="aftersales.control",
        ),
        Case(
            "control-ints",
            b"[1, 2, 3]",
            dead("invalid_task_message"),
            task_headers("aftersales.tick"),
            queue="aftersales.control",
        ),
        Case(
            "deadlines-object",
            b'{"order_id": 1}',
            dead("invalid_task_message"),
            task_headers("aftersales.deadline"),
            queue="aftersales.deadlines",
        ),
        Case(
            "deadlines-deep",
            protocol2_body(_nest(100)),
            dead("too_deep"),
            task_headers("aftersales.deadline"),
            queue="aftersales.deadlines",
        ),
        # --- size and nesting -------------------------------------------------------------
        Case(
            "too-large-string", protocol2_body(v(reason="x" * (MAX_BYTES + 1))), dead("too_large")
        ),
        Case("too-large-array", protocol2_body(v(extra=list(range(60_000)))), dead("too_large")),
        Case("deep-900", protocol2_body(v(reason=_nest(900))), dead("too_deep")),
        Case("deep-100000", b"[" * 100_000 + b"]" * 100_000, None),
        Case(
            "deep-objects",
            protocol2_body(v(reason=json.loads('{"a":' * 40 + "1" + "}" * 40))),
            dead("too_deep"),
        ),
        Case("wide-array", protocol2_body(v(reason=list(range(20_000)))), invalid),
        Case("long-reason", protocol2_body(v(reason="r" * 200_000)), invalid),
        Case(
            "many-items",
            protocol2_body(
                placed(
                    victim,
                    ago(hours=3),
                    items=[
                        {
                            "sku": f"S{i}",
                            "quantity": 1,
                            "unit_price": "1.00",
                            "weight_kg": 0.1,
                            "dimensions_cm": [1, 1, 1],
                        }
                        for i in range(600)
                    ],
                )
            ),
            invalid,
        ),
        # --- content types and encodings ---------------------------------------------------
        Case(
            "pickle",
            pickle.dumps(((v(),), {}, {})),
            dead("content_not_allowed"),
            content_type="application/x-python-serialize",
            content_encoding="binary",
        ),
        Case(
            "yaml",
            b"- - {message_id: m}\n- {}\n- {}\n",
            dead("content_not_allowed"),
            content_type="application/x-yaml",
        ),
        Case(
            "msgpack",
            b"\x93\x91\x81\xa1a\x01\x80\x80",
            dead("content_not_allowed"),
            content_type="application/x-msgpack",
            content_encoding="binary",
        ),
        Case(
            "text-plain",
            protocol2_body(v()),
            dead("content_not_allowed"),
            content_type="text/plain",
        ),
        Case(
            "json-charset",
            protocol2_body(v()),
            dead("content_not_allowed"),
            content_type="application/json; charset=utf-8",
        ),
        Case(
            "zlib-codec",
            protocol2_body(v()),
            dead("content_not_allowed"),
            content_encoding="zlib_codec",
        ),
        Case(
            "latin-1", protocol2_body(v()), dead("content_not_allowed"), content_encoding="latin-1"
        ),
        # --- headers -----------------------------------------------------------------------
        Case("no-headers", protocol2_body(v()), dead("not_a_task"), headers=None),
        Case(
            "protocol-1",
            json.dumps(
                {"task": BUYER_ACTION, "id": str(uuid.uuid4()), "args": [v()], "kwargs": {}}
            ).encode(),
            dead("not_a_task"),
            headers=None,
        ),
        Case(
            "no-id",
            protocol2_body(v()),
            dead("invalid_headers"),
            headers={"task": BUYER_ACTION, "lang": "py"},
        ),
        _case("id-list", dead("invalid_headers"), BUYER_ACTION, v(), id=["x"]),
        _case("id-empty", dead("invalid_headers"), BUYER_ACTION, v(), id=""),
        _case("retries-text", dead("invalid_headers"), BUYER_ACTION, v(), retries="many"),
        _case("timelimit-text", dead("invalid_headers"), BUYER_ACTION, v(), timelimit="x"),
        _case("eta-garbage", dead("invalid_headers"), BUYER_ACTION, v(), eta="yesterday-ish"),
        _case(
            "eta-year-9999",
            dead("invalid_headers"),
            BUYER_ACTION,
            v(),
            eta="9999-12-31T23:59:59-23:59",
        ),
        _case("expires-object", dead("invalid_headers"), BUYER_ACTION, v(), expires={"a": 1}),
        _case("unknown-task", dead("unknown_task"), "aftersales.nonsense", v()),
        _case("task-int", dead("invalid_headers"), BUYER_ACTION, v(), task=7),
        _case("stamped-headers-int", dead("invalid_headers"), BUYER_ACTION, v(), stamped_headers=5),
        _case(
            "stamps-text",
            dead("invalid_headers"),
            BUYER_ACTION,
            v(),
            stamped_headers=["a"],
            stamps="x",
        ),
        # Headers Celery tolerates: the message (for an order not seen) is held as usual.
        _case("group-index-text", None, BUYER_ACTION, _cancel(), group_index="x"),
        _case("nesting-text", None, BUYER_ACTION, _cancel(), replaced_task_nesting="x"),
        _case("shadow-empty", None, BUYER_ACTION, _cancel(), shadow=""),
        _case("meth-text", None, BUYER_ACTION, _cancel(), meth="x"),
        # --- the message object ------------------------------------------------------------
        _case("message-not-object", invalid, BUYER_ACTION, "just text"),
        _case("message-list", invalid, BUYER_ACTION, [v()]),
        Case("two-args", json.dumps([[v(), v()], {}, EMBED]).encode(), invalid),
        Case("kwargs", json.dumps([[], {"message": v()}, EMBED]).encode(), invalid),
        _case("wrong-task", invalid, SELLER_ACTION, v()),
        _case("unknown-type", invalid, BUYER_ACTION, v(type="buyer.exploded")),
        _case(
            "missing-id", invalid, BUYER_ACTION, {k: x for k, x in v().items() if k != "message_id"}
        ),
        _case("unknown-field", invalid, BUYER_ACTION, v(admin=True)),
        _case("id-number", invalid, BUYER_ACTION, v(message_id=12345)),
        _case("order-null", invalid, BUYER_ACTION, _cancel(order_id=None)),
        _case("reason-number", invalid, BUYER_ACTION, v(reason=1.5)),
        _case("reason-blank", invalid, BUYER_ACTION, v(reason="   ")),
        _case("reason-deep-ok", invalid, BUYER_ACTION, v(reason=_nest(20))),
        # --- unicode ------------------------------------------------------------------------
        _case("id-nul", invalid, BUYER_ACTION, v(message_id="m\x00id")),
        _case("order-nul", invalid, BUYER_ACTION, _cancel(order_id="o\x00" + victim)),
        _case("id-rtl-override", invalid, BUYER_ACTION, v(message_id="\u202em-gpj.exe")),
        _case("order-rtl-mark", invalid, BUYER_ACTION, _cancel(order_id=victim + "\u200f")),
        _case("id-lone-surrogate", dead("invalid_unicode"), BUYER_ACTION, v(message_id="m-\ud800")),
        _case("key-lone-surrogate", dead("invalid_unicode"), BUYER_ACTION, {**v(), "\udfff": 1}),
        # --- time ---------------------------------------------------------------------------
        _case("no-offset", invalid, BUYER_ACTION, v(occurred_at="2026-01-01T00:00:00")),
        _case("year-9999", invalid, BUYER_ACTION, v(occurred_at="9999-12-31T23:59:59Z")),
        _case("year-9999-minus", invalid, BUYER_ACTION, v(occurred_at="9999-12-31T23:59:59-23:59")),
        _case("year-1-plus", invalid, BUYER_ACTION, v(occurred_at="0001-01-01T00:00:00+01:00")),
        _case("before-epoch", invalid, BUYER_ACTION, v(occurred_at="1969-07-20T20:17:00Z")),
        _case("epoch-number", invalid, BUYER_ACTION, v(occurred_at=1767225600)),
        _case("feb-30", invalid, BUYER_ACTION, v(occurred_at="2026-02-30T00:00:00Z")),
        _case("offset-24h", invalid, BUYER_ACTION, v(occurred_at="2026-01-01T00:00:00+24:00")),
        _case("future", invalid, BUYER_ACTION, v(occurred_at=ts(ago(days=-1)))),
        _case(
            "kombu-datetime",
            invalid,
            BUYER_ACTION,
            v(occurred_at={"__type__": "datetime", "__value__": "0001-01-01T00:00:00+01:00"}),
        ),
        # --- money --------------------------------------------------------------------------
        _case(
            "money-negative",
            invalid,
            ORDER_EVENT,
            placed(victim, ago(hours=3), shipping_fee="-4.99"),
        ),
        _case(
            "money-absurd",
            invalid,
            ORDER_EVENT,
            placed(victim, ago(hours=3), shipping_fee="1" * 40),
        ),
        _case(
            "money-precision",
            invalid,
            ORDER_EVENT,
            placed(victim, ago(hours=3), shipping_fee="0.0000001"),
        ),
        _case("money-float", invalid, ORDER_EVENT, placed(victim, ago(hours=3), shipping_fee=4.99)),
        _case(
            "money-exponent", invalid, ORDER_EVENT, placed(victim, ago(hours=3), shipping_fee="1e9")
        ),
        _case("money-nan", invalid, ORDER_EVENT, placed(victim, ago(hours=3), shipping_fee="NaN")),
        # --- the victim order: valid messages the rules or the id check refuse ---------------
        _case(
            "reused-id",
            dead("message_id_reused"),
            ORDER_EVENT,
            message("order.paid", victim, ago(minutes=2)) | {"message_id": victim_paid_id},
        ),
        _case(
            "seller-cancel-after-rts",
            ("rejected", "already_ready_to_ship"),
            SELLER_ACTION,
            seller_cancel,
        ),
        _case(
            "seller-cancel-unicode",
            ("rejected", "already_ready_to_ship"),
            SELLER_ACTION,
            message(
                "seller.order_cancelled",
                victim,
                ago(minutes=1),
                reason="\u202e\u0000 \U0001f4a5 \u05e9\u05dc\u05d5\u05dd",
            ),
        ),
        # --- orders that do not exist: held, then dead-lettered ------------------------------
        _case("unknown-order", dead("held_too_long"), BUYER_ACTION, _cancel()),
        # --- valid input: applied -------------------------------------------------------------
        _case(
            "placed-unicode-ids",
            "applied",
            ORDER_EVENT,
            placed(
                new_id("o") + "-\u00e9\u4e2d\U0001f600",
                ago(hours=1),
                buyer_id="b\u00fc\u00ebr-\u05d0",
            ),
        ),
        _case(
            "placed-six-decimals",
            "applied",
            ORDER_EVENT,
            placed(new_id("o"), ago(hours=1), shipping_fee="0.000001"),
        ),
    ]
    return cases


# --- generated payloads ----------------------------------------------------------------

_ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates included
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_ANY_CHAR, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(_ANY_CHAR, max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = ("message_id", "type", "order_id", "occurred_at", "reason", "unknown_field")


def _mutated(edit: tuple[str, str, Any]) -> dict[str, Any]:
    action, name, value = edit
    msg = _cancel()  # a fresh order: a mutation that stays valid is held, not applied
    if action == "drop":
        msg.pop(name, None)
    else:
        msg[name] = value
    return msg


def generated(count: int) -> list[Case]:
    """`count` cases of each kind: random bytes, random JSON as the message, and a valid
    message with one field dropped or replaced by random JSON."""
    found: list[Case] = []
    kinds = {
        "bytes": st.binary(max_size=64).map(
            lambda raw: Case("random-bytes", raw, None, task_headers(TASKS[len(raw) % len(TASKS)]))
        ),
        "json": st.tuples(st.sampled_from(TASKS), _JSON).map(
            lambda pair: _case("random-json", None, pair[0], pair[1])
        ),
        "mutation": st.tuples(
            st.sampled_from(("drop", "set")), st.sampled_from(_FIELDS), _JSON
        ).map(lambda edit: _case("mutated", None, BUYER_ACTION, _mutated(edit))),
    }
    for strategy in kinds.values():

        @settings(
            max_examples=count,
            database=None,
            derandomize=True,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(case: Case) -> None:
            found.append(case)

        collect()
    return found
