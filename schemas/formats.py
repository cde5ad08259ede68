"""Format versions of everything this worker stores, and the rule for one it cannot read.

Stored data outlives releases (docs/operations.md, "Upgrades"): this release reads every
format any release wrote, and leaves alone what a newer release wrote.

- **order state**, the `state` field of `aftersales:order:{id}` (held messages are in
  it). 1: release 1.0 (policy inline, windows in elapsed days, no `published`); 2: 1.1
  and 1.2 (compact, policy by reference; the inline form of unreleased 1.1 commits reads
  as 2 too); 3: 1.2, a state that uses a field or value of contract 1.2 (an offer, a
  replacement, units asked a second time that the request they resubmit does not tell),
  stamped `"format": 3`.
- **outbox entry**, the values of `aftersales:outbox:entries`: 1.
- **dead-letter body**, the messages the worker writes to `aftersales.dead_letter`: 1.
- **schedule entry**, the members `[order, deadline]` of `aftersales:deadlines*`: 1, by
  shape.

A version is written as `"format": N` in the JSON object itself, so it always travels
with the data it describes. Versions 1 and 2 of the order state carry none: release 1.1
refuses any key it does not know (its models forbid extras), so writing one would stop
1.1 workers still running during a rolling upgrade; their shapes tell them apart. For the
same reason a deadline's `known_at` (1.2) is not in the state at all but beside it, in
the order hash's `known` field (worker/adapters/state_codec.py). The
outbox entry and the dead-letter body carry `"format": 1` from 1.2 on (1.1 reads them by
key and ignores it). A schedule member is a JSON array read by position: a new form would
be a new key.

**Newer than known.** A form whose version is above `KNOWN` was written by a newer
release: this one raises `NewerFormat`, and the caller leaves the data as it is and lets
it come back (an inbound message is retried, a firing waits, an outbox entry stays for the
next relay), never dead-letters it or rewrites it. During a rolling upgrade the newer
workers take it. Hence expand, then contract: a release first learns to read a new form
(and keeps writing the old one, `WRITTEN`), and only a later release, once no older
worker runs, writes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from schemas import dead_letters

FORMAT_KEY = "format"

ORDER_STATE = "order_state"
OUTBOX_ENTRY = "outbox_entry"
DEAD_LETTER = "dead_letter"
SCHEDULE_ENTRY = "schedule_entry"

KNOWN: Mapping[str, int] = {ORDER_STATE: 3, OUTBOX_ENTRY: 1, DEAD_LETTER: 1, SCHEDULE_ENTRY: 1}
"""The newest version of each form this release reads."""

WRITTEN: Mapping[str, int] = {
    ORDER_STATE: 2,
    OUTBOX_ENTRY: 1,
    DEAD_LETTER: dead_letters.FORMAT,  # schemas/ builds the body and may not import worker/
    SCHEDULE_ENTRY: 1,
}
"""The version of each form this release writes: one the previous release reads."""

UNMARKED: Mapping[str, int] = {ORDER_STATE: 2, OUTBOX_ENTRY: 1, DEAD_LETTER: 1, SCHEDULE_ENTRY: 1}
"""Versions written without a `format` key (order state 1 is told apart by its shape)."""

ORDER_STATE_FIELDS_SINCE: Mapping[int, frozenset[str]] = {
    3: frozenset({"second_tries", "offer", "replacement_tracking"}),
}
"""Order-state keys (at any depth: a request's) that only format N and later have, by N.
A new optional field goes here under the next version (and KNOWN is raised to it): the
compact form leaves a field at its default out, so a state that does not use the field is
still written in the older format, which older releases read; one that uses it is written
with `"format": N`, which they leave for a newer worker. Format 3 is contract 1.2's
(offers, replacements, per-unit rejections). This table and the next are read at import
into the quick test on the state's text (`_NEWER_WORDS`, `_NEWER_STARTS`): a change made
while running (a test's patch) reaches `stamp` and `state_version`, not that test."""

ORDER_STATE_VALUES_SINCE: Mapping[int, frozenset[str]] = {
    3: frozenset(
        {
            "reshipment",
            "exchange",
            "offered",
            "replacing",
            "replaced",
            "replacement_ship",
            "offer_response",
        }
    ),
}
"""`kind` and `status` values that only format N and later have (new request kinds and
statuses, new deadline kinds), by N."""


def state_version(data: Any) -> int:
    """The oldest order-state format that can carry `data` (its compact JSON object)."""
    version = UNMARKED[ORDER_STATE]
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for since, names in ORDER_STATE_FIELDS_SINCE.items():
                if since > version and names & item.keys():
                    version = since
            for since, values in ORDER_STATE_VALUES_SINCE.items():
                found = {item.get("kind"), item.get("status")} & values
                if since > version and found:
                    version = since
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return version


def state_json_needs_stamp(text: str) -> bool:
    """Whether `stamp` could add anything to the order state whose JSON text is `text`:
    False only when this release writes the unmarked version and no key or value of a
    newer format appears in the text, quoted as JSON writes it (a quick test on the text
    the state is written as instead of a walk through the object: `state_codec.encode`
    then writes the text as it is)."""
    if WRITTEN[ORDER_STATE] != UNMARKED[ORDER_STATE]:
        return True
    if not any(start in text for start in _NEWER_STARTS):  # most states: five short scans
        return False
    return _NEWER_WORDS.search(text) is not None


_NEWER = sorted(
    frozenset().union(*ORDER_STATE_FIELDS_SINCE.values(), *ORDER_STATE_VALUES_SINCE.values())
)
_NEWER_WORDS = re.compile("|".join(re.escape(f'"{word}"') for word in _NEWER))
"""A key or value of a newer format, quoted as JSON writes it."""

_NEWER_STARTS = tuple(sorted({f'"{word[:3]}' for word in _NEWER}))
"""The first three letters of each, after the quote: a text holding none of them holds
none of the words (`str.find` on a short needle is faster than the pattern's search)."""


class NewerFormat(Exception):
    """Stored data in a format a newer release wrote: leave it, let it come back."""

    def __init__(self, form: str, version: Any) -> None:
        super().__init__(
            f"{form} in format {version!r}, newer than this release reads ({KNOWN[form]}):"
            " left for a newer worker"
        )
        self.form = form
        self.version = version


def version_of(form: str, data: Mapping[str, Any]) -> int:
    """The format version of a stored object; NewerFormat if this release cannot read it."""
    version = data.get(FORMAT_KEY, UNMARKED[form])
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NewerFormat(form, version)  # not a version this release ever wrote
    if version > KNOWN[form]:
        raise NewerFormat(form, version)
    return version


def stamp(form: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the version this release writes, unless that version is unmarked. An
    order state gets the oldest version that carries its fields (`state_version`)."""
    version = WRITTEN[form]
    if form == ORDER_STATE:
        version = max(version, state_version(data))
    if version != UNMARKED[form]:
        data[FORMAT_KEY] = version
    return data


def marked(form: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its version always written (forms every reader ignores it in)."""
    data[FORMAT_KEY] = WRITTEN[form]
    return data
