"""The AsyncAPI 3.0 document of the wire contract, generated from the pydantic models.

`aftersales schemas --asyncapi docs/asyncapi.yaml` writes it; a test fails when the
checked-in file differs from what the models give, so regenerate it after changing a
model. The worker is the application described: it receives the inbound tasks on
`aftersales.inbound` and sends CloudEvents to the topic exchange `aftersales.events`.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from schemas.events import EVENT_DATA, CloudEvent
from worker.adapters import topology
from worker.contract.client import message_models, task_for_type

CONTRACT_VERSION = "1.2.0"
"""Version of the wire contract the document describes (README: "Sending a message")."""

REF = "#/components/schemas/{model}"

CELERY_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Celery task protocol 2 headers; `task` picks the task.",
    "required": ["task", "id"],
    "properties": {"id": {"type": "string", "description": "Celery task id."}},
}


def _asyncapi_schema(schema: Any) -> Any:
    """pydantic's JSON Schema as an AsyncAPI Schema Object (JSON Schema draft-07 based):
    there `discriminator` is the property name, not OpenAPI's {propertyName, mapping}."""
    if isinstance(schema, dict):
        fixed = {key: _asyncapi_schema(value) for key, value in schema.items()}
        if isinstance(fixed.get("discriminator"), dict):
            fixed["discriminator"] = fixed["discriminator"]["propertyName"]
        return fixed
    if isinstance(schema, list):
        return [_asyncapi_schema(value) for value in schema]
    return schema


def _component_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(a $ref per inbound type and event data type, every schema under components)."""
    inbound = message_models()
    keys, defs = models_json_schema(
        [*((model, "validation") for model in inbound.values()),
         *((model, "serialization") for model in EVENT_DATA.values()),
         (CloudEvent, "serialization")],
        ref_template=REF,
    )  # fmt: skip
    refs = {name: keys[(model, "validation")] for name, model in inbound.items()}
    refs |= {name: keys[(model, "serialization")] for name, model in EVENT_DATA.items()}
    refs["CloudEvent"] = keys[(CloudEvent, "serialization")]
    return refs, _asyncapi_schema(defs["$defs"])


def _inbound_message(message_type: str, ref: dict[str, Any]) -> dict[str, Any]:
    task = task_for_type()[message_type]
    headers = {**CELERY_HEADERS, "required": [*CELERY_HEADERS["required"]]}
    headers["properties"] = {**CELERY_HEADERS["properties"], "task": {"const": task}}
    return {
        "name": message_type,
        "title": f"{message_type} (task {task})",
        "summary": f"The one positional argument of the Celery task {task}.",
        "contentType": "application/json",
        "headers": headers,
        "payload": ref,
    }


def _event_message(event_type: str, data_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": event_type,
        "title": f"CloudEvent {event_type}",
        "summary": f"Routing key `{event_type}`; the `id` is the same for the same outcome.",
        "contentType": "application/json",
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="CloudEvent")},
                {"type": "object", "properties": {"type": {"const": event_type},
                                                  "data": data_ref}},
            ]
        },
    }  # fmt: skip


def document() -> dict[str, Any]:
    refs, schemas = _component_schemas()
    inbound_types = list(message_models())
    messages = {t: _inbound_message(t, refs[t]) for t in inbound_types}
    messages |= {t: _event_message(t, refs[t]) for t in EVENT_DATA}
    operations: dict[str, Any] = {}
    for task in dict.fromkeys(task_for_type().values()):
        types = [t for t in inbound_types if task_for_type()[t] == task]
        operations[task] = {
            "action": "receive",
            "channel": {"$ref": "#/channels/inbound"},
            "summary": f"Celery task {task}: {', '.join(types)}.",
            "messages": [{"$ref": f"#/channels/inbound/messages/{t}"} for t in types],
        }
    for event_type in EVENT_DATA:
        operations[f"publish.{event_type}"] = {
            "action": "send",
            "channel": {"$ref": "#/channels/events"},
            "summary": f"Publishes {event_type} with routing key {event_type}.",
            "messages": [{"$ref": f"#/channels/events/messages/{event_type}"}],
            "bindings": {"amqp": {"cc": [event_type], "deliveryMode": 2}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "aftersales",
            "version": CONTRACT_VERSION,
            "description": (
                "After-sales worker: Celery tasks in (task protocol 2, JSON, one positional "
                "argument, sent to queue aftersales.inbound with Celery's default routing), "
                "CloudEvents 1.0 out (topic exchange aftersales.events, routing key = type). "
                "Generated from the pydantic models by `aftersales schemas --asyncapi`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "127.0.0.1:6379",
                "protocol": "redis",
                "description": "AFTERSALES_REDIS_URL (kombu's Redis transport); "
                "AFTERSALES_BROKER_URL for another broker such as RabbitMQ.",
            }
        },
        "channels": {
            "inbound": {
                "address": topology.INBOUND,
                "title": "Inbound tasks",
                "description": "Direct exchange and routing key of the same name.",
                "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in inbound_types},
            },
            "events": {
                "address": topology.EVENTS,
                "title": "Outbound events",
                "description": "Durable topic exchange; bind your own queue (`#`, `refund.#`).",
                "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in EVENT_DATA},
                "bindings": {"amqp": {"is": "routingKey", "exchange": {
                    "name": topology.EVENTS, "type": "topic", "durable": True}}},
            },
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }  # fmt: skip


def document_yaml() -> str:
    header = "# Generated by `aftersales schemas --asyncapi docs/asyncapi.yaml`; do not edit.\n"
    return header + str(yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100))
