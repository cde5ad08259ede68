"""What the worker stores as JSON (worker/adapters/compact_json.py) reads back as the
standard library's text did, by this release and by the standard library's reader (what
release 1.1 reads with), and what orjson refuses goes the standard library's way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import factories
from tests.support.factories import T0
from tests.support.timeline import Timeline
from worker.adapters import compact_json
from worker.adapters import state_codec as codec

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: the fallback
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates, control characters, anything beyond ASCII
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def standard(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@given(JSON_VALUES)
def test_any_json_value_reads_back_as_the_standard_librarys_text_did(value: object) -> None:
    text = compact_json.dumps(value)
    assert json.loads(text) == json.loads(standard(value))  # what an earlier release reads
    assert compact_json.loads(text) == json.loads(standard(value))
    assert compact_json.loads(text.encode()) == json.loads(standard(value))  # bytes too
    assert codec.SEPARATOR not in text  # control characters are escaped by both


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='ab"\\ ~'),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(alphabet="xyz", max_size=3), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_ascii_values_are_written_as_the_standard_library_writes_them(value: object) -> None:
    assert compact_json.dumps(value) == standard(value)


def test_what_the_two_write_differently() -> None:
    value = {"reason": "Größe falsch 😀", "weight_kg": 1e-7, "length_cm": 1e-05}
    assert compact_json.dumps(value) == (
        '{"reason":"Größe falsch 😀","weight_kg":1e-7,"length_cm":0.00001}'
    )
    assert standard(value) == (
        '{"reason":"Gr\\u00f6\\u00dfe falsch \\ud83d\\ude00","weight_kg":1e-07,"length_cm":1e-05}'
    )
    assert json.loads(compact_json.dumps(value)) == value


class Kind(StrEnum):
    A = "a"


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"s": "\ud800x"}, '{"s":"\\ud800x"}'),  # a lone surrogate: orjson refuses it
        ({"n": 2**70}, '{"n":1180591620717411303424}'),  # beyond 64 bits
        ({1: "a"}, '{"1":"a"}'),  # a key that is not a string
        ({"k": Kind.A}, '{"k":"a"}'),  # a str subclass
    ],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: object, text: str) -> None:
    assert compact_json.dumps(value) == text == standard(value)


@pytest.mark.parametrize("value", [datetime(2026, 12, 7, tzinfo=UTC), Point(1), object()])
def test_a_type_the_standard_library_does_not_write_is_still_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        compact_json.dumps({"v": value})
    when = datetime(2026, 12, 7, tzinfo=UTC)  # unless `default` says how, as before
    assert compact_json.dumps({"v": when}, default=str) == standard({"v": str(when)})


@pytest.mark.parametrize(
    "text",
    ['{"n":-9223372036854775809}', '{"n":18446744073709551616}', "[123456789012345678901]"],
)
def test_an_integer_beyond_64_bits_is_read_exactly(text: str) -> None:
    """orjson would read it as a float (inexact): the standard library reads it."""
    assert compact_json.loads(text) == json.loads(text)
    assert compact_json.loads(text.encode()) == json.loads(text)
    assert "." not in repr(compact_json.loads(text))


def test_reading_what_orjson_does_not_parse_answers_as_the_standard_library() -> None:
    assert compact_json.loads('{"a":NaN}')["a"] != compact_json.loads('{"a":NaN}')["a"]
    assert compact_json.loads(b'{"a":"\\ud800"}') == {"a": "\ud800"}
    with pytest.raises(json.JSONDecodeError):
        compact_json.loads("{")


def test_a_state_with_text_beyond_ascii_loads_by_this_release_and_by_the_standard_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = "order-ü"
    timeline = Timeline(order)
    timeline.send(
        factories.order_placed(order, T0, buyer_id="käufer-7", items=[factories.item("sku-ß")]),
        factories.paid(order, T0),
    )
    timeline.send(
        factories.cancel_requested(order, T0 + factories.hours(5), reason="Größe falsch 😀")
    )
    timeline.send(factories.ready_to_ship(order, T0 + factories.hours(6)))  # kept in history
    state = timeline.state
    assert state.history is not None and state.policy is not None
    policies = {codec.policy_hash(state.policy): state.policy}
    raw = codec.encode(state, codec.policy_hash)
    assert "Größe falsch 😀" in raw and "käufer-7" in raw  # written as themselves
    assert codec.decode(raw, policies.__getitem__) == state
    monkeypatch.setattr(compact_json, "loads", json.loads)  # how release 1.1 reads it
    assert codec.decode(raw, policies.__getitem__) == state
