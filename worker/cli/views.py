"""Readable renderings of the operator views (`aftersales order`, `aftersales dead-letters`).

They take the JSON-able dicts of `worker.cli.ops` (what `--json` prints), so the two outputs
never disagree, and render them with rich: tables on a terminal, plain text in a pipe.
Times are shown in UTC and, where an order has a marketplace, in its local time, since
answer windows and business hours are counted there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from schemas.types import parse_timestamp

ERROR_WIDTH = 160
"""Characters of a dead letter's error shown in the table; `--json` has all of it."""

OPEN_RETURN_STATUSES = frozenset(
    {"requested", "approved", "rejected", "appealed", "offered", "replacing"}  # 1.2: +2
)
"""Return requests still waiting for someone (see worker/rules/state.py)."""


def utc_text(value: str | None) -> str:
    if not value:
        return "-"
    return parse_timestamp(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def local_text(value: str | None, zone: str) -> str:
    if not value:
        return "-"
    local = parse_timestamp(value).astimezone(ZoneInfo(zone))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def _zone(state: Mapping[str, Any]) -> str:
    policy = state.get("policy") or {}
    return str(policy.get("timezone") or "UTC")


def _summary(view: Mapping[str, Any]) -> Text:
    state = view["state"]
    order = state.get("order") or {}
    text = Text.assemble(("Order ", "bold"), (view["order_id"], "bold cyan"))
    text.append(f"  version {view['version']}")
    if order:
        text.append(f"  {order.get('marketplace', '?')} {order.get('currency', '')}")
        text.append(f"  {order.get('payment_method', '')}")
    text.append(f"  times: UTC and {_zone(state)}\n")
    for label, key in (("placed", None), ("paid", "paid_at"), ("ready to ship", "ready_to_ship_at"),
                       ("shipped", "shipped_at"), ("delivered", "delivered_at")):  # fmt: skip
        when = order.get("placed_at") if key is None else state.get(key)
        if when:
            text.append(f"  {label}: {utc_text(when)}\n")
    cancellation = state.get("cancellation")
    if cancellation:
        refund = cancellation.get("refund")
        text.append(
            f"  cancelled by {cancellation['by']} at {utc_text(cancellation['at'])}"
            f" (refund {refund if refund is not None else 'none'})\n",
            style="yellow",
        )
    return text


def _timeline(entries: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Timeline", title_justify="left", expand=False)
    for column in ("processed (UTC)", "occurred (UTC)", "input", "result", "events"):
        table.add_column(column)
    for entry in entries:
        result = str(entry.get("result", ""))
        if entry.get("dead_letters"):
            result += f", {entry['dead_letters']} dead-lettered"
        table.add_row(
            utc_text(entry.get("at")),
            utc_text(entry.get("occurred_at")),
            str(entry.get("input", "")),
            Text(result, style="green" if result == "applied" else "yellow"),
            ", ".join(entry.get("events") or []) or "-",
        )
    return table


def open_requests(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cancel request and return requests still waiting, with their answer deadline."""
    rows = []
    cancel = state.get("cancel_request")
    if cancel and cancel.get("status") == "open":
        rows.append({"request": "cancellation", "status": "open",
                     "respond_by": cancel.get("respond_by")})  # fmt: skip
    for request_id, request in sorted((state.get("returns") or {}).items()):
        if request.get("status") in OPEN_RETURN_STATUSES:
            rows.append(
                {
                    "request": f"return {request_id} ({request.get('kind')})",
                    "status": request["status"],
                    # 1.2: an offer waits for the buyer, by the offer's own respond_by.
                    "respond_by": (request.get("offer") or {}).get("respond_by")
                    if request["status"] == "offered"
                    else request.get("respond_by"),
                }
            )
    return rows


def _requests(state: Mapping[str, Any], zone: str) -> Table:
    table = Table(title="Open requests", title_justify="left")
    for column in ("request", "status", f"respond by ({zone})", "respond by (UTC)"):
        table.add_column(column)
    for row in open_requests(state):
        respond_by = row["respond_by"]
        local = local_text(respond_by, zone) if respond_by else "until ready to ship"
        table.add_row(row["request"], row["status"], local, utc_text(respond_by))
    return table


def _deadlines(deadlines: Iterable[Mapping[str, Any]], zone: str) -> Table:
    table = Table(title="Pending deadlines", title_justify="left")
    for column in ("deadline", "for", f"due ({zone})", "due (UTC)"):
        table.add_column(column)
    for deadline in deadlines:
        table.add_row(
            str(deadline["kind"]),
            str(deadline.get("ref") or "-"),
            local_text(deadline["due_at"], zone),
            utc_text(deadline["due_at"]),
        )
    return table


def order_renderable(view: Mapping[str, Any]) -> RenderableType:
    state = view["state"]
    zone = _zone(state)
    parts: list[RenderableType] = [_summary(view), _timeline(view["timeline"])]
    parts.append(_requests(state, zone) if open_requests(state) else Text("No open requests."))
    if view["deadlines"]:
        parts.append(_deadlines(view["deadlines"], zone))
    else:
        parts.append(Text("No pending deadlines."))
    for parked in view["parked"]:
        parts.append(
            Text(
                f"parked: {parked['type']} {parked['message_id']} waiting for "
                f"{parked['waiting_for']}",
                style="yellow",
            )
        )
    if view["in_flight"]:
        parts.append(Text(f"in flight: {len(view['in_flight'])} message(s)"))
    return Group(*parts)


def dead_letters_renderable(letters: Sequence[Mapping[str, Any]]) -> RenderableType:
    if not letters:
        return Text("No dead letters.")
    table = Table(title=f"Dead letters (oldest first, {len(letters)} shown)", title_justify="left")
    for column in ("#", "dead-lettered (UTC)", "task", "reason", "message", "error"):
        table.add_column(column, overflow="fold")
    for number, letter in enumerate(letters, 1):
        original = letter.get("original")
        message = "-"
        if isinstance(original, Mapping):
            message = " ".join(str(original.get(key) or "?") for key in
                               ("type", "order_id", "message_id"))  # fmt: skip
        error = str(letter.get("error") or "")
        table.add_row(
            str(number),
            utc_text(letter.get("dead_lettered_at")),
            str(letter.get("task") or "-"),
            str(letter.get("reason") or "-"),
            message,
            error[:ERROR_WIDTH] + ("…" if len(error) > ERROR_WIDTH else ""),
        )
    return table


def print_renderable(renderable: RenderableType, console: Console | None = None) -> None:
    (console or Console(highlight=False)).print(renderable)
