"""Reading a publish file: JSON lines or a JSON array, each message with its line."""

from __future__ import annotations

import json

from worker.cli.send import Entry, read_entries, send_entries

PAID = {
    "message_id": "m-1",
    "type": "order.paid",
    "order_id": "o-1",
    "occurred_at": "2026-01-01T10:00:00Z",
}


def test_json_lines_keep_their_line_numbers_and_name_bad_json():
    text = "\n".join([json.dumps(PAID), "", "{not json", json.dumps([1])]) + "\n"

    entries = list(read_entries(text))

    assert [(e.line, e.error is None) for e in entries] == [(1, True), (3, False), (4, True)]
    assert entries[0].message == PAID


def test_an_array_gives_the_line_each_element_starts_on():
    text = "\n[\n" + json.dumps(PAID) + ",\n" + json.dumps(PAID, indent=2) + "\n]\n"

    entries = list(read_entries(text))

    assert [e.line for e in entries] == [3, 4]
    assert all(e.message == PAID for e in entries)


def test_a_broken_array_is_refused_where_it_breaks():
    entries = list(read_entries("[\n" + json.dumps(PAID) + ",\n{oops}\n]"))

    assert entries[0].message == PAID
    assert entries[1].line == 3 and entries[1].error.startswith("not JSON")


def test_publish_sends_the_valid_names_the_refused_and_keeps_the_pace():
    sent, waits = [], []
    entries = [
        Entry(1, PAID),
        Entry(2, {**PAID, "type": "order.lost"}),
        Entry(3, error="bad"),
        Entry(4, {**PAID, "message_id": "m-2"}),
        Entry(5, "a string"),
    ]

    summary = send_entries(entries, sent.append, rate=2, clock=lambda: 0.0, sleep=waits.append)

    assert [m.message_id for m in sent] == ["m-1", "m-2"]
    assert summary.sent == 2
    assert [line for line, _ in summary.refused] == [2, 3, 5]
    assert "type" in summary.refused[0][1]
    assert waits == [0.0, 0.5]  # the second send is due half a second after the first
