"""An order stored by the code before contract 1.2 (tests/unit/data/order_state_1_1.json,
made by make_state_1_1.py beside it at commit 5f7953f) loads, and the 1.2 rules carry on
from it: its rejections are counted per unit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from schemas.policy import MarketplacePolicy
from tests.support import factories as f
from tests.support.timeline import Timeline
from worker.adapters import state_codec

DATA = Path(__file__).parent / "data"


def load_1_1() -> Timeline:
    stored = json.loads((DATA / "order_state_1_1.json").read_text())
    policies = {
        digest: MarketplacePolicy.model_validate(doc) for digest, doc in stored["policies"].items()
    }
    state = state_codec.decode(stored["state"], policies.__getitem__)
    timeline = Timeline(state.order_id)
    timeline.state = state
    return timeline


def test_a_state_stored_before_1_2_loads_with_its_requests_and_history() -> None:
    timeline = load_1_1()
    state = timeline.state
    assert {r: state.returns[r].status for r in state.returns} == {
        "r1": "superseded",
        "r2": "rejected",
        "r3": "refunded",
    }
    assert state.returns["r2"].attempt == 2
    assert state.history is not None and state.history.inputs
    assert str(state.refunded_total) == "10.00"
    # Written back in the current form, it loads to the same state.
    digest = state_codec.policy_hash(state.policy) if state.policy else ""
    assert state.policy is not None
    again = state_codec.decode(
        state_codec.encode(state, lambda _: digest),
        lambda _: state.policy,  # type: ignore[arg-type,return-value]
    )
    assert again == state


def test_a_state_stored_before_1_2_counts_its_rejections_per_unit() -> None:
    """The issue's scenario, stored by the old code: A x2 rejected, then A x2 + B x1
    rejected. B was rejected once: asking for B alone is its resubmission."""
    timeline = load_1_1()
    oid = timeline.order_id
    r2 = timeline.state.returns["r2"]
    at = r2.requested_at + timedelta(hours=2)
    timeline.send(
        f.return_requested(
            oid, at, request_id="r4", kind="refund_only", reason="changed_mind",
            items=[{"sku": "B", "quantity": 1}],
        )
    )  # fmt: skip
    assert timeline.codes() == []
    assert timeline.one("return.requested").request_id == "r4"
    # The two A units were rejected twice: only an appeal remains for them.
    timeline.send(
        f.return_requested(
            oid, at + timedelta(minutes=1), request_id="r5", kind="refund_only",
            reason="changed_mind", items=[{"sku": "A", "quantity": 1}],
        )
    )  # fmt: skip
    assert timeline.codes() == ["resubmission_used"]


def test_a_state_with_the_1_2_fields_is_stored_and_loaded_exactly() -> None:
    """Offers, replacements and per-unit second tries: the stored form keeps them (and
    leaves them out at their defaults, so older states stay as they were)."""
    from tests.unit.test_offers_replacements_and_rejections import (
        offered,
        the_issues_scenario,
        us_order,
    )

    timeline, _, _, _ = offered()
    scenario, scenario_oid = the_issues_scenario()
    # B rejected once in r2 (which waits on with its A units): asked again alone, r2 does
    # not tell them, so they are stored.
    scenario.send(
        f.return_requested(scenario_oid, scenario.state.returns["r2"].requested_at
                           + timedelta(hours=3), request_id="r3", kind="refund_only",
                           reason="changed_mind", items=[{"sku": "B", "quantity": 1}]),
    )  # fmt: skip
    assert scenario.codes() == []
    replaced, oid = us_order()
    replaced.send(
        f.message("buyer.return_requested", oid, request_id="rs", kind="reshipment",
                  reason="damaged", occurred_at=replaced.state.delivered_at + timedelta(hours=1)),  # type: ignore[operator]
    )  # fmt: skip
    policies: dict[str, MarketplacePolicy] = {}

    def ref(policy: MarketplacePolicy) -> str:
        policies[state_codec.policy_hash(policy)] = policy
        return state_codec.policy_hash(policy)

    for state in (timeline.state, scenario.state, replaced.state):
        raw = state_codec.encode(state, ref)
        assert state_codec.decode(raw, policies.__getitem__) == state
    assert '"offer":{' in state_codec.encode(timeline.state, ref)
    assert '"second_tries":' in state_codec.encode(scenario.state, ref)
    # A request without the new fields writes none of them.
    assert (
        "second_tries" not in state_codec.stored_parts(state_codec.encode(replaced.state, ref))[0]
    )
