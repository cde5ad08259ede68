"""Readable renderings of the operator views (`aftersales order`, `aftersales dead-letters`).

They take the JSON-able dicts of `worker.cli.ops` (what `--json` prints), so the outputs
never disagree. On a terminal they are rich tables; off one (a pipe, a file) every record
is one line of tab-separated fields, ids whole, so `aftersales dead-letters | grep <id>`
finds its letter. Times are shown in UTC and, where an order has a marketplace, in its
local time, since answer windows and business hours are counted there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from schemas.types import format_timestamp, parse_timestamp
from worker.rules.timers import REQUEST_STATUS

ERROR_WIDTH = 160
"""Characters of a dead letter's error shown in the table; `--json` has all of it."""

OPEN_RETURN_STATUSES = frozenset(
    {"requested", "approved", "rejected", "appealed", "offered", "replacing"}  # 1.2: +2
)
"""Return requests still waiting for someone (see worker/rules/state.py)."""


@dataclass(frozen=True)
class Listing:
    """A titled table of text: a rich Table on a terminal, tab-separated lines off one."""

    title: str
    columns: tuple[str, ...]
    rows: Sequence[Sequence[str]] = ()
    styles: Mapping[int, Callable[[str], str]] = field(default_factory=dict)
    """Column index -> the rich style of a cell's text (terminal only)."""

    def table(self, **options: Any) -> Table:
        table = Table(title=self.title, title_justify="left", **options)
        for column in self.columns:
            table.add_column(column, overflow="fold")
        for row in self.rows:
            table.add_row(
                *(
                    Text(cell, style=self.styles[index](cell)) if index in self.styles else cell
                    for index, cell in enumerate(row)
                )
            )
        return table

    def lines(self) -> list[str]:
        """The title, the column names, then one line per row; fields are tab-separated,
        with any tab or line break inside a field made a space."""
        return [self.title, _tab_separated(self.columns), *map(_tab_separated, self.rows)]


def _tab_separated(fields: Iterable[str]) -> str:
    return "\t".join(" ".join(str(value).split()) or "-" for value in fields)


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
    terms = view.get("terms")
    if terms:
        same = terms.get("same_as_current")
        note = {True: "as new orders today", False: "placed under an earlier policy"}.get(
            same, "policy file not compared"
        )
        windows = ", ".join(f"{k} {v}" for k, v in terms["windows"].items())
        text.append(f"  terms: policy {terms['policy'][:12]} ({note}): {windows}\n")
    for label, key in (
        ("placed", None),
        ("paid", "paid_at"),
        ("ready to ship", "ready_to_ship_at"),
        ("shipped", "shipped_at"),
        ("delivered", "delivered_at"),
    ):
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


def _timeline(entries: Iterable[Mapping[str, Any]]) -> Listing:
    columns = ("processed (UTC)", "occurred (UTC)", "input", "result", "events")
    rows = []
    for entry in entries:
        result = str(entry.get("result", ""))
        if entry.get("dead_letters"):
            result += f", {entry['dead_letters']} dead-lettered"
        rows.append(
            (
                utc_text(entry.get("at")),
                utc_text(entry.get("occurred_at")),
                str(entry.get("input", "")),
                result,
                ", ".join(entry.get("events") or []) or "-",
            )
        )
    styles = {3: lambda result: "green" if result == "applied" else "yellow"}
    return Listing("Timeline", columns, rows, styles)


def open_requests(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cancel request and return requests still waiting, with the deadline each waits
    for: the cancellation's answer deadline; a return request's first pending timer of its
    status (the seller's answer, the buyer's resubmission, the parcel or the replacement),
    the same the pending deadlines list; None when nothing is timed (an appeal)."""
    rows = []
    cancel = state.get("cancel_request")
    if cancel and cancel.get("status") == "open":
        rows.append(
            {"request": "cancellation", "status": "open", "respond_by": cancel.get("respond_by")}
        )
    for request_id, request in sorted((state.get("returns") or {}).items()):
        if request.get("status") in OPEN_RETURN_STATUSES:
            rows.append(
                {
                    "request": f"return {request_id} ({request.get('kind')})",
                    "status": request["status"],
                    "respond_by": _pending_by(state, request_id, request),
                }
            )
    return rows


def _pending_by(state: Mapping[str, Any], request_id: str, request: Mapping[str, Any]) -> Any:
    """When a return request's pending deadline is due. Its `respond_by` is the seller's
    answer deadline, long past once the request is approved or replacing."""
    status = request["status"]
    due = sorted(
        parse_timestamp(deadline["due_at"])
        for deadline in (state.get("deadlines") or {}).values()
        if deadline.get("ref") == request_id and REQUEST_STATUS.get(deadline["kind"]) == status
    )
    if due:
        return format_timestamp(due[0])
    if status == "requested":  # state saved without its timer: the answer window still runs
        return request.get("respond_by")
    if status == "offered":  # 1.2: an offer waits for the buyer, by the offer's own respond_by
        return (request.get("offer") or {}).get("respond_by")
    return None


def _requests(state: Mapping[str, Any], zone: str) -> Listing:
    rows = []
    for row in open_requests(state):
        respond_by = row["respond_by"]
        untimed = "until ready to ship" if row["request"] == "cancellation" else "-"
        local = local_text(respond_by, zone) if respond_by else untimed
        rows.append((row["request"], row["status"], local, utc_text(respond_by)))
    columns = ("request", "status", f"respond by ({zone})", "respond by (UTC)")
    return Listing("Open requests", columns, rows)


def _deadlines(deadlines: Iterable[Mapping[str, Any]], zone: str) -> Listing:
    rows = [
        (
            str(deadline["kind"]),
            str(deadline.get("ref") or "-"),
            local_text(deadline["due_at"], zone),
            utc_text(deadline["due_at"]),
        )
        for deadline in deadlines
    ]
    return Listing("Pending deadlines", ("deadline", "for", f"due ({zone})", "due (UTC)"), rows)


def _order_parts(view: Mapping[str, Any]) -> list[Text | Listing]:
    state = view["state"]
    zone = _zone(state)
    parts: list[Text | Listing] = [_summary(view), _timeline(view["timeline"])]
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
    return parts


def order_renderable(view: Mapping[str, Any]) -> RenderableType:
    """`aftersales order` on a terminal."""
    parts = _order_parts(view)
    return Group(*(part.table() if isinstance(part, Listing) else part for part in parts))


def order_lines(view: Mapping[str, Any]) -> list[str]:
    """`aftersales order` off a terminal: the summary, then each table as lines."""
    lines: list[str] = []
    for part in _order_parts(view):
        if isinstance(part, Listing):
            lines.extend(part.lines())
        else:
            lines.extend(line.strip() for line in part.plain.splitlines() if line.strip())
    return lines


def _dead_letters(letters: Sequence[Mapping[str, Any]]) -> Listing:
    rows = []
    for number, letter in enumerate(letters, 1):
        original = letter.get("original")
        message = "-"
        if isinstance(original, Mapping):
            keys = ("type", "order_id", "message_id")
            message = " ".join(str(original.get(key) or "?") for key in keys)
        error = str(letter.get("error") or "")
        rows.append(
            (
                str(number),
                utc_text(letter.get("dead_lettered_at")),
                str(letter.get("task") or "-"),
                str(letter.get("reason") or "-"),
                message,
                error[:ERROR_WIDTH] + ("…" if len(error) > ERROR_WIDTH else ""),
            )
        )
    title = f"Dead letters (oldest first, {len(letters)} shown)"
    columns = ("#", "dead-lettered (UTC)", "task", "reason", "message", "error")
    return Listing(title, columns, rows)


def dead_letters_renderable(letters: Sequence[Mapping[str, Any]]) -> RenderableType:
    """`aftersales dead-letters` on a terminal."""
    return _dead_letters(letters).table() if letters else Text("No dead letters.")


def dead_letters_lines(letters: Sequence[Mapping[str, Any]]) -> list[str]:
    """`aftersales dead-letters` off a terminal: one letter per line."""
    return _dead_letters(letters).lines() if letters else ["No dead letters."]


def print_renderable(renderable: RenderableType, console: Console | None = None) -> None:
    (console or Console(highlight=False)).print(renderable)
