"""The consumer's screen (worker/shell/screen.py) and the timestamp range, without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.types import parse_timestamp
from worker.shell.screen import Limits, depth_exceeds, refuse_decoded, refuse_raw

LIMITS = Limits(max_bytes=1024, max_depth=8)
HEADERS = {
    "task": "aftersales.order_event",
    "id": "t-1",
    "lang": "py",
    "retries": 0,
    "eta": None,
    "timelimit": [None, None],
}
GOOD = [[{"message_id": "m"}], {}, {"callbacks": None, "errbacks": None, "chain": None}]


def _raw(
    body: Any = b"[]",
    content_type: str | None = "application/json",
    encoding: str | None = "utf-8",
    **headers: Any,
) -> str | None:
    refusal = refuse_raw(body, content_type, encoding, {**HEADERS, **headers}, LIMITS)
    return refusal.reason if refusal else None


def test_a_well_formed_message_passes():
    assert _raw(json.dumps(GOOD).encode()) is None
    assert refuse_decoded(GOOD, LIMITS) is None


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda: _raw(b"x" * 1025), "too_large"),
        (lambda: _raw(b""), "undecodable"),
        (lambda: _raw(content_type="application/x-python-serialize"), "content_not_allowed"),
        (lambda: _raw(content_type="application/x-yaml"), "content_not_allowed"),
        (lambda: _raw(encoding="zlib_codec"), "content_not_allowed"),
        (lambda: _raw(encoding=5), "content_not_allowed"),
        (lambda: _raw(compression="application/x-gzip"), "content_not_allowed"),
        (lambda: _raw(task=None), "not_a_task"),
        (lambda: _raw(id=None), "invalid_headers"),
        (lambda: _raw(id=["t"]), "invalid_headers"),
        (lambda: _raw(id="t" * 256), "invalid_headers"),
        (lambda: _raw(task=5), "invalid_headers"),
        (lambda: _raw(retries="0"), "invalid_headers"),
        (lambda: _raw(retries=-1), "invalid_headers"),
        (lambda: _raw(timelimit="fast"), "invalid_headers"),
        (lambda: _raw(timelimit=[1, -1]), "invalid_headers"),
        (lambda: _raw(eta={"at": 1}), "invalid_headers"),
        (lambda: _raw(eta="soon"), "invalid_headers"),
        (lambda: _raw(eta="9999-12-31T23:59:59-23:59"), "invalid_headers"),
        (lambda: _raw(expires="0001-01-01T00:00:00+01:00"), "invalid_headers"),
        (lambda: _raw(ignore_result="yes"), "invalid_headers"),
        (lambda: _raw(stamped_headers=5), "invalid_headers"),
        (lambda: _raw(stamped_headers=["a"], stamps="x"), "invalid_headers"),
    ],
    ids=[
        "too-large",
        "empty",
        "pickle",
        "yaml",
        "codec",
        "encoding-int",
        "compressed",
        "no-task",
        "no-id",
        "id-list",
        "id-long",
        "task-int",
        "retries-str",
        "retries-neg",
        "timelimit-str",
        "timelimit-neg",
        "eta-object",
        "eta-text",
        "eta-9999",
        "expires-year-1",
        "ignore-result-str",
        "stamped-int",
        "stamps-str",
    ],
)
def test_raw_refusals(call, reason):
    assert call() == reason


def test_a_countdown_eta_passes():
    assert _raw(json.dumps(GOOD).encode(), eta="2026-11-29T10:00:00.123456+00:00") is None


def test_size_is_checked_first_so_a_huge_body_is_never_kept_whole():
    refusal = refuse_raw(b"x" * 1025, "application/x-yaml", None, None, LIMITS)
    assert refusal is not None and refusal.reason == "too_large"


def test_the_limit_is_inclusive():
    assert _raw(b"x" * 1024) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"args": []},
        [1, 2, 3],
        [[], {}],
        "text",
        None,
        [{}, {}, {}],
        [[], [], {}],
        [[], {}, {"callbacks": [{"task": "aftersales.deadline"}]}],
        [[], {}, {"chain": [{"task": "x"}]}],
    ],
    ids=[
        "object",
        "ints",
        "two",
        "string",
        "null",
        "args-object",
        "kwargs-array",
        "callbacks",
        "chain",
    ],
)
def test_bodies_that_are_not_args_kwargs_embed_are_refused(payload):
    refusal = refuse_decoded(payload, LIMITS)
    assert refusal is not None and refusal.reason == "invalid_task_message"


def _nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):  # `depth` containers, objects and arrays by turns
        value = {"k": value} if level % 2 else [value]
    return value


def test_depth_counts_every_container_and_needs_no_recursion():
    assert not depth_exceeds(_nested(8), 8)
    assert depth_exceeds(_nested(9), 8)
    assert depth_exceeds(_nested(100_000), 32)  # far past the interpreter's recursion limit
    refusal = refuse_decoded([[_nested(7)], {}, {}], LIMITS)
    assert refusal is not None and refusal.reason == "too_deep"


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_instants_out_of_range_are_a_validation_error_not_an_overflow(text):
    with pytest.raises(ValueError, match="outside the accepted range"):
        parse_timestamp(text)


def test_instants_in_range_parse_to_utc():
    assert parse_timestamp("1970-01-01T01:00:00+01:00").isoformat() == "1970-01-01T00:00:00+00:00"
    assert parse_timestamp("2999-12-31T23:59:59Z").year == 2999


def test_lone_surrogates_anywhere_are_refused():
    for payload in ([["\ud800"], {}, {}], [[{"a\udfff": 1}], {}, {}]):
        refusal = refuse_decoded(payload, LIMITS)
        assert refusal is not None and refusal.reason == "invalid_unicode"
    assert refuse_decoded([["\U0001f600 \u202e"], {}, {}], LIMITS) is None  # valid text


@pytest.mark.parametrize("bad", ["o\x00", "o\n1", "\u202eo", "o\u2066", "o\ud800"])
def test_ids_with_control_or_bidi_characters_are_invalid(bad):
    from pydantic import TypeAdapter, ValidationError

    from schemas.types import Identifier

    with pytest.raises(ValidationError, match=r"must not hold control|unicode"):
        TypeAdapter(Identifier).validate_python(bad)
    assert TypeAdapter(Identifier).validate_python("ord-\u00e9\U0001f600") == "ord-\u00e9\U0001f600"


@pytest.mark.parametrize(
    ("name", "raw", "field", "expected"),
    [
        ("AFTERSALES_MAX_MESSAGE_BYTES", None, "max_message_bytes", 262144),
        ("AFTERSALES_MAX_MESSAGE_BYTES", "1000", "max_message_bytes", 1000),
        ("AFTERSALES_MAX_MESSAGE_DEPTH", None, "max_message_depth", 32),
        ("AFTERSALES_MAX_MESSAGE_DEPTH", "12", "max_message_depth", 12),
    ],
)
def test_limits_come_from_the_environment(monkeypatch, name, raw, field, expected):
    from worker.settings import Settings

    if raw is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, raw)
    assert getattr(Settings.from_env(), field) == expected


@pytest.mark.parametrize("name", ["AFTERSALES_MAX_MESSAGE_BYTES", "AFTERSALES_MAX_MESSAGE_DEPTH"])
def test_a_bad_limit_stops_start_up(monkeypatch, name):
    from worker.settings import Settings, SettingsError

    monkeypatch.setenv(name, "0")
    with pytest.raises(SettingsError, match=name):
        Settings.from_env()


@pytest.mark.parametrize("occurred", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_the_received_hook_reads_no_facts_from_an_out_of_range_time(occurred):
    # It raised OverflowError in the task_received hook before.
    from worker.service_layer.backlog import message_facts

    assert message_facts([{"order_id": "o", "occurred_at": occurred}]) is None
    assert message_facts([{"order_id": "o", "occurred_at": "2026-01-01T00:00:00Z"}]) is not None


def test_surrogates_are_looked_for_only_when_the_raw_body_escapes_one():
    pair = json.dumps([["\U0001f600"], {}, {}])  # ensure_ascii: "\ud83d\ude00", a valid pair
    assert "\\ud83d" in pair and refuse_decoded(json.loads(pair), LIMITS, pair.encode()) is None
    lone = json.dumps([["\ud800"], {}, {}])
    refusal = refuse_decoded(json.loads(lone), LIMITS, lone.encode())
    assert refusal is not None and refusal.reason == "invalid_unicode"
