"""`aftersales schemas OUTDIR`: a JSON Schema for every part of the wire contract."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from schemas.events import EVENT_DATA
from schemas.inbound import TASK_MESSAGES, TYPES_BY_TASK
from worker.cli.main import main


def test_schemas_writes_one_file_per_task_message_event_and_the_policy(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", str(tmp_path)])

    assert result.exit_code == 0, result.output
    written = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.json")}
    expected = {
        *(f"inbound/{task}.json" for task in TASK_MESSAGES),
        *(f"inbound/messages/{t}.json" for types in TYPES_BY_TASK.values() for t in types),
        *(f"events/data/{event_type}.json" for event_type in EVENT_DATA),
        "events/cloudevent.json",
        "policy/marketplace.json",
        "policy/policy-file.json",
        "inbound/any.json",
    }
    assert written == expected
    assert set(result.output.split()) == {str(tmp_path / name) for name in expected}


def test_a_task_schema_accepts_exactly_the_contracts_types(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["schemas", str(tmp_path)], catch_exceptions=False)

    for task, types in TYPES_BY_TASK.items():
        schema = json.loads((tmp_path / "inbound" / f"{task}.json").read_text())
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert set(schema["discriminator"]["mapping"]) == set(types), task
