# mypy: disallow-untyped-calls=False
# (kombu, whose topic matching and serializer this reuses, is unannotated)
"""Outbound events written to their queues by the commit itself (docs/design.md).

Used when the broker is the state's own Redis: commit.lua pushes each event onto the
lists of the queues bound to `aftersales.events` in the same atomic step that commits the
state, so an event is published if and only if its state change committed, and there is
no separate publish and confirm round trip.

Consumers must not see a difference, so everything is kombu's Redis transport's own:
- routing: the bindings kombu keeps in the set `_kombu.binding.aftersales.events`
  (members "routing key SEP regex SEP queue"), matched by kombu's own TopicExchange;
- the message: the JSON value kombu's JSON serializer writes, as a base64 body; the
  properties and delivery info `Producer.publish` + `Channel.basic_publish` write, one
  delivery tag shared by every queue's copy, LPUSH onto the queue's list (priority 0: the
  plain list name). Envelope and body are the same JSON values, written by orjson: no
  spaces, and characters beyond ASCII as UTF-8 (the body's declared encoding) instead of
  `\\u` escapes. What orjson refuses (a lone surrogate) gets kombu's serializer's bytes.

The bindings are cached; the commit checks them (SCARD and SISMEMBER of the members used)
and refuses with "rebind" when they changed, then the store re-reads them and commits
again: a newly bound queue gets every event committed after its binding, as with kombu.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
import redis
from kombu.serialization import dumps as serialize
from kombu.transport.redis import Channel
from kombu.transport.virtual.exchange import TopicExchange
from kombu.utils.json import JSONEncoder

from worker.adapters import compact_json, topology
from worker.adapters.cloudevents_json import JSON, serializer_for

ENCODER = JSONEncoder()
"""kombu's JSON encoder, made once: `kombu.utils.json.dumps(x)` is `JSONEncoder().encode(x)`
with a new encoder per call (both the event's serializers use it)."""

SEP = Channel.sep
BINDINGS = Channel.keyprefix_queue % topology.EVENTS
"""The set kombu's Redis transport keeps the exchange's bindings in."""


class DirectEvents:
    """Routes events as kombu would and builds the messages kombu would push."""

    exchange = topology.EVENTS

    def __init__(self, client: redis.Redis, content_type: str = JSON) -> None:
        self.client = client
        self.serializer = serializer_for(content_type)
        # The serializer's content type and encoding, as kombu's registry gives them.
        self.content_type, self.content_encoding, _ = serialize({}, serializer=self.serializer)
        self._members: list[bytes] = []
        self._table: list[tuple[str, ...]] = []
        self._topic = TopicExchange(None)  # its lookup uses no channel
        self._routes: dict[str, list[str]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read the bindings (at start, and when a commit saw them change)."""
        # our clients answer bytes (no decode_responses); str too, for any other client
        members = sorted(_bytes(member) for member in self.client.smembers(BINDINGS))
        self._members = members
        self._table = [tuple(member.decode().split(SEP)) for member in members]
        self._routes = {}

    @property
    def members(self) -> list[bytes]:
        """The binding members the current routes were resolved from (checked by the commit)."""
        return self._members

    def queues(self, routing_key: str) -> list[str]:
        """The queues kombu's topic exchange delivers `routing_key` to (sorted, cached)."""
        queues = self._routes.get(routing_key)
        if queues is None:
            found = self._topic.lookup(self._table, self.exchange, routing_key, None)
            queues = self._routes[routing_key] = sorted(q for q in found if q)
        return queues

    def body(self, event: dict[str, Any]) -> bytes:
        """The body's bytes: the JSON value kombu's serializer writes, by orjson (4 µs to
        0.4 µs an event) when the declared encoding is UTF-8, as orjson writes; what orjson
        refuses, and any other encoding, as kombu's serializer writes it.

        The same value for what `event_body` gives: JSON's own types (`model_dump(mode=
        "json")`). For three others the two differ, and no event holds them: a NaN or an
        infinity (orjson: null; kombu: NaN), a `uuid.UUID` (orjson: its text; kombu: an
        object its consumers turn back into a UUID), a plain Enum (orjson: its value;
        kombu: a TypeError)."""
        if self.content_encoding == "utf-8":
            try:
                return orjson.dumps(event, option=compact_json.STRICT)
            except orjson.JSONEncodeError:  # a lone surrogate: kombu's \u escape
                pass
        return ENCODER.encode(event).encode(self.content_encoding)

    def message(self, event: dict[str, Any]) -> str:
        """The JSON kombu's Redis transport pushes for KombuPublisher.publish_event: the
        same JSON values as kombu's, written by orjson without the spaces after `,` and
        `:` (kombu's JSON took a third of a message's cost, and most of the rest)."""
        payload = self.body(event)
        return compact_json.dumps(
            {
                "body": base64.b64encode(payload).decode(),
                "content-encoding": self.content_encoding,
                "content-type": self.content_type,
                "headers": {"ce_id": event["id"], "ce_type": event["type"]},
                "properties": {
                    "message_id": event["id"],
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": self.exchange, "routing_key": event["type"]},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": delivery_tag(),
                },
            }
        )

    def pushes(self, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(queue list key, message) for every copy of every event, in event order."""
        return [
            (queue, message)
            for event in events
            for message in [self.message(event)]
            for queue in self.queues(event["type"])
        ]


def delivery_tag() -> str:
    """A random (version 4) UUID's text, as kombu's `uuid()` gives a delivery tag: the
    same form and randomness (os.urandom), without building a UUID object (half of it)."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]  # RFC 4122: the two top bits are 10
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
