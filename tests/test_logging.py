"""E-mail addresses never reach the logs, even cut short; node names stay readable."""

from __future__ import annotations

import pytest

from worker.logging import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jane.buyer@example.com", "<redacted-email>"),
        ("args=({'email': 'jane@example.co.uk'},)", "args=({'email': '<redacted-email>'},)"),
        ("...'email': 'jane.1234@exa...", "...'email': '<redacted-email>"),
        ("celery@vm ready.", "celery@vm ready."),
        ("Connected to redis://:**@127.0.0.1:6379/0", "Connected to redis://:**@127.0.0.1:6379/0"),
        (
            "to redis://default:**@cache.example.com:6379",
            "to redis://default:**@cache.example.com:6379",
        ),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
