"""Format versions of the stored forms (schemas/formats.py): every version a
release wrote is read, a newer one is refused with NewerFormat (left, never rewritten),
and what this release writes is what the previous release (1.1) reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import formats
from schemas.dead_letters import dead_letter_body
from tests.unit.test_state_codec import _delivered_with_history
from worker.adapters import state_codec
from worker.adapters.state_upgrade import in_hours, upgrade_format_1

DATA = Path(__file__).parent / "data"


def placed_state() -> Any:
    return _delivered_with_history()


def resolve_own(state: Any) -> Any:
    return lambda digest: state.policy


STATE_1_0 = DATA / "order_state_1_0.json"


@pytest.mark.parametrize(
    ("form", "data", "version"),
    [
        (formats.ORDER_STATE, {}, 2),  # unmarked: 1.1's compact form (1.0's by shape)
        (formats.ORDER_STATE, {"format": 1}, 1),
        (formats.ORDER_STATE, {"format": 2}, 2),
        (formats.OUTBOX_ENTRY, {"kind": "event"}, 1),  # written before 1.2: unmarked
        (formats.OUTBOX_ENTRY, {"kind": "event", "format": 1}, 1),
        (formats.DEAD_LETTER, {"reason": "x"}, 1),
        (formats.SCHEDULE_ENTRY, {}, 1),
    ],
)
def test_every_version_a_release_wrote_is_read(form: str, data: Any, version: int) -> None:
    assert formats.version_of(form, data) == version


@pytest.mark.parametrize("form", sorted(formats.KNOWN))
@pytest.mark.parametrize("bad", ["known+1", 99, "2", 0, -1, True, None, 2.5])
def test_a_newer_or_unknown_version_is_refused_as_newer(form: str, bad: Any) -> None:
    version = formats.KNOWN[form] + 1 if bad == "known+1" else bad
    with pytest.raises(formats.NewerFormat, match=form) as caught:
        formats.version_of(form, {"format": version})
    assert caught.value.version == version


def test_today_writes_what_1_1_reads() -> None:
    """1.1's models forbid unknown keys: the order state carries no format key while 1.1
    may run (WRITTEN == 2, unmarked); outbox entries and dead letters, read by key, do."""
    assert formats.WRITTEN[formats.ORDER_STATE] == 2
    encoded = json.loads(state_codec.encode(placed_state(), lambda p: "h"))
    assert formats.FORMAT_KEY not in encoded
    assert dead_letter_body("t", {}, "e", "r", datetime.now(UTC))["format"] == 1
    assert formats.marked(formats.OUTBOX_ENTRY, {"kind": "event"})["format"] == 1


def test_a_state_in_a_newer_format_is_refused_not_misread() -> None:
    raw = json.loads(state_codec.encode(placed_state(), lambda p: "h"))
    raw["format"] = formats.KNOWN[formats.ORDER_STATE] + 1
    raw["a_field_of_the_future"] = {"x": 1}
    with pytest.raises(formats.NewerFormat):
        state_codec.decode(json.dumps(raw), lambda h: pytest.fail("must not be resolved"))


def test_a_marked_current_state_loads_like_an_unmarked_one() -> None:
    state = placed_state()
    raw = json.loads(state_codec.encode(state, lambda p: "h"))
    assert state_codec.decode(json.dumps({**raw, "format": 2}), resolve_own(state)) == state


def test_a_1_0_state_is_upgraded_on_load_with_its_terms() -> None:
    state = state_codec.decode(STATE_1_0.read_text(), lambda h: pytest.fail("no reference"))
    assert state.policy is not None and state.policy.currency == "GBP"  # the order's own
    assert str(state.policy.return_response_window) == "PT48H"  # was P2D: elapsed, as in 1.0
    assert str(state.policy.return_window) == "PT720H"
    # Written back in today's form; that loads again, unchanged.
    again = state_codec.encode(state, state_codec.policy_hash)
    assert state_codec.decode(again, resolve_own(state)) == state


@pytest.mark.parametrize(
    ("duration", "hours"),
    [("P2D", "PT48H"), ("P1DT1H30M", "PT25H30M"), ("PT1H", "PT1H"), ("P30D", "PT720H"),
     ("PT90S", "PT1M30S")],
)  # fmt: skip
def test_a_1_0_window_keeps_its_length_in_hours(duration: str, hours: str) -> None:
    assert in_hours(duration) == hours


def test_only_a_1_0_state_is_upgraded_and_only_once() -> None:
    state = json.loads(STATE_1_0.read_text())
    assert upgrade_format_1(state) is True
    assert upgrade_format_1(state) is False  # it has `published` now
    compact = json.loads(state_codec.encode(placed_state(), lambda p: "h"))
    before = json.dumps(compact)
    assert upgrade_format_1(compact) is False and json.dumps(compact) == before


def test_the_relay_leaves_an_outbox_entry_of_a_newer_release_and_publishes_the_rest() -> None:
    from tests.service.fakes import FakeStore
    from tests.service.test_service import make_service

    store = FakeStore()
    store.outbox.update({"new": {"kind": "event", "format": 2}, "old": {"kind": "event"}})
    service = make_service(store=store)
    entries = [("new", store.outbox["new"]), ("old", store.outbox["old"])]
    assert service.outbox.publish(entries) == 1  # one left
    assert [entry_id for entry_id, _ in service.publisher.published] == ["old"]  # type: ignore[attr-defined]
    assert list(store.outbox) == ["new"]  # still there for a newer worker's relay


def test_a_new_optional_state_field_marks_only_the_states_that_use_it(monkeypatch) -> None:
    """How a release adds state fields: listed under the next format, a state without
    them keeps the older format; one with them is stamped, and a release that does not
    know that format yet leaves it."""
    monkeypatch.setattr(
        formats,
        "ORDER_STATE_FIELDS_SINCE",
        {**formats.ORDER_STATE_FIELDS_SINCE, 4: frozenset({"x_new"})},
    )
    plain = formats.stamp(formats.ORDER_STATE, {"order_id": "o-1"})
    assert formats.FORMAT_KEY not in plain  # format 2: what 1.1 reads
    using = formats.stamp(formats.ORDER_STATE, {"order_id": "o-1", "returns": {"r": {"x_new": 1}}})
    assert using[formats.FORMAT_KEY] == 4
    with pytest.raises(formats.NewerFormat):  # KNOWN is 3: this release leaves it
        formats.version_of(formats.ORDER_STATE, using)


@pytest.mark.parametrize(
    ("compact", "version"),
    [
        ({"order_id": "o"}, 2),
        ({"returns": {"r1": {"status": "requested", "kind": "refund_only"}}}, 2),
        ({"returns": {"r1": {"second_tries": [{"sku": "A", "quantity": 1}]}}}, 3),
        ({"returns": {"r1": {"offer": {"kind": "partial_refund"}}}}, 3),
        ({"returns": {"r1": {"kind": "reshipment"}}}, 3),
        ({"returns": {"r1": {"status": "replacing"}}}, 3),
        ({"deadlines": {"d": {"kind": "offer_response"}}}, 3),
        ({"history": {"base": {"returns": {"r1": {"replacement_tracking": "T"}}}}}, 3),
    ],
)
def test_a_state_is_written_in_the_oldest_format_that_carries_it(compact, version) -> None:
    """1.2's fields and values (contract 1.2) make a state format 3, wherever they sit;
    a state without them stays format 2, which release 1.1 reads."""
    assert formats.state_version(compact) == version
    # The quick test on the JSON text never misses one that needs its stamp.
    text = json.dumps(compact, separators=(",", ":"))
    assert formats.state_json_needs_stamp(text) is (version > 2)


@pytest.mark.parametrize(
    "compact",
    [
        {"order_id": "o"},
        {"returns": {"r1": {"kind": "reshipment"}}},
        {"history": {"base": {"returns": {"r1": {"replacement_tracking": "T"}}}}},
        # A newer format's word inside a free text: looked at closer, still format 2.
        {"returns": {"r1": {"status": "requested", "note": 'asked for a "reshipment"'}}},
    ],
)
def test_the_quick_test_writes_what_stamp_writes(compact, monkeypatch) -> None:
    """state_codec.encode skips `stamp` when the quick test allows: the same text as the
    walk through the object would write, byte for byte."""
    monkeypatch.setattr(state_codec, "_compact", lambda state, ref: dict(compact))
    stamped = formats.stamp(formats.ORDER_STATE, dict(compact))
    assert state_codec.encode(None, None) == json.dumps(stamped, separators=(",", ":"))  # type: ignore[arg-type]


def test_a_policy_document_is_written_as_release_1_1_wrote_it() -> None:
    """The policy documents 1.1 stored (its golden fixture) come out of today's code byte
    for byte: same content hash, and what today's workers store a 1.1 worker reads
    during a rolling upgrade (1.2's new windows at their default are left out)."""
    from schemas.policy import MarketplacePolicy

    fixture = json.loads((Path(__file__).parents[1] / "upgrade/fixtures/1.1.0.json").read_text())
    documents = [row for row in fixture["keys"] if row["key"].startswith("aftersales:policy:")]
    assert documents
    for row in documents:
        policy = MarketplacePolicy.model_validate_json(row["value"])
        assert state_codec.canonical_policy(policy) == row["value"]
        assert row["key"].endswith(state_codec.policy_hash(policy))
    longer = policy.model_copy(update={"offer_response_window": timedelta(hours=48)})
    assert "offer_response_window" in state_codec.canonical_policy(longer)  # 1.2 only
