"""Properties of decide() over random histories of one order.

Messages arrive in any order, some twice; deadlines fire in between (any of the pending
ones, on time or late) and labels come back. Whatever happens: at most one
order.cancelled, never more refunded than paid, at most one terminal outcome per request,
no exception, and every timer and parked message is eventually gone.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import EVENT_DATA
from schemas.policy import build_policy
from tests.support import factories as f
from tests.support.factories import T0
from worker.rules import decide, new_state
from worker.rules.state import DeadlineFired, Decision, EventOut, LabelGenerated, OrderState

POLICY = build_policy()
ORDER = "order-p"
REQUESTS = ("r1", "r2", "r3")
HOURS = st.one_of(
    st.sampled_from([0, 0.5, 1, 1.5, 3, 30, 47, 48, 49, 51, 72, 120, 240, 336, 360, 720, 744]),
    st.integers(min_value=0, max_value=24 * 40),
)
SELECTIONS = st.sampled_from(
    [
        None,
        [{"sku": "sku-a", "quantity": 1}],
        [{"sku": "sku-b", "quantity": 1}],
        [{"sku": "sku-b", "quantity": 2}],
    ]
)
PARCELS = st.sampled_from(
    [
        None,
        {"weight_kg": 3, "dimensions_cm": [30, 20, 10]},
        {"weight_kg": 16, "dimensions_cm": [30, 20, 10]},
    ]
)


@st.composite
def placed(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.sampled_from(["prepaid", "cod"]))
    pricing = draw(st.sampled_from(["regular", "subsidized"]))
    fields: dict[str, Any] = {
        "payment_method": method,
        "pricing": pricing,
        "marketplace": draw(st.sampled_from(["UK", "US"])),
    }
    if pricing == "subsidized":
        fields["due_in_hours"] = draw(st.sampled_from([0, 2, 24, 72, 72]))
    return {"type": "order.placed", **fields}


@st.composite
def return_request(draw: st.DrawFn, request_id: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["refund_only", "return_and_refund"]))
    fields: dict[str, Any] = {
        "type": "buyer.return_requested",
        "request_id": request_id,
        "kind": kind,
        "reason": draw(st.sampled_from(["damaged", "changed_mind", "not_received"])),
        "items": draw(SELECTIONS),
    }
    if kind == "return_and_refund":
        fields["method"] = draw(st.sampled_from(["drop_off", "self_arrange"]))
        fields["parcel"] = draw(PARCELS)
    return fields


@st.composite
def spec(draw: st.DrawFn) -> dict[str, Any]:
    """A message of the order, without ids and times (those are added when it is sent)."""
    kind = draw(
        st.sampled_from(
            [
                "order.paid",
                "order.ready_to_ship",
                "order.shipped",
                "order.delivered",
                "buyer.cancel_requested",
                "seller.cancel_accepted",
                "seller.cancel_rejected",
                "seller.order_cancelled",
                "buyer.return_requested",
                "seller.return_approved",
                "seller.return_rejected",
                "buyer.appeal_submitted",
                "platform.arbitration_decided",
                "buyer.return_tracking_submitted",
                "carrier.return_dropped_off",
                "seller.return_received",
                "buyer.label_email_requested",
            ]
        )
    )
    fields: dict[str, Any] = {"type": kind}
    rid = draw(st.sampled_from(REQUESTS))
    if kind == "buyer.return_requested":
        return draw(return_request(rid))
    if kind in (
        "buyer.cancel_requested",
        "seller.cancel_rejected",
        "seller.order_cancelled",
        "seller.return_rejected",
    ):
        fields["reason"] = "because"
    if kind.startswith(
        (
            "seller.return",
            "buyer.appeal",
            "platform",
            "buyer.return_tracking",
            "carrier",
            "buyer.label",
        )
    ):
        fields["request_id"] = rid
    if kind == "platform.arbitration_decided":
        fields["outcome"] = draw(st.sampled_from(["refund", "reject"]))
    if kind == "buyer.return_tracking_submitted":
        fields.update(carrier="Royal Mail", tracking_number="T1")
    if kind == "carrier.return_dropped_off":
        fields["tracking_number"] = "E1"
    if kind == "buyer.label_email_requested":
        fields["email"] = "buyer@example.com"
    return fields


GAPS = st.sampled_from([0, 0.5, 1, 2, 24, 47, 48, 49, 60, 120, 200, 400])
FLOW_GAPS = st.sampled_from([0.5, 1, 5, 24, 24, 47, 48, 49, 100, 200])
OTHERS = st.one_of(
    st.tuples(st.just("again"), st.integers(0, 50)),
    st.tuples(st.just("fire"), st.integers(0, 20)),
    st.tuples(st.just("label"), st.sampled_from(REQUESTS)),
)


def _chain(
    draw: st.DrawFn,
    start: float,
    steps: list[dict[str, Any]],
    gaps: st.SearchStrategy[float] = GAPS,
) -> list[tuple[float, dict[str, Any]]]:
    """Some of `steps`, in this order, each a random gap after the one before."""
    chain, at = [], start
    for fields in steps:
        at += draw(gaps)
        if draw(st.integers(0, 3)):  # three times in four
            chain.append((at, fields))
    return chain


@st.composite
def return_flow(draw: st.DrawFn, request_id: str) -> list[tuple[float, dict[str, Any]]]:
    ask = draw(return_request(request_id))
    ref = {"request_id": request_id}
    answer = draw(
        st.sampled_from(
            [
                [{"type": "seller.return_approved", **ref}],
                [{"type": "seller.return_rejected", "reason": "no", **ref}],
                [
                    {"type": "seller.return_rejected", "reason": "no", **ref},
                    {"type": "buyer.appeal_submitted", **ref},
                    {
                        "type": "platform.arbitration_decided",
                        "outcome": draw(st.sampled_from(["refund", "reject"])),
                        **ref,
                    },
                ],
            ]
        )
    )
    parcel = draw(
        st.sampled_from(
            [
                {
                    "type": "buyer.return_tracking_submitted",
                    "carrier": "RM",
                    "tracking_number": "T",
                    **ref,
                },
                {"type": "carrier.return_dropped_off", "tracking_number": "E", **ref},
                {"type": "buyer.label_email_requested", "email": "a@b.example", **ref},
            ]
        )
    )
    received = {"type": "seller.return_received", **ref}
    return _chain(
        draw,
        draw(st.sampled_from([30, 60, 100, 400, 700])),
        [ask, *answer, parcel, received],
        FLOW_GAPS,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A plausible history, delivered mostly in order with local swaps and extras."""
    messages: list[tuple[float, dict[str, Any]]] = [(0, draw(placed()))]
    messages += _chain(
        draw,
        0,
        [
            {"type": "order.paid"},
            {"type": "order.ready_to_ship"},
            {"type": "order.shipped"},
            {"type": "order.delivered"},
        ],
        st.sampled_from([0.5, 1, 2, 5, 24, 47]),
    )
    messages += _chain(
        draw,
        draw(HOURS),
        draw(
            st.sampled_from(
                [
                    [
                        {"type": "buyer.cancel_requested", "reason": "x"},
                        {"type": "seller.cancel_accepted"},
                    ],
                    [
                        {"type": "buyer.cancel_requested", "reason": "x"},
                        {"type": "seller.cancel_rejected", "reason": "no"},
                    ],
                    [{"type": "seller.order_cancelled", "reason": "stock"}],
                    [],
                    [],
                    [],
                    [],
                ]
            )
        ),
    )
    for request_id in draw(st.lists(st.sampled_from(REQUESTS), max_size=3, unique=True)):
        messages += draw(return_flow(request_id))
    messages += draw(st.lists(st.tuples(HOURS, spec()), max_size=4))
    jitter = draw(
        st.lists(
            st.sampled_from([0, 0, 0, -30, 30, -100, 100]),
            min_size=len(messages),
            max_size=len(messages),
        )
    )
    arrival = sorted(range(len(messages)), key=lambda i: messages[i][0] + jitter[i])
    actions: list[tuple[Any, ...]] = []
    for i in arrival:
        actions.append(("send", messages[i][1], messages[i][0]))
        actions += draw(st.lists(OTHERS, max_size=2))
    return actions


class Shell:
    """The shell's loop in miniature: decide, commit, remember the outcome."""

    def __init__(self) -> None:
        self.state: OrderState = new_state(ORDER)
        self.now = T0
        self.sent: list[Any] = []
        self.events: list[EventOut] = []
        self.labels: set[str] = set()

    def apply(self, input_: Any) -> Decision:
        decision = decide(self.state, input_, self.now, POLICY)
        self.state = decision.state
        self.events.extend(decision.events)
        self.labels.update(job.request_id for job in decision.label_jobs)
        self.now += timedelta(minutes=1)
        return decision

    def send(self, fields: dict[str, Any], hours: float) -> None:
        msg_fields = {k: v for k, v in fields.items() if k != "type" and v is not None}
        at = T0 + timedelta(hours=hours)
        if fields["type"] == "order.placed":
            if "due_in_hours" in msg_fields:
                due_in = timedelta(hours=msg_fields.pop("due_in_hours"))
                msg_fields["payment_due_at"] = at + due_in
            msg = f.order_placed(ORDER, at, **msg_fields)
        else:
            msg = f.message(fields["type"], ORDER, at, **msg_fields)
        self.sent.append(msg)
        self.apply(msg)

    def fire(self, index: int) -> None:
        due = sorted(self.state.deadlines.values(), key=lambda d: (d.due_at, d.id))
        if due:
            deadline = due[index % len(due)]
            self.now = max(self.now, deadline.due_at)
            self.apply(DeadlineFired(order_id=ORDER, deadline=deadline))

    def label(self, request_id: str) -> None:
        if request_id in self.labels:
            self.apply(
                LabelGenerated(
                    order_id=ORDER,
                    request_id=request_id,
                    tracking_number="L1",
                    qr_content="Q",
                    qr_png_uri="file:///q.png",
                    pdf_uri="file:///l.pdf",
                )
            )

    def drain(self) -> None:
        """Let time run until every timer has fired (holds included)."""
        for _ in range(500):
            before = self.state
            for deadline in sorted(self.state.deadlines.values(), key=lambda d: (d.due_at, d.id)):
                self.now = max(self.now, deadline.due_at)
                self.apply(DeadlineFired(order_id=ORDER, deadline=deadline))
                if self.state != before:
                    break
            if self.state == before:
                return


def run(actions: list[tuple[Any, ...]], shell: Shell | None = None) -> Shell:
    shell = shell or Shell()
    for action in actions:
        if action[0] == "send":
            shell.send(action[1], action[2])
        elif action[0] == "again" and shell.sent:
            shell.apply(shell.sent[action[1] % len(shell.sent)])
        elif action[0] == "fire":
            shell.fire(action[1])
        elif action[0] == "label":
            shell.label(action[1])
    shell.drain()
    return shell


def paid_total(shell: Shell) -> Decimal:
    order = shell.state.order
    if order is None or shell.state.paid_at is None:
        return Decimal("0")
    return sum((i.unit_price * i.quantity for i in order.items), order.shipping_fee)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_histories_keep_the_invariants(actions: list[tuple[Any, ...]]) -> None:
    shell = run(actions)
    types = Counter(e.type for e in shell.events)
    assert types["order.cancelled"] <= 1

    refunds = [e.data for e in shell.events if e.type == "refund.initiated"]
    total = sum((r.amount for r in refunds), Decimal("0"))
    assert total <= paid_total(shell)
    assert total == shell.state.refunded_total
    assert all(r.amount >= 0 for r in refunds)

    terminal = Counter(
        e.data.request_id
        for e in shell.events  # type: ignore[attr-defined]
        if e.type in ("return.closed", "refund.initiated") and e.data.request_id is not None
    )
    assert all(count == 1 for count in terminal.values()), terminal
    answers = [
        t
        for t in ("cancellation.accepted", "cancellation.auto_accepted", "cancellation.rejected")
        for _ in range(types[t])
    ]
    assert len(answers) <= 1

    outcomes = [(e.cause, e.type) for e in shell.events if e.type != "action.rejected"]
    assert len(outcomes) == len(set(outcomes)), "one logical outcome, one event id"
    assert all(isinstance(e.data, EVENT_DATA[e.type]) for e in shell.events)

    assert shell.state.deadlines == {} and shell.state.parked == ()


def test_properties_helpers_cover_a_simple_history() -> None:
    shell = run(
        [
            (
                "send",
                {
                    "type": "order.placed",
                    "payment_method": "prepaid",
                    "pricing": "regular",
                    "marketplace": "UK",
                },
                0,
            ),
            ("send", {"type": "order.paid"}, 1),
            ("send", {"type": "buyer.cancel_requested", "reason": "x"}, 1.5),
        ]
    )
    assert shell.state.order is not None
    assert [e.type for e in shell.events] == ["order.cancelled", "refund.initiated"]
    assert paid_total(shell) == Decimal("54.99")
