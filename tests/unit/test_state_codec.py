"""The stored form of an order's state (worker/adapters/state_codec.py) loads exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings

from schemas.policy import MarketplacePolicy
from tests.support import factories
from tests.support.factories import T0
from tests.support.timeline import Timeline
from tests.unit import test_properties as props
from worker.adapters import state_codec as codec
from worker.rules.state import Decision, OrderState, ReturnRequest

POLICIES: dict[str, MarketplacePolicy] = {}


def ref(policy: MarketplacePolicy) -> str:
    digest = codec.policy_hash(policy)
    POLICIES[digest] = policy
    return digest


def round_trip(state: OrderState) -> OrderState:
    raw = codec.encode(state, ref)
    loaded = codec.decode(raw, POLICIES.__getitem__)
    assert loaded == state
    # Exact, not just equal: every value is written back as it was (Decimal exponents too;
    # only the order of a logged message's keys may change).
    assert json.loads(loaded.model_dump_json()) == json.loads(state.model_dump_json())
    return loaded


class StoredShell(props.Shell):
    """The property tests' shell, with every state stored and loaded between two inputs:
    in the compact form, or (`inline`) as every order was stored before."""

    inline = False

    def apply(self, input_: Any) -> Decision:
        decision = super().apply(input_)
        if self.inline:
            self.state = OrderState.model_validate_json(self.state.model_dump_json())
        else:
            self.state = round_trip(self.state)
        return decision


def _run(actions: list[tuple[Any, ...]], inline: bool) -> StoredShell:
    shell = StoredShell()
    shell.inline = inline
    props.run(actions, shell)  # the property tests' driver, over a shell that stores
    return shell


@pytest.mark.cpu_heavy
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props.histories())
def test_every_state_of_random_histories_loads_exactly(actions: list[tuple[Any, ...]]) -> None:
    with mock.patch.object(factories, "new_id", lambda prefix: f"{prefix}-1"):  # same ids
        compact = _run(actions, inline=False)
        inline = _run(actions, inline=True)
    # The same history stored the old way ends in the same state and the same events.
    assert json.loads(compact.state.model_dump_json()) == json.loads(inline.state.model_dump_json())
    assert [e.model_dump_json() for e in compact.events] == [
        e.model_dump_json() for e in inline.events
    ]


def _delivered_with_history() -> OrderState:
    shell = props.run(
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
            ("send", {"type": "order.shipped", "tracking_number": "T1"}, 30),
        ]
    )
    return shell.state


def test_the_policy_is_stored_by_reference_and_an_inline_policy_still_loads() -> None:
    state = _delivered_with_history()
    assert state.policy is not None
    raw = codec.encode(state, ref)
    assert json.loads(raw)["policy"] == codec.policy_hash(state.policy)
    assert '"return_window"' not in raw  # the document is not copied into the order
    inline = state.model_dump_json()  # how every order was stored before
    assert codec.decode(inline, POLICIES.__getitem__) == state
    assert len(raw) < len(inline) / 2


def test_a_history_base_names_what_it_shares_with_the_current_state() -> None:
    timeline = Timeline("order-h")
    timeline.send(factories.order_placed("order-h", T0), factories.paid("order-h", T0))
    timeline.send(factories.cancel_requested("order-h", T0 + factories.hours(5)))
    timeline.send(factories.ready_to_ship("order-h", T0 + factories.hours(6)))  # silent
    state = timeline.state
    assert state.history is not None and state.history.base.order is not None
    stored = json.loads(codec.stored_parts(codec.encode(state, ref))[0])
    base = stored["history"]["base"]
    assert "order" in base[codec.SAME] and "order" not in base
    assert round_trip(state) == state


def test_decimal_defaults_written_with_another_exponent_are_kept() -> None:
    state = _delivered_with_history()
    zero = Decimal("0.00")
    request = ReturnRequest.model_validate(
        {
            "request_id": "r1",
            "status": "requested",
            "kind": "refund_only",
            "reason": "damaged",
            "method": None,
            "items": [],
            "parcel": None,
            "requested_at": "2026-01-01T00:00:00Z",
            "respond_by": "2026-01-03T00:00:00Z",
            "return_cost": zero,
        }
    )
    changed = state.model_copy(update={"refunded_total": zero, "returns": {"r1": request}})
    loaded = round_trip(changed)
    assert str(loaded.refunded_total) == "0.00"
    assert str(loaded.returns["r1"].return_cost) == "0.00"


def test_the_codec_knows_every_decimal_field_with_a_default() -> None:
    def decimals(model: type[Any]) -> set[str]:
        return {
            name for name, field in model.model_fields.items() if isinstance(field.default, Decimal)
        }

    assert decimals(OrderState) == set(codec.ORDER_DECIMALS)
    assert decimals(ReturnRequest) == set(codec.RETURN_DECIMALS)
