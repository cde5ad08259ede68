"""Compact JSON text for what the worker keeps in Redis and reads back itself: the order
state and its `known` field, outbox entries, timeline lines.

orjson writes and reads it several times faster than the standard library (the state's
JSON was a tenth of a firing's CPU, bench/README.md). The text is what
`json.dumps(value, separators=(",", ":"))` writes, but for two things every JSON reader,
every earlier release included, reads the same: characters beyond ASCII are written as
themselves (UTF-8) instead of `\\u` escapes, and some small floats are spelled otherwise
(`1e-7` for `1e-07`, `0.00001` for `1e-05`). Control characters are escaped by both, so the
state's separator (`state_codec.SEPARATOR`) still appears in no JSON text.

Whatever orjson refuses goes to the standard library, which answers as it always did: a
lone surrogate, an integer beyond 64 bits, a key that is not a string, a type orjson would
write but the standard library does not know (a datetime, a dataclass: a `TypeError`
then, as before, unless `default` says how); and on reading, anything orjson does not
parse (`NaN`, a lone surrogate's escape), and any text with a run of 19 digits or more:
orjson reads an integer beyond 64 bits as a float, silently inexact, where the standard
library reads it exactly (a long digit run inside a string only costs the slower read).

Not for text compared byte for byte with what an earlier release wrote (a schedule
member, a digest's input): those stay the standard library's (worker/adapters/keys.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

STRICT = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""Types the standard library does not write (datetimes, dataclasses) and subclasses of
str, int, dict and list go to `default`, or to the standard library, as before."""


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    try:
        return orjson.dumps(value, default=default, option=STRICT).decode()
    except orjson.JSONEncodeError:  # the standard library's answer, text or error
        return json.dumps(value, separators=(",", ":"), default=default)


_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
"""19 digits in a row: a number that may be an integer orjson cannot hold (2**63 has 19).
Found as 19 zeros once every digit is a zero: a fraction of a regular expression's cost."""


def loads(text: str | bytes) -> Any:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _LONG_NUMBER in raw.translate(_DIGITS_AS_ZEROS):
        return json.loads(text)
    try:
        return orjson.loads(raw)  # the bytes already made: not encoded a second time
    except orjson.JSONDecodeError:  # the standard library's answer, value or error
        return json.loads(text)
