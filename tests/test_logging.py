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


LEVEL_SCRIPT = """
import logging
from worker import logging as wl
wl.setup_logging()
log = wl.get_logger()
log.info("first")  # structlog caches this logger as it is now, at INFO
wl.follow_celery_level(loglevel=logging.WARNING)
log.info("info below WARNING")
log.debug("debug below WARNING")
log.log(logging.INFO, "log() below WARNING")
log.bind(order_id="o-1").info("bound below WARNING")
log.warning("a warning")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("an exception")
print("enabled", log.bind().is_enabled_for(logging.INFO), log.bind().get_effective_level())
wl.follow_celery_level(loglevel="DEBUG")  # a name, as a string
log.debug("debug at DEBUG")
wl.follow_celery_level(loglevel="NOT-A-LEVEL")  # left as it is
log.debug("debug still shown")
"""


def test_celery_loglevel_applies_to_the_workers_own_lines_even_a_logger_used_before():
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", LEVEL_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "AFTERSALES_LOG_FORMAT": "json"},
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("first", "info"),
        ("a warning", "warning"),
        ("an exception", "error"),
        ("debug at DEBUG", "debug"),
        ("debug still shown", "debug"),
    ], done.stderr
    assert "ZeroDivisionError" in lines[2]["exception"]
    assert done.stdout.split() == ["enabled", "False", str(30)]


CONCURRENT_SCRIPT = """
import os
from worker import logging as wl
wl.setup_logging()
log = wl.get_logger()
for i in range(3000):
    log.info("deadline fired", order_id=f"o-{os.getpid()}-{i}", kind="unpaid_expiry")
"""


def test_lines_from_processes_sharing_stderr_stay_whole():
    """Pool processes share the worker's stderr. Unbuffered (PYTHONUNBUFFERED=1, as the
    Dockerfile sets), a line and its newline written apart interleave between processes
    and break the JSON lines a log shipper reads: each line is one write."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AFTERSALES_LOG_FORMAT": "json"}
    read_end, write_end = os.pipe()
    writers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT], stderr=write_end, env=env)
        for _ in range(2)
    ]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    records = [json.loads(line) for line in lines]  # raises on a broken line
    assert len(records) == 6000
    assert len({record["order_id"] for record in records}) == 6000
