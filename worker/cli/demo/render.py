"""How `aftersales demo` shows an event: one readable line, and a label with its QR code."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import segno
from rich.console import Console
from rich.markup import escape

from worker.contract.client import Event


def _when(value: Any, zone: ZoneInfo) -> str:
    if not isinstance(value, datetime):
        return str(value)
    local, utc = value.astimezone(zone), value.astimezone(ZoneInfo("UTC"))
    return f"{local:%a %d %b %H:%M} {local.tzname()} ({utc:%H:%M} UTC)"


def _money(amount: Any, currency: str = "") -> str:
    return f"{amount} {currency}".strip()


def describe(event: Event, zone: ZoneInfo) -> str:
    """The event's `data` in a few words (markup-escaped for rich)."""
    data: dict[str, Any] = event.data.model_dump()
    kind = event.type
    if kind == "order.cancelled":
        refund = data["refund"]
        paid = _money(refund["amount"], refund["currency"]) if refund else "nothing (unpaid)"
        text = f"by {data['by']}, refund {paid}, seller at fault: {data['seller_fault']}"
    elif kind in ("cancellation.requested", "return.requested"):
        respond_by = data["respond_by"]
        asked = ""
        if "kind" in data:
            asked = f"{data['request_id']} {data['kind']} ({data['reason']}), "
        text = f"{asked}seller must answer by {_when(respond_by, zone) if respond_by else 'ship'}"
    elif kind in ("cancellation.auto_accepted", "return.auto_approved"):
        text = f"the seller did not answer by {_when(data['deadline'], zone)}"
    elif kind == "offer.made":
        offered = data["offer"].replace("_", " ")
        if data["amount"]:
            offered += f" of {_money(data['amount']['amount'], data['amount']['currency'])}"
        respond_by = _when(data["respond_by"], zone)
        text = f"{data['request_id']}: {offered}, buyer must answer by {respond_by}"
    elif kind in ("offer.lapsed", "offer.declined"):
        text = (
            f"{data['request_id']}: back with the seller, who must answer by "
            f"{_when(data['respond_by'], zone)}"
        )
    elif kind == "refund.initiated":
        parts = data["breakdown"]
        text = (
            f"{data['amount']} {data['currency']} = items {parts['items']} + shipping fee "
            f"{parts['shipping_fee']} - return postage {parts['return_shipping_deduction']}"
        )
        if parts.get("return_shipping_refund"):
            text += f" + postage refunded {parts['return_shipping_refund']}"
    elif kind == "return.label_generated":
        text = (
            f"{data['carrier']} {data['tracking_number']}, cost "
            f"{_money(data['cost']['amount'], data['cost']['currency'])} paid by "
            f"{data['payer']}, valid until {_when(data['valid_until'], zone)}"
        )
    else:
        text = ", ".join(f"{key} {value}" for key, value in data.items())
    return escape(f"{event.subject}: {text}")


def local_path(uri: str) -> str:
    """A file:// URI as a path; other URIs (s3://, https://) as they are."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else uri


def show_label(event: Event, console: Console) -> None:
    """The label's files, and its QR code drawn in the terminal (what the carrier scans)."""
    data = event.data.model_dump()
    console.print(f"  QR code PNG: {escape(local_path(data['qr_png_uri']))}")
    console.print(f"  label PDF:   {escape(local_path(data['pdf_uri']))}")
    drawing = io.StringIO()
    segno.make(data["qr_content"], error="m").terminal(out=drawing, compact=True, border=2)
    console.print(drawing.getvalue(), markup=False, highlight=False, end="")
    console.print(f"  (QR content: {escape(data['qr_content'])})")
