"""Log lines are JSON off a terminal, rendered for people on one, or as asked."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys

import pytest

from worker.logging import QuietTicksFilter, log_format

SCRIPT = (
    "import logging\n"
    "from worker.logging import setup_logging, get_logger\n"
    "setup_logging()\n"
    "get_logger().info('order seen', order_id='o-1', email='jane@example.com')\n"
    "logging.getLogger('celery.app.trace').info('Task %(name)s[%(id)s] received',"
    " {'name': 'aftersales.order_event', 'id': 't-1'})\n"
)


def _env(fmt: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    if fmt is not None:
        env["AFTERSALES_LOG_FORMAT"] = fmt
    return env


def _run_piped(fmt: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=_env(fmt), capture_output=True, text=True, timeout=60
    )


def _run_on_terminal(fmt: str | None) -> str:
    """stderr on a pseudo-terminal, as in a developer's shell."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        env=_env(fmt),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(60)
    os.close(controller)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("fmt", [None, "auto", "json"])
def test_off_a_terminal_or_when_asked_every_line_is_json(fmt):
    result = _run_piped(fmt)

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == [
        "order seen",
        "Task aftersales.order_event[t-1] received",
    ]
    assert lines[0]["order_id"] == "o-1" and lines[0]["email"] == "<redacted-email>"


@pytest.mark.parametrize("fmt", [None, "console"])
def test_on_a_terminal_or_when_asked_lines_are_for_people(fmt):
    output = _run_on_terminal(fmt) if fmt is None else _run_piped(fmt).stderr

    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2, output
    assert "order seen" in lines[0] and "order_id" in lines[0] and "o-1" in lines[0]
    assert "jane@" not in output
    assert "Task aftersales.order_event[t-1] received" in lines[1]
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def test_an_unknown_format_stops_start_up_readably():
    result = _run_piped("xml")

    assert result.returncode != 0
    assert "AFTERSALES_LOG_FORMAT='xml'" in result.stderr


def test_auto_follows_the_stream():
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert log_format("auto", Stream(True)) == "console"
    assert log_format("auto", Stream(False)) == "json"
    assert log_format("JSON", Stream(True)) == "json"


def _record(name: str, level: int, msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (
            _record(
                "celery.beat",
                logging.INFO,
                "Scheduler: Sending due task %s (%s)",
                ("aftersales-tick", "aftersales.tick"),
            ),
            False,
        ),
        (
            _record(
                "celery.app.trace",
                logging.INFO,
                "Task %(name)s[%(id)s] succeeded",
                {"name": "aftersales.tick", "id": "1"},
            ),
            False,
        ),
        (
            _record(
                "celery.app.trace",
                logging.INFO,
                "Task %(name)s[%(id)s] succeeded",
                {"name": "aftersales.order_event", "id": "1"},
            ),
            True,
        ),
        (
            _record(
                "celery.app.trace",
                logging.ERROR,
                "Task %(name)s[%(id)s] raised",
                {"name": "aftersales.tick", "id": "1"},
            ),
            True,
        ),
    ],
)
def test_only_info_lines_about_the_tick_are_hidden(record, shown):
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        assert QuietTicksFilter().filter(record) is shown
        root.setLevel(logging.DEBUG)
        assert QuietTicksFilter().filter(record) is True
    finally:
        root.setLevel(level)
