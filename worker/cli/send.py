"""`aftersales publish`: inbound messages from a JSON array or JSON-lines text, each
validated, the valid ones sent, paced if asked; refused ones are reported by line.
(The module says "send": in the worker, "publish" is the outbox's, events going out.)

Reading and pacing are here, free of click and of the broker: `read_entries` turns text
into (line, message or error) and `send_entries` drives a `send` callable, so both are tested
without a worker, and the command only wires them to a `Producer` and a progress bar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from worker.contract.client import validate


@dataclass(frozen=True)
class Entry:
    line: int  # 1-based line of the file where the message starts
    message: Any = None
    error: str | None = None  # set when the text there is not JSON


@dataclass
class Summary:
    sent: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _array_entries(text: str, start: int) -> Iterator[Entry]:
    """The elements of the JSON array opening at `start`, each with its starting line."""
    decoder = json.JSONDecoder()
    position = start + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            yield Entry(_line_of(text, position), error="the array is not closed with ]")
            return
        if text[position] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:  # the rest of the array cannot be read
            yield Entry(_line_of(text, exc.pos), error=f"not JSON: {exc.msg}")
            return
        yield Entry(_line_of(text, position), message=value)
        position = end


def read_entries(text: str) -> Iterator[Entry]:
    """A JSON array (when the text starts with `[`) or JSON lines (blank lines skipped)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _array_entries(text, len(text) - len(stripped))
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield Entry(number, message=json.loads(line))
        except json.JSONDecodeError as exc:
            yield Entry(number, error=f"not JSON: {exc.msg}")


def _why(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def check(entry: Entry) -> tuple[Any, str | None]:
    """(the validated message, None) or (None, why it is refused)."""
    if entry.error is not None:
        return None, entry.error
    if not isinstance(entry.message, dict):
        return None, "not a JSON object"
    try:
        return validate(entry.message), None
    except ValidationError as exc:
        return None, _why(exc)


def send_entries(
    entries: Sequence[Entry],
    send: Callable[[Any], object],
    rate: float | None = None,
    advance: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Validate each entry and send the valid ones, at most `rate` a second if given."""
    summary = Summary()
    started = clock()
    for entry in entries:
        message, why = check(entry)
        if why is not None:
            summary.refused.append((entry.line, why))
        else:
            if rate:  # the n-th send is due n/rate seconds after the first
                sleep(max(0.0, started + summary.sent / rate - clock()))
            send(message)
            summary.sent += 1
        advance()
    return summary
