"""The cheap checks a task message passes before Celery builds a request from it.

Celery's task strategy trusts its input: an empty body, a JSON object instead of
`[args, kwargs, embed]` or a deeply nested argument raise inside the consumer (the worker
exits) or in a pool callback (the message is acked and lost). Everything here looks only
at the raw body, the properties and the decoded JSON, and answers with a `Refusal` (a
dead-letter reason and a readable error) or None. See docs/input-safety.md.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.dead_letters import DeadLetterReason

# The only content accepted (JSON task protocol 2, docs/input-safety.md); encodings are those
# that name UTF-8. Any other encoding is refused: kombu would hand the body to
# `codecs.decode`, where names like "zlib_codec" decompress without bound.
JSON = "application/json"
UTF8_NAMES = frozenset({"utf-8", "utf8"})

# Protocol 2 embed keys that make the worker send further tasks; producers have no use
# for them and they would let a message start any task with any arguments.
WORKFLOW_KEYS = ("callbacks", "errbacks", "chain", "chord")

# Header fields Celery reads in the consumer, with the types it can survive.
_OPTIONAL_TEXT = (
    "root_id",
    "parent_id",
    "group",
    "shadow",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "lang",
    "eta",
    "expires",
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A tuple, not `list | tuple | dict`: isinstance with a union is ~3 times slower.
_CONTAINERS = (list, tuple, dict)
# Longest task id accepted: a UUID is 36 characters; ids are keys in Redis hashes.
MAX_TASK_ID = 255


@dataclass(frozen=True)
class Refusal:
    reason: DeadLetterReason
    error: str


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_depth: int


def refuse_raw(
    body: Any,
    content_type: str | None,
    content_encoding: str | None,
    headers: Any,
    limits: Limits,
) -> Refusal | None:
    """Checks on what arrived, before anything is decoded."""
    size = len(body) if isinstance(body, bytes | bytearray | str) else 0
    if size > limits.max_bytes:  # first: whatever else is wrong, it is not kept whole
        return Refusal(
            "too_large",
            f"body of {size} bytes exceeds the limit of "
            f"{limits.max_bytes} bytes (AFTERSALES_MAX_MESSAGE_BYTES)",
        )
    if not isinstance(headers, Mapping) or not headers.get("task"):
        return Refusal("not_a_task", "message has no Celery task header (task protocol 2)")
    if content_type != JSON:
        return Refusal(
            "content_not_allowed", f"content type {content_type!r} is not accepted, only {JSON!r}"
        )
    if content_encoding is not None and not isinstance(content_encoding, str):
        return Refusal("content_not_allowed", "content encoding must be a string")
    if (content_encoding or "utf-8").lower() not in UTF8_NAMES:
        return Refusal(
            "content_not_allowed",
            f"content encoding {content_encoding!r} is not accepted, only 'utf-8'",
        )
    if headers.get("compression"):
        return Refusal("content_not_allowed", "compressed bodies are not accepted")
    if not size:
        return Refusal("undecodable", "empty body: a task body is the JSON [args, kwargs, embed]")
    return _refuse_headers(headers)


def _refuse_headers(headers: Mapping[str, Any]) -> Refusal | None:
    task, task_id = headers.get("task"), headers.get("id")
    if not isinstance(task, str):
        return Refusal("invalid_headers", "header 'task' must be a string")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID:
        return Refusal(
            "invalid_headers", f"header 'id' must be a string of 1 to {MAX_TASK_ID} characters"
        )
    for name in _OPTIONAL_TEXT:
        if headers.get(name) is not None and not isinstance(headers[name], str):
            return Refusal("invalid_headers", f"header {name!r} must be a string or null")
    for name in ("eta", "expires"):
        if headers.get(name) is not None and not _sane_instant(headers[name]):
            return Refusal(
                "invalid_headers", f"header {name!r} must be an ISO 8601 time between 1970 and 2999"
            )
    stamped, stamps = headers.get("stamped_headers"), headers.get("stamps")
    if stamped is not None and not (
        isinstance(stamped, list) and all(isinstance(name, str) for name in stamped)
    ):
        return Refusal("invalid_headers", "header 'stamped_headers' must be a list of names")
    if stamps is not None and not isinstance(stamps, dict):
        return Refusal("invalid_headers", "header 'stamps' must be an object")
    retries = headers.get("retries")
    if retries is not None and (type(retries) is not int or retries < 0):
        return Refusal("invalid_headers", "header 'retries' must be a whole number >= 0")
    if not _valid_timelimit(headers.get("timelimit")):
        return Refusal("invalid_headers", "header 'timelimit' must be [soft, hard] seconds")
    if headers.get("ignore_result") not in (None, True, False):
        return Refusal("invalid_headers", "header 'ignore_result' must be a boolean")
    return None


def _sane_instant(value: str) -> bool:
    """Celery turns `eta`/`expires` into epoch seconds; one it cannot convert makes it
    reject the message without a trace (strategy.py), so refuse it here with a reason."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return 1970 <= moment.year < 3000


def _valid_timelimit(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, list | tuple) or len(value) != 2:
        return False
    return all(v is None or (type(v) in (int, float) and 0 < v < 1e9) for v in value)


def refuse_decoded(payload: Any, limits: Limits, raw: Any = None) -> Refusal | None:
    """Checks on the decoded body: depth and text first (nothing else may recurse or
    encode), then the protocol 2 shape. `raw`, the body as received, lets the text check
    be skipped when it holds no surrogate escape at all (nearly always)."""
    refusal = inspect(payload, limits.max_depth, text=_may_hold_surrogates(raw))
    if refusal is not None:
        return refusal
    if not (isinstance(payload, list) and len(payload) == 3):
        return Refusal(
            "invalid_task_message",
            f"task body must be the JSON array [args, kwargs, embed], not {_kind(payload)}",
        )
    args, kwargs, embed = payload
    if not (isinstance(args, list) and isinstance(kwargs, dict) and isinstance(embed, dict)):
        return Refusal(
            "invalid_task_message",
            f"task body must be [array, object, object], not "
            f"[{_kind(args)}, {_kind(kwargs)}, {_kind(embed)}]",
        )
    if any(embed.get(key) for key in WORKFLOW_KEYS):
        return Refusal(
            "invalid_task_message", "callbacks, errbacks, chains and chords are not accepted"
        )
    return None


def _may_hold_surrogates(raw: Any) -> bool:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    # Valid UTF-8 cannot hold a surrogate: only a JSON escape (\ud800 to \udfff) can.
    return not isinstance(raw, bytes | bytearray) or bool(_SURROGATE_ESCAPE.search(raw))


def inspect(value: Any, max_depth: int, text: bool = True) -> Refusal | None:
    """`too_deep` if containers nest more than `max_depth` levels (the outer one is level
    1); with `text`, `invalid_unicode` if a string or key holds a lone surrogate (JSON's
    "\\ud800"), which no UTF-8 encoder (Redis, the event publisher) accepts.

    Level by level, without recursion, so that a value too deep for recursion is
    measured all the same; the inner loops are list operations, cheap for wide bodies.
    """
    level, items = 1, [value]
    while items:
        if text and any(isinstance(x, str) and _SURROGATE.search(x) for x in items):
            return Refusal("invalid_unicode", "a string holds a lone UTF-16 surrogate")
        containers = [x for x in items if isinstance(x, _CONTAINERS)]
        if containers and level > max_depth:
            return Refusal(
                "too_deep",
                f"JSON nesting deeper than {max_depth} levels (AFTERSALES_MAX_MESSAGE_DEPTH)",
            )
        items = []
        for container in containers:
            if isinstance(container, dict):
                items.extend(container)  # keys: text to check
                items.extend(container.values())
            else:
                items.extend(container)
        level += 1
    return None


def depth_exceeds(value: Any, limit: int) -> bool:
    refusal = inspect(value, limit)
    return refusal is not None and refusal.reason == "too_deep"


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)


def raw_original(body: bytes | bytearray | str, keep: int | None = None) -> dict[str, Any]:
    """A body as a dead letter keeps it: UTF-8 text, else base64; cut to `keep` bytes (with
    its length and SHA-256) when it was refused for its size."""
    whole = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    extra: dict[str, Any] = {}
    if keep is not None:
        extra = {
            "length": len(whole),
            "sha256": hashlib.sha256(whole).hexdigest(),
            "truncated": len(whole) > keep,
        }
        whole = whole[:keep]
    try:
        return {"text": whole.decode("utf-8"), **extra}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(whole).decode("ascii"), **extra}
