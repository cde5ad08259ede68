"""W3C Trace Context (https://www.w3.org/TR/trace-context/) as the wire carries it.

A producer may send `traceparent` (and `tracestate`) as headers of the Celery task
message; every event the message causes carries them as the CloudEvents
distributed-tracing extension attributes of the same names (docs/observability.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

TraceParent = Annotated[str, Field(pattern=TRACEPARENT_PATTERN)]
"""`version-traceid-parentid-flags`, lower-case hex (W3C Trace Context, level 1)."""

TRACESTATE_MAX = 512

TraceState = Annotated[str, Field(min_length=1, max_length=TRACESTATE_MAX)]
"""Vendor entries, passed on unread; 512 characters is the W3C limit propagators keep."""

TRACEPARENT_RE = re.compile(TRACEPARENT_PATTERN)
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16


def trace_context(headers: Mapping[str, Any]) -> dict[str, str]:
    """The valid trace context among `headers`: {"traceparent": …, "tracestate"?: …}, or {}.

    An invalid one (wrong shape, version ff, an all-zero id) is dropped, as the W3C
    specification tells a receiver to: tracing never refuses a message."""
    parent = headers.get("traceparent")
    if not isinstance(parent, str) or not TRACEPARENT_RE.fullmatch(parent):
        return {}
    version, trace_id, parent_id, _ = parent.split("-")
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return {}
    found = {"traceparent": parent}
    state = headers.get("tracestate")
    if isinstance(state, str) and 0 < len(state) <= TRACESTATE_MAX:
        found["tracestate"] = state
    return found


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]
