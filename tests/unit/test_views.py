"""The operator views off a terminal: one record per line, tab-separated, ids whole; on a
terminal the rich tables as before (worker/cli/views.py)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from worker.cli.views import (
    ERROR_WIDTH,
    dead_letters_lines,
    dead_letters_renderable,
    order_lines,
    order_renderable,
)

LONG_ID = "m-" + "0123456789abcdef" * 4  # wider than any column of an 80-column table


def letter(message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "dead_lettered_at": "2026-03-02T10:00:00Z",
        "task": "aftersales.order_event",
        "reason": "invalid_message",
        "error": "1 validation error for OrderPaid\nunexpected\n  Extra inputs are not permitted",
        "original": {"type": "order.paid", "order_id": "o-1", "message_id": message_id},
        **fields,
    }


def on_terminal(renderable: Any, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(renderable)
    return out.getvalue()


def test_a_dead_letter_is_one_line_that_grep_finds_by_its_whole_message_id() -> None:
    letters = [letter(LONG_ID), letter("m-2", reason="too_deep", error="nested\t900 deep")]

    lines = dead_letters_lines(letters)

    assert lines[0] == "Dead letters (oldest first, 2 shown)"
    assert lines[1].split("\t") == [
        "#",
        "dead-lettered (UTC)",
        "task",
        "reason",
        "message",
        "error",
    ]
    (found,) = [line for line in lines if LONG_ID in line]  # `| grep <message id>`
    fields = found.split("\t")
    assert fields[:5] == [
        "1",
        "2026-03-02 10:00:00 UTC",
        "aftersales.order_event",
        "invalid_message",
        f"order.paid o-1 {LONG_ID}",
    ]
    assert fields[5] == (
        "1 validation error for OrderPaid unexpected Extra inputs are not permitted"
    )  # the line breaks of the error do not split the record
    assert lines[3].split("\t")[3:] == ["too_deep", "order.paid o-1 m-2", "nested 900 deep"]
    assert len(lines) == 4


def test_a_long_error_is_cut_in_both_forms_and_an_empty_field_shows_a_dash() -> None:
    (line,) = dead_letters_lines([letter("m-1", error="x" * 500, task=None)])[2:]
    fields = line.split("\t")
    assert fields[2] == "-"
    assert fields[5] == "x" * ERROR_WIDTH + "…"


def test_no_dead_letters_says_so() -> None:
    assert dead_letters_lines([]) == ["No dead letters."]
    assert "No dead letters." in on_terminal(dead_letters_renderable([]))


def test_on_a_terminal_the_dead_letters_are_still_a_table() -> None:
    shown = on_terminal(dead_letters_renderable([letter(LONG_ID)]))
    assert "Dead letters" in shown and "┃" in shown  # a drawn table
    assert LONG_ID not in shown  # folded to fit 80 columns: what a pipe must not get
    assert LONG_ID in "".join(
        cell.strip(" │") for line in shown.splitlines() for cell in line.split("│")[5:6]
    )


VIEW: dict[str, Any] = {
    "order_id": "o-1",
    "version": 3,
    "state": {
        "order": {
            "marketplace": "UK",
            "currency": "GBP",
            "payment_method": "prepaid",
            "placed_at": "2026-03-02T10:00:00Z",
        },
        "paid_at": "2026-03-02T11:00:00Z",
        "policy": {"timezone": "Europe/London"},
        "returns": {
            "r-1": {
                "status": "requested",
                "kind": "refund_only",
                "respond_by": "2026-03-05T12:00:00Z",
            }
        },
    },
    "timeline": [
        {
            "at": "2026-03-02T10:00:01Z",
            "occurred_at": "2026-03-02T10:00:00Z",
            "input": "order.placed",
            "result": "applied",
            "events": [],
        },
        {
            "at": "2026-03-04T12:00:01Z",
            "occurred_at": "2026-03-04T12:00:00Z",
            "input": "buyer.return_requested",
            "result": "applied",
            "events": ["return.requested"],
        },
    ],
    "deadlines": [{"kind": "return_response", "ref": "r-1", "due_at": "2026-03-05T12:00:00Z"}],
    "parked": [{"type": "order.shipped", "message_id": LONG_ID, "waiting_for": "order.placed"}],
    "in_flight": [],
}


def test_an_order_off_a_terminal_is_its_summary_then_each_table_one_row_a_line() -> None:
    lines = order_lines(VIEW)

    assert lines[0].startswith("Order o-1  version 3  UK GBP  prepaid")
    assert "placed: 2026-03-02 10:00:00 UTC" in lines
    start = lines.index("Timeline")
    assert lines[start + 1].split("\t")[2] == "input"
    assert lines[start + 3].split("\t") == [
        "2026-03-04 12:00:01 UTC",
        "2026-03-04 12:00:00 UTC",
        "buyer.return_requested",
        "applied",
        "return.requested",
    ]
    requests = lines.index("Open requests")
    assert lines[requests + 2].split("\t") == [
        "return r-1 (refund_only)",
        "requested",
        "Thu 2026-03-05 12:00 GMT",
        "2026-03-05 12:00:00 UTC",
    ]
    deadlines = lines.index("Pending deadlines")
    assert lines[deadlines + 2].split("\t")[:2] == ["return_response", "r-1"]
    assert f"parked: order.shipped {LONG_ID} waiting for order.placed" in lines


def test_an_order_on_a_terminal_is_still_drawn_as_tables() -> None:
    shown = on_terminal(order_renderable(VIEW), width=200)
    for title in ("Timeline", "Open requests", "Pending deadlines"):
        assert title in shown
    assert "┃" in shown
