"""One home for dead letters: one body builder (schemas/dead_letters.py), one typed list
of reasons, and nobody else writing a body by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from schemas.dead_letters import DEAD_LETTER_REASONS, dead_letter_body
from worker.rules.codes import ORDER_EXPIRED, REJECTION_CODES

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "errors", "content_type", "stamped", "listed", "typed"),
    [
        (NOW, None, None, "2026-03-02T10:00:00Z", [], None),  # the defaults
        (NOW, [{"loc": ["order_id"]}], "application/json", "2026-03-02T10:00:00Z",
         [{"loc": ["order_id"]}], "application/json"),
        # another offset is written as UTC; microseconds are kept
        (datetime(2026, 3, 2, 12, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2))), [], None,
         "2026-03-02T10:00:00.250000Z", [], None),
    ],
)  # fmt: skip
def test_the_body_keeps_the_original_and_why(now, errors, content_type, stamped, listed, typed):
    body = dead_letter_body(
        "aftersales.order_event", {"message_id": "m-1"}, "bad", "invalid_message", now,
        errors, content_type,
    )  # fmt: skip

    assert body == {
        "task": "aftersales.order_event",
        "reason": "invalid_message",
        "error": "bad",
        "errors": listed,
        "original": {"message_id": "m-1"},
        "content_type": typed,
        "dead_lettered_at": stamped,
    }


def test_every_reason_is_one_snake_case_word_and_none_is_a_rejection_code():
    assert len(set(DEAD_LETTER_REASONS)) == len(DEAD_LETTER_REASONS)
    assert all(reason.replace("_", "").isalpha() for reason in DEAD_LETTER_REASONS)
    assert all(reason.islower() for reason in DEAD_LETTER_REASONS)
    assert not set(DEAD_LETTER_REASONS) & set(REJECTION_CODES)
    assert ORDER_EXPIRED in DEAD_LETTER_REASONS


def test_no_module_writes_a_dead_letter_body_but_the_builder():
    home = ROOT / "schemas" / "dead_letters.py"
    sources = [
        path
        for folder in ("schemas", "worker", "tasks")
        for path in (ROOT / folder).rglob("*.py")
        if path != home
    ]
    written = '"dead_lettered_at":'  # a body's key being set, not read
    by_hand = [str(p.relative_to(ROOT)) for p in sources if written in p.read_text()]

    assert sources and by_hand == []
