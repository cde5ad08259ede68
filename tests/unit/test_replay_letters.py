"""`aftersales replay` reads two kinds of dead letter: the worker's own, and a task message
RabbitMQ dead-lettered itself under its inbound policy (docs/operations.md#rabbitmq)."""

from __future__ import annotations

from types import SimpleNamespace

from worker.cli.ops import _letter


def test_a_worker_dead_letter_is_read_as_it_is() -> None:
    letter = {"task": "aftersales.order_event", "reason": "held_too_long", "original": {"a": 1}}
    assert _letter(SimpleNamespace(payload=letter, headers={})) == letter


def test_a_task_message_dead_lettered_by_rabbitmq_gives_its_task_and_message() -> None:
    body = [[{"message_id": "m-1"}], {}, {"callbacks": None}]
    raw = SimpleNamespace(payload=body, headers={"task": "aftersales.buyer_action", "x-death": []})
    assert _letter(raw) == {
        "task": "aftersales.buyer_action",
        "reason": "dead_lettered_by_broker",
        "original": {"message_id": "m-1"},
    }


def test_a_body_of_another_shape_is_kept_whole_and_names_no_replayable_message() -> None:
    raw = SimpleNamespace(payload=[1, 2, 3], headers=None)
    assert _letter(raw) == {
        "task": None,
        "reason": "dead_lettered_by_broker",
        "original": [1, 2, 3],
    }
