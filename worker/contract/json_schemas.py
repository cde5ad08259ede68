"""JSON Schemas of the wire contract, for producers and consumers in other languages.

`json_schemas()` is pure (relative file name -> schema); `write_schemas()` writes them.
Inbound and policy schemas describe what is accepted (pydantic's validation mode);
outbound event schemas describe what is sent (serialization mode).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import EVENT_DATA, CloudEvent
from schemas.inbound import ANY_MESSAGE, TASK_MESSAGES, InboundMessage
from schemas.policy import MarketplacePolicy

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def message_models() -> dict[str, type[BaseModel]]:
    """Each inbound message type (`order.placed`, ...) and its model."""
    union = typing.get_args(InboundMessage)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        (message_type,) = typing.get_args(model.model_fields["type"].annotation)
        models[message_type] = model
    return models


def _policy_file_schema() -> dict[str, Any]:
    # The file is `[marketplaces.<CODE>]` sections; each takes MarketplacePolicy's keys.
    class PolicyFile(BaseModel):
        model_config = {"extra": "forbid", "title": "AFTERSALES_POLICY_FILE (TOML)"}
        marketplaces: dict[str, MarketplacePolicy] = {}

    return PolicyFile.model_json_schema(mode="validation")


def _titled(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DIALECT, **schema, "title": title, "description": description}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every schema of the contract, by the relative path it is written to."""
    files: dict[str, dict[str, Any]] = {}
    for task_name, adapter in TASK_MESSAGES.items():
        files[f"inbound/{task_name}.json"] = _titled(
            adapter.json_schema(mode="validation"),
            task_name,
            f"The single positional argument of the Celery task {task_name}.",
        )
    for message_type, model in message_models().items():
        files[f"inbound/messages/{message_type}.json"] = _titled(
            model.model_json_schema(mode="validation"),
            message_type,
            f"Inbound message of type {message_type}.",
        )
    files["events/cloudevent.json"] = _titled(
        CloudEvent.model_json_schema(mode="serialization"),
        "CloudEvent",
        "Envelope of every event published to the topic exchange aftersales.events.",
    )
    for event_type, data_model in EVENT_DATA.items():
        files[f"events/data/{event_type}.json"] = _titled(
            data_model.model_json_schema(mode="serialization"),
            event_type,
            f"The `data` of a CloudEvent of type {event_type}.",
        )
    files["policy/marketplace.json"] = _titled(
        MarketplacePolicy.model_json_schema(mode="validation"),
        "MarketplacePolicy",
        "One [marketplaces.<CODE>] section of the policy file; durations are ISO 8601.",
    )
    files["policy/policy-file.json"] = _titled(
        _policy_file_schema(),
        "Policy file",
        "The TOML file named by AFTERSALES_POLICY_FILE, as a JSON document.",
    )
    files["inbound/any.json"] = _titled(
        ANY_MESSAGE.json_schema(mode="validation"),
        "Inbound message",
        "Any inbound message, discriminated by `type`.",
    )
    return files


def write_schemas(out_dir: Path) -> list[Path]:
    written = []
    for relative, schema in sorted(json_schemas().items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written
