"""The files in examples/ type-check under mypy --strict and do what the docs say.

Their Redis parts run against a real worker in tests/integration/test_examples.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from worker.adapters.label_store import UnsafeLabelName
from worker.contract.client import parse_event, validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def load_example(name: str) -> ModuleType:
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.cpu_heavy
@pytest.mark.timeout(600)
def test_the_examples_type_check_strictly() -> None:
    assert {p.name for p in EXAMPLES} >= {"walkthrough.py", "s3_label_store.py"}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, EXAMPLES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the walkthrough ------------------------------------------------------------------------


def test_the_walkthrough_story_is_valid_in_the_past_and_in_event_order() -> None:
    walkthrough = load_example("walkthrough")
    now = datetime.now(UTC)
    messages = walkthrough.story("ord-42", now)
    for message in messages:
        validate(message, now=now)  # what Producer.send checks before sending
    times = [m.occurred_at for m in messages]
    assert times == sorted(times) and times[-1] < now
    assert [m.type for m in messages][-3:] == [
        "buyer.return_requested",
        "seller.return_approved",
        "buyer.label_email_requested",
    ]


def test_the_walkthrough_finds_the_label_files_of_the_event() -> None:
    walkthrough = load_example("walkthrough")
    event = parse_event(
        {
            "specversion": "1.0",
            "id": "e-1",
            "source": "aftersales",
            "subject": "ord-42",
            "type": "return.label_generated",
            "time": "2026-03-02T10:15:00Z",
            "datacontenttype": "application/json",
            "data": {
                "request_id": "ret-1",
                "carrier": "Evri",
                "tracking_number": "EV1",
                "qr_content": "RET1|Evri|EV1|ord-42|ret-1",
                "qr_png_uri": "file:///srv/var/labels/return-ret-1-ab.qr.png",
                "pdf_uri": "file:///srv/var/labels/return-ret-1-ab.pdf",
                "cost": {"amount": "2.99", "currency": "GBP"},
                "payer": "buyer",
                "valid_until": "2026-03-16T10:15:00Z",
            },
        }
    )
    assert walkthrough.label_files(event) == [
        Path("/srv/var/labels/return-ret-1-ab.qr.png"),
        Path("/srv/var/labels/return-ret-1-ab.pdf"),
    ]


# --- the S3 label store, on an in-memory client ---------------------------------------------


class ClientError(Exception):
    """Shaped like botocore's: the error code in `response["Error"]["Code"]`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.fail_with: str | None = None

    def _check(self) -> None:
        if self.fail_with:
            raise ClientError(self.fail_with)

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        self._check()
        self.objects[Bucket, Key] = (Body, ContentType)

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self._check()
        if (Bucket, Key) not in self.objects:
            raise ClientError("NoSuchKey")
        body = self.objects[Bucket, Key][0]
        return {"Body": type("Body", (), {"read": lambda self: body})()}

    def head_object(self, Bucket: str, Key: str) -> None:
        self._check()
        if (Bucket, Key) not in self.objects:
            raise ClientError("404")


def test_the_s3_store_puts_gets_and_answers_s3_uris() -> None:
    s3 = MemoryS3()
    store = load_example("s3_label_store").S3LabelStore("labels-bucket", client=s3)
    name = "return-ret-1-36a40d475f412871109a9213.pdf"
    assert store.get(name) is None and not store.exists(name)
    uri = store.put(name, b"%PDF-1.4\n")
    assert uri == store.uri(name) == f"s3://labels-bucket/labels/{name}"
    assert store.get(name) == b"%PDF-1.4\n" and store.exists(name)
    assert s3.objects["labels-bucket", f"labels/{name}"][1] == "application/pdf"


def test_the_s3_store_raises_other_errors_and_refuses_unsafe_names() -> None:
    s3 = MemoryS3()
    store = load_example("s3_label_store").S3LabelStore("b", client=s3)
    s3.fail_with = "SlowDown"  # throttling: the label task must see it and retry
    with pytest.raises(ClientError):
        store.exists("return-ret-1-ab.pdf")
    with pytest.raises(ClientError):
        store.get("return-ret-1-ab.pdf")
    with pytest.raises(UnsafeLabelName):
        store.put("../escape.pdf", b"")
