"""Return labels for drop-off returns (rule 9, docs/labels.md): tracking number, QR code, PDF.

Everything here is deterministic: the same approval processed twice yields the same
tracking number, the same QR content and byte-identical files under the same names, so
the label task can be retried freely and `make_label` skips work already done.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal
from urllib.parse import quote

import segno
from barcode import Code128
from fpdf import FPDF
from PIL import Image

from worker.adapters.label_store import LabelStore

__all__ = [
    "QR_FORMAT_VERSION",
    "LabelFiles",
    "LabelSpec",
    "label_file_names",
    "make_label",
    "qr_content",
    "render_label_pdf",
    "render_qr_png",
    "render_qr_svg",
    "tracking_number",
]

Payer = Literal["buyer", "seller"]

QR_FORMAT_VERSION = "RET1"  # first field of the QR payload; bump when the layout changes
# segno pixels per module: >= 4 px keeps modules crisp on phone screens without resampling.
QR_SCALE = 8
QR_BORDER = 4  # the quiet zone ISO/IEC 18004 requires around a QR code
# Random digits in a tracking number; with the Luhn digit the number is 14 digits long.
_TRACKING_DIGITS = 13
# Code 128 raster: 3 px per module and 10 modules of quiet zone each side (the spec's
# minimum), tall enough that a hand scanner need not be aimed.
_BAR_MODULE_PX = 3
_BAR_QUIET_MODULES = 10
_BAR_HEIGHT_PX = 90
# Page: 4 x 6 in, the size thermal label printers at drop-off counters take.
PAGE_MM = (101.6, 152.4)
_MARGIN_MM = 5.0


def tracking_number(carrier: str, order_id: str, request_id: str) -> str:
    """A stand-in for a carrier's tracking allocation, deterministic per return.

    Two letters from the carrier ("Evri" -> "EV"), 13 digits from a SHA-256 of the
    carrier, order and request ids, and a Luhn check digit: "EV" + 14 digits. A real
    carrier integration replaces this with an API call keyed by the same ids, so a
    retried approval still gets one number.
    """
    letters = re.sub(r"[^A-Z]", "", carrier.upper())
    prefix = (letters + "XX")[:2]
    # JSON keeps the parts apart: ids may themselves contain any separator.
    digest = hashlib.sha256(json.dumps([carrier, order_id, request_id]).encode()).digest()
    body = str(int.from_bytes(digest, "big") % 10**_TRACKING_DIGITS).zfill(_TRACKING_DIGITS)
    return f"{prefix}{body}{_luhn_digit(body)}"


def _luhn_digit(digits: str) -> int:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10


def qr_content(carrier: str, tracking_number: str, order_id: str, request_id: str) -> str:
    """`RET1|<carrier>|<tracking number>|<order id>|<request id>`.

    Each field is percent-encoded (RFC 3986: letters, digits and `-._~` stay as they
    are), so a `|` inside an id cannot shift the fields and the payload stays ASCII. A
    counter scanner splits on `|` and unquotes each field.
    """
    fields = (QR_FORMAT_VERSION, carrier, tracking_number, order_id, request_id)
    return "|".join(quote(field, safe="") for field in fields)


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What is printed on a label. `issued_at` (the approval time) dates the PDF."""

    order_id: str
    request_id: str
    carrier: str
    tracking_number: str
    qr_content: str
    valid_until: datetime
    sender: str  # "Buyer of order <id>": no buyer address is known to the worker
    recipient: str  # the seller id
    cost: Decimal
    currency: str
    payer: Payer
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("valid_until", "issued_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime")
        if not self.cost.is_finite() or self.cost < 0:
            raise ValueError("cost must be a finite, non-negative amount")
        if self.payer not in ("buyer", "seller"):
            raise ValueError(f"payer must be 'buyer' or 'seller', not {self.payer!r}")

    @classmethod
    def for_return(
        cls,
        *,
        order_id: str,
        request_id: str,
        carrier: str,
        seller_id: str,
        cost: Decimal,
        currency: str,
        payer: Payer,
        valid_until: datetime,
        issued_at: datetime | None = None,
    ) -> LabelSpec:
        """The spec of a drop-off return, with its tracking number and QR content derived."""
        number = tracking_number(carrier, order_id, request_id)
        return cls(
            order_id=order_id,
            request_id=request_id,
            carrier=carrier,
            tracking_number=number,
            qr_content=qr_content(carrier, number, order_id, request_id),
            valid_until=valid_until,
            sender=f"Buyer of order {order_id}",
            recipient=seller_id,
            cost=cost,
            currency=currency,
            payer=payer,
            issued_at=issued_at,
        )


@dataclass(frozen=True, slots=True)
class LabelFiles:
    qr_png_uri: str
    qr_svg_uri: str
    pdf_uri: str


def _qr(content: str) -> segno.QRCode:
    # Never Micro QR: many counter scanners and phone apps do not read it. segno raises
    # the error level above M when that fits in the same version, for free.
    return segno.make_qr(content, error="m")


def _save(qr: segno.QRCode, kind: Literal["png", "svg"]) -> bytes:
    out = io.BytesIO()
    qr.save(out, kind=kind, scale=QR_SCALE, border=QR_BORDER)
    return out.getvalue()


def render_qr_png(content: str) -> bytes:
    return _save(_qr(content), "png")


def render_qr_svg(content: str) -> bytes:
    return _save(_qr(content), "svg")


def _code128_image(text: str) -> Image.Image:
    modules: str = Code128(text).build()[0]  # "1" a bar module, "0" a space
    quiet = "0" * _BAR_QUIET_MODULES
    row = bytes(0 if bit == "1" else 255 for bit in quiet + modules + quiet)
    row = bytes(pixel for pixel in row for _ in range(_BAR_MODULE_PX))
    return Image.frombytes("L", (len(row), _BAR_HEIGHT_PX), row * _BAR_HEIGHT_PX)


def _latin1(text: str) -> str:
    """Text the PDF core fonts can print: ids are arbitrary, the fonts are Latin-1."""
    printable = "".join("?" if unicodedata.category(c)[0] == "C" else c for c in text)
    return printable.encode("latin-1", "replace").decode("latin-1")


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """`text` on one line of `width`, shortened in the middle ("...") if it is too long."""
    if pdf.get_string_width(text) <= width:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2 :]
    while head and pdf.get_string_width(f"{head}...{tail}") > width:
        head, tail = (head[:-1], tail) if len(head) >= len(tail) else (head, tail[1:])
    return f"{head}...{tail}"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_label_pdf(spec: LabelSpec, *, qr_png: bytes | None = None) -> bytes:
    """A one-page 4 x 6 in PDF; byte-identical for the same spec.

    `qr_png` lets `make_label` reuse the PNG it has already rendered.
    """
    width, _ = PAGE_MM
    inner = width - 2 * _MARGIN_MM
    pdf = FPDF(unit="mm", format=PAGE_MM)
    pdf.set_creation_date(spec.issued_at or spec.valid_until)
    pdf.set_title(f"Return label {spec.tracking_number}")
    pdf.set_auto_page_break(False)
    pdf.set_margins(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM)
    pdf.add_page()

    pdf.set_font("helvetica", "B", 16)
    pdf.cell(inner / 2, 8, "RETURN")
    pdf.cell(inner / 2, 8, _fit(pdf, _latin1(spec.carrier), inner / 2), align="R")
    pdf.line(_MARGIN_MM, 14, width - _MARGIN_MM, 14)

    qr_side = 56.0
    png = qr_png if qr_png is not None else render_qr_png(spec.qr_content)
    pdf.image(io.BytesIO(png), x=(width - qr_side) / 2, y=16, w=qr_side, h=qr_side)

    bars = _code128_image(spec.tracking_number)
    pdf.image(bars, x=_MARGIN_MM, y=74, w=inner, h=18)
    pdf.set_xy(_MARGIN_MM, 93)
    pdf.set_font("courier", "B", 14)
    pdf.cell(inner, 7, spec.tracking_number, align="C")

    pdf.set_xy(_MARGIN_MM, 102)
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(inner, 6, f"Valid until {_when(spec.valid_until)}")
    payer = "buyer (deducted from the refund)" if spec.payer == "buyer" else "seller"
    lines = (
        f"Carrier: {_latin1(spec.carrier)}",
        f"Postage: {spec.cost:f} {_latin1(spec.currency)}, paid by {payer}",
        f"Return: {_latin1(spec.request_id)}",
        f"Order: {_latin1(spec.order_id)}",
        f"From: {_latin1(spec.sender)}",
        f"To: seller {_latin1(spec.recipient)}",
    )
    pdf.set_font("helvetica", "", 8)
    for index, line in enumerate(lines):
        pdf.set_xy(_MARGIN_MM, 109 + 4.0 * index)
        pdf.cell(inner, 4.0, _fit(pdf, line, inner))
    return bytes(pdf.output())


def label_file_names(order_id: str, request_id: str) -> tuple[str, str, str]:
    """(QR PNG, QR SVG, PDF) names: safe, flat, and unique per order and request.

    Ids are arbitrary strings (`..`, `/`, anything), so they never reach the file system
    as such: a readable slug of the request id for humans, a hash of both for uniqueness.
    """
    digest = hashlib.sha256(json.dumps([order_id, request_id]).encode()).hexdigest()[:24]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", request_id)[:40].strip("_") or "x"
    base = f"return-{slug}-{digest}"
    return f"{base}.qr.png", f"{base}.qr.svg", f"{base}.pdf"


def make_label(store: LabelStore, spec: LabelSpec) -> LabelFiles:
    """Render and store the three files of a label, once per order and request.

    If all three exist, their URIs are returned without rendering: the first complete run
    wins, which is right because a label, once handed out, must not change. A run that
    crashed half-way is redone whole; the PDF is written last.
    """
    png_name, svg_name, pdf_name = label_file_names(spec.order_id, spec.request_id)
    if all(store.exists(name) for name in (png_name, svg_name, pdf_name)):
        return LabelFiles(store.uri(png_name), store.uri(svg_name), store.uri(pdf_name))
    qr = _qr(spec.qr_content)  # encoding (mask choice) costs more than drawing: do it once
    png = _save(qr, "png")
    return LabelFiles(
        qr_png_uri=store.put(png_name, png),
        qr_svg_uri=store.put(svg_name, _save(qr, "svg")),
        pdf_uri=store.put(pdf_name, render_label_pdf(spec, qr_png=png)),
    )
