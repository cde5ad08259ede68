"""Return labels: scannable, printable, deterministic, and written atomically once."""

from __future__ import annotations

import io
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pypdf
import pytest
import segno
import zxingcpp
from PIL import Image

from tests.labels.decoding import decode, pdf_barcodes, uri_path
from worker.adapters import labels
from worker.adapters.label_store import FileLabelStore, MemoryLabelStore, UnsafeLabelName
from worker.adapters.labels import (
    LabelSpec,
    label_file_names,
    make_label,
    qr_content,
    render_label_pdf,
    render_qr_png,
    render_qr_svg,
    tracking_number,
)

VALID_UNTIL = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)


def a_spec(**overrides: Any) -> LabelSpec:
    fields: dict[str, Any] = {
        "order_id": f"ORD-{uuid.uuid4().hex[:10]}",
        "request_id": f"RR-{uuid.uuid4().hex[:10]}",
        "carrier": "Evri",
        "seller_id": f"SELLER-{uuid.uuid4().hex[:6]}",
        "cost": Decimal("2.99"),
        "currency": "GBP",
        "payer": "buyer",
        "valid_until": VALID_UNTIL,
        "issued_at": datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return LabelSpec.for_return(**fields)


# --- tracking number and QR content -------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def test_tracking_number_is_deterministic_with_a_check_digit() -> None:
    number = tracking_number("Evri", "ORD-1", "RR-1")

    assert number == tracking_number("Evri", "ORD-1", "RR-1")
    assert number[:2] == "EV"
    assert len(number) == 16 and number[2:].isdigit()
    assert luhn_valid(number[2:])


def test_tracking_number_differs_per_request_order_and_carrier() -> None:
    numbers = {
        tracking_number("Evri", "ORD-1", "RR-1"),
        tracking_number("Evri", "ORD-1", "RR-2"),
        tracking_number("Evri", "ORD-2", "RR-1"),
        tracking_number("Evri", "ORD-1|RR", "1"),  # a separator inside an id cannot collide
        tracking_number("Evri", "ORD-1", "RR|1"),
    }
    assert len(numbers) == 5
    assert tracking_number("Royal Mail", "ORD-1", "RR-1").startswith("RO")


def test_qr_content_is_versioned_and_escapes_separators() -> None:
    content = qr_content("Evri", "EV123", "ORD|1", "ré/../x")

    assert content == "RET1|Evri|EV123|ORD%7C1|r%C3%A9%2F..%2Fx"
    assert [unquote(part) for part in content.split("|")] == [
        "RET1",
        "Evri",
        "EV123",
        "ORD|1",
        "ré/../x",
    ]


def test_spec_refuses_naive_times_and_negative_cost() -> None:
    with pytest.raises(ValueError, match="aware"):
        a_spec(valid_until=datetime(2026, 12, 10))
    with pytest.raises(ValueError, match="non-negative"):
        a_spec(cost=Decimal("-1"))


# --- rendering ----------------------------------------------------------------------------


def test_qr_png_decodes_to_exactly_the_qr_content() -> None:
    spec = a_spec()

    image = Image.open(io.BytesIO(render_qr_png(spec.qr_content)))

    assert decode(image) == [(zxingcpp.BarcodeFormat.QRCode, spec.qr_content)]
    qr = segno.make_qr(spec.qr_content, error="m")
    assert image.size == qr.symbol_size(scale=labels.QR_SCALE, border=labels.QR_BORDER)
    assert labels.QR_SCALE >= 4


def test_qr_png_of_the_longest_ids_still_decodes() -> None:
    spec = a_spec(order_id="Ø" * 128, request_id="../" * 42 + "xy")

    image = Image.open(io.BytesIO(render_qr_png(spec.qr_content)))

    assert decode(image) == [(zxingcpp.BarcodeFormat.QRCode, spec.qr_content)]


def test_qr_svg_is_xml_of_the_right_size() -> None:
    spec = a_spec()

    root = ET.fromstring(render_qr_svg(spec.qr_content))

    side = segno.make_qr(spec.qr_content, error="m").symbol_size(
        scale=labels.QR_SCALE, border=labels.QR_BORDER
    )
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (float(root.attrib["width"]), float(root.attrib["height"])) == side


def test_pdf_is_one_4x6_page_with_the_label_text() -> None:
    spec = a_spec(payer="seller", cost=Decimal("6.99"))

    reader = pypdf.PdfReader(io.BytesIO(render_label_pdf(spec)))

    assert len(reader.pages) == 1
    page = reader.pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (288, 432)
    text = page.extract_text()
    for expected in (
        spec.tracking_number,
        spec.request_id,
        spec.order_id,
        "Evri",
        "Valid until 2026-12-10",
        f"Buyer of order {spec.order_id}",
        spec.recipient,
        "6.99 GBP, paid by seller",
    ):
        assert expected in text


def test_pdf_barcodes_decode_to_the_tracking_number_and_qr_content() -> None:
    spec = a_spec()

    found = pdf_barcodes(render_label_pdf(spec))

    assert found == {
        (zxingcpp.BarcodeFormat.Code128, spec.tracking_number),
        (zxingcpp.BarcodeFormat.QRCode, spec.qr_content),
    }


def test_pdf_is_byte_identical_for_the_same_spec() -> None:
    spec = a_spec()

    first = render_label_pdf(spec)

    assert render_label_pdf(spec) == first
    assert render_label_pdf(spec, qr_png=render_qr_png(spec.qr_content)) == first


def test_pdf_survives_ids_the_core_fonts_cannot_print() -> None:
    spec = a_spec(order_id="W" * 128, request_id="漢字\n\t" + "W" * 120, seller_id="W" * 128)

    reader = pypdf.PdfReader(io.BytesIO(render_label_pdf(spec)))

    assert len(reader.pages) == 1
    assert spec.tracking_number in reader.pages[0].extract_text()


# --- make_label: idempotent, safe names ---------------------------------------------------


def test_make_label_twice_writes_once_and_returns_the_same_uris(tmp_path: Path) -> None:
    store = FileLabelStore(tmp_path / "labels")
    spec = a_spec()

    first = make_label(store, spec)
    files = [uri_path(first.qr_png_uri), uri_path(first.qr_svg_uri), uri_path(first.pdf_uri)]
    before = [(path.read_bytes(), path.stat().st_mtime_ns) for path in files]
    second = make_label(store, spec)

    assert second == first
    assert [(path.read_bytes(), path.stat().st_mtime_ns) for path in files] == before
    assert sorted(path.name for path in (tmp_path / "labels").iterdir()) == sorted(
        label_file_names(spec.order_id, spec.request_id)
    )


def test_make_label_renders_nothing_when_the_files_exist() -> None:
    store = MemoryLabelStore()
    spec = a_spec()
    make_label(store, spec)

    make_label(store, spec)

    assert store.puts == 3


def test_make_label_completes_a_run_that_crashed_half_way(tmp_path: Path) -> None:
    store = FileLabelStore(tmp_path)
    spec = a_spec()
    png_name, _, _ = label_file_names(spec.order_id, spec.request_id)
    store.put(png_name, render_qr_png(spec.qr_content))

    made = make_label(store, spec)

    assert all(uri_path(uri).is_file() for uri in (made.qr_svg_uri, made.pdf_uri))
    pdf = uri_path(made.pdf_uri).read_bytes()
    assert pdf == render_label_pdf(spec)


def test_concurrent_make_label_yields_one_set_of_files(tmp_path: Path) -> None:
    store = FileLabelStore(tmp_path)
    spec = a_spec()
    results: list[labels.LabelFiles] = []
    threads = [
        threading.Thread(target=lambda: results.append(make_label(store, spec))) for _ in range(8)
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == 1
    assert len(list(tmp_path.iterdir())) == 3
    assert uri_path(results[0].pdf_uri).read_bytes() == render_label_pdf(spec)


# Traversal, absolute paths, NUL (also inside), Windows separators, URL-encoded dots,
# RTL overrides, a line break, shell-looking names, and ids of the longest length the
# schema allows (128; it refuses lone surrogates, so they never reach a label).
HOSTILE_IDS = [
    "../../etc/x",
    "/etc/passwd",
    "..",
    ".",
    "a/../../b",
    "\0",
    "a\0/../b",
    "..\\..\\win.ini",
    "%2e%2e%2fetc%2fpasswd",
    "\u202e../\u202d",
    "line\nbreak",
    "~root",
    "-rf",
    " ",
    "x" * 128,
    "../" * 42 + "..",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_stay_inside_the_store_root(tmp_path: Path, hostile: str) -> None:
    root = tmp_path / "root"
    store = FileLabelStore(root)

    made = make_label(store, a_spec(order_id=hostile, request_id=hostile))

    for uri in (made.qr_png_uri, made.qr_svg_uri, made.pdf_uri):
        assert uri_path(uri).parent == root.resolve()
        assert len(uri_path(uri).name) <= 200 and not uri_path(uri).name.startswith(".")
    assert {path.parent for path in tmp_path.rglob("*") if path.is_file()} == {root}


def test_file_names_differ_for_ids_that_sanitise_alike() -> None:
    assert label_file_names("O", "a/b") != label_file_names("O", "a_b")
    assert label_file_names("O|x", "y") != label_file_names("O", "x|y")


# --- FileLabelStore -----------------------------------------------------------------------


def test_file_store_creates_its_root_and_answers_file_uris(tmp_path: Path) -> None:
    store = FileLabelStore(tmp_path / "a" / "b")

    uri = store.put("x.pdf", b"%PDF")

    assert uri.startswith("file://") and uri == store.uri("x.pdf")
    assert uri_path(uri).read_bytes() == b"%PDF"
    assert store.get("x.pdf") == b"%PDF" and store.exists("x.pdf")
    assert store.get("y.pdf") is None and not store.exists("y.pdf")
    assert store.put("x.pdf", b"%PDF") == uri  # same name, same bytes: fine


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x..y", "a\\b", "x" * 201])
def test_file_store_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    store = FileLabelStore(tmp_path)

    with pytest.raises(UnsafeLabelName):
        store.put(name, b"data")


def test_a_crash_before_the_rename_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLabelStore(tmp_path)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.put("x.pdf", b"%PDF-1.4 half")

    assert not store.exists("x.pdf") and store.get("x.pdf") is None
    assert list(tmp_path.iterdir()) == []


def test_a_hard_kill_mid_write_never_shows_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileLabelStore(tmp_path)
    store.put("x.pdf", b"old, complete")

    def killed(fd: int) -> None:  # the process dies after writing, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put("x.pdf", b"new, half")
    monkeypatch.undo()

    assert store.get("x.pdf") == b"old, complete"
    assert [path.name for path in tmp_path.iterdir()] == ["x.pdf"]


def test_written_files_are_complete_and_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    FileLabelStore(tmp_path).put("x.pdf", b"data")

    assert len(synced) == 2  # the file, then its directory entry
