"""docs/asyncapi.yaml: what the models give (drift), and a valid AsyncAPI 3.0 document."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from schemas.events import EVENT_DATA
from worker.cli.main import main
from worker.contract.asyncapi import document
from worker.contract.client import message_models, task_for_type

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "docs" / "asyncapi.yaml"
SPEC_SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SPEC_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_checked_in_document_is_what_the_models_give(tmp_path):
    generated = tmp_path / "asyncapi.yaml"
    result = CliRunner().invoke(main, ["schemas", "--asyncapi", str(generated)])

    assert result.exit_code == 0, result.output
    assert generated.read_text() == CHECKED_IN.read_text(), (
        "docs/asyncapi.yaml is stale: run `aftersales schemas --asyncapi docs/asyncapi.yaml`"
    )


def test_the_checked_in_document_is_valid_asyncapi_3(validator):
    errors = list(validator.iter_errors(yaml.safe_load(CHECKED_IN.read_text())))

    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["operations"]["aftersales.order_event"].update(action="publish"),  # 2.x
        lambda d: d["components"]["messages"]["order.paid"].update(payload={"type": 5}),
        lambda d: d.pop("info"),
    ],
)
def test_the_validator_refuses_a_broken_document(validator, breakage):
    broken = copy.deepcopy(yaml.safe_load(CHECKED_IN.read_text()))
    breakage(broken)

    assert list(validator.iter_errors(broken)) != []


def test_every_message_and_event_type_is_described_and_routed():
    doc = document()

    inbound = doc["channels"]["inbound"]["messages"]
    assert set(inbound) == set(message_models())
    assert set(doc["channels"]["events"]["messages"]) == set(EVENT_DATA)
    for message_type, task in task_for_type().items():
        message = doc["components"]["messages"][message_type]
        assert message["headers"]["properties"]["task"] == {"const": task}
        receiving = doc["operations"][task]["messages"]
        assert {"$ref": f"#/channels/inbound/messages/{message_type}"} in receiving
    for event_type in EVENT_DATA:
        assert doc["operations"][f"publish.{event_type}"]["bindings"]["amqp"]["cc"] == [event_type]


def test_schemas_needs_a_target():
    result = CliRunner().invoke(main, ["schemas"])

    assert result.exit_code != 0 and "OUT_DIR" in result.output


def test_every_reference_in_the_document_resolves():
    doc = yaml.safe_load(CHECKED_IN.read_text())

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(doc))
    assert len(found) > 50
    for ref in found:
        target = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]
