"""The content type events go out with: `application/json` (the default: what every kombu
consumer decodes) or `application/cloudevents+json`, the CloudEvents AMQP binding's
structured mode (AFTERSALES_EVENT_CONTENT_TYPE; docs/observability.md).

The body is the same CloudEvents JSON object either way; only the content type differs.
kombu knows no `application/cloudevents+json`, so it is registered here as a serializer
of its own (JSON both ways): the worker publishes with it, and a kombu consumer that
registers it too (the typed client does) decodes the body as before.
"""

from __future__ import annotations

from kombu.serialization import register
from kombu.utils.json import dumps, loads

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
CONTENT_TYPES = (JSON, STRUCTURED)

SERIALIZER = "cloudevents_json"
"""kombu's name for the structured-mode content type."""


def register_structured() -> None:
    register(SERIALIZER, dumps, loads, content_type=STRUCTURED, content_encoding="utf-8")


def serializer_for(content_type: str) -> str:
    """kombu's serializer name for an event content type."""
    return SERIALIZER if content_type == STRUCTURED else "json"


register_structured()
