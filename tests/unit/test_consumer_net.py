"""The consumer's net: whatever Celery's task handler still raises after the screen is
dead-lettered (`unprocessable`), except broker errors, which the consumer must see to
reconnect. Celery's handler is replaced by one that raises; no broker is needed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery.worker.consumer import Consumer
from kombu.message import Message

from worker.shell.consumer import DeadLetteringConsumer

BODY = json.dumps([[{"message_id": "m"}], {}, {"callbacks": None}]).encode()


def _message(body: bytes = BODY) -> Message:
    return Message(
        body=body,
        content_type="application/json",
        content_encoding="utf-8",
        headers={"task": "aftersales.order_event", "id": "t-1"},
        accept=["application/json"],
    )


def _handler(monkeypatch: pytest.MonkeyPatch, error: Exception) -> tuple[Any, list[Any]]:
    def celery_handler(self: Any, *args: Any, **kwargs: Any) -> Any:
        def handle(message: Message) -> None:
            raise error

        return handle

    letters: list[Any] = []
    monkeypatch.setattr(Consumer, "create_task_handler", celery_handler)
    monkeypatch.setattr(
        DeadLetteringConsumer,
        "_dead_letter",
        lambda self, message, reason, text: letters.append((reason, text)),
    )
    consumer = object.__new__(DeadLetteringConsumer)
    consumer.connection_errors, consumer.channel_errors = (ConnectionError,), ()
    return consumer.create_task_handler(), letters


def test_an_error_raised_by_celerys_handler_is_dead_lettered(monkeypatch):
    handle, letters = _handler(monkeypatch, TypeError("boom"))
    handle(_message())
    assert letters == [("unprocessable", "TypeError: boom")]


def test_a_broker_error_reaches_the_consumer(monkeypatch):
    handle, letters = _handler(monkeypatch, ConnectionError("redis went away"))
    with pytest.raises(ConnectionError):
        handle(_message())
    assert letters == []


def test_a_refused_message_never_reaches_celerys_handler(monkeypatch):
    handle, letters = _handler(monkeypatch, AssertionError("must not be called"))
    handle(_message(b"[1, 2, 3]"))
    assert [reason for reason, _ in letters] == ["invalid_task_message"]


def test_a_check_that_raises_is_a_refusal_not_a_crash(monkeypatch):
    """The screen itself sees every input first: if one of its checks did not foresee
    some value and raises, the message is refused, not the worker stopped."""
    from worker.shell import screen

    def broken(*args: Any, **kwargs: Any) -> None:
        raise AttributeError("'int' object has no attribute 'lower'")

    monkeypatch.setattr(screen, "refuse_raw", broken)
    handle, letters = _handler(monkeypatch, AssertionError("must not be called"))
    handle(_message())
    assert letters == [("unprocessable", "AttributeError: 'int' object has no attribute 'lower'")]


def test_celery_sees_no_expiry_or_time_limit_on_an_inbound_task(monkeypatch):
    """Past `expires` Celery discards and acks a task; a hard `timelimit` kills it
    mid-commit and acks it: an inbound fact must not be dropped that way."""
    seen: list[dict[str, Any]] = []

    def celery_handler(self: Any, *args: Any, **kwargs: Any) -> Any:
        return lambda message: seen.append(dict(message.headers))

    monkeypatch.setattr(Consumer, "create_task_handler", celery_handler)
    consumer = object.__new__(DeadLetteringConsumer)
    consumer.connection_errors, consumer.channel_errors = (ConnectionError,), ()
    handle = consumer.create_task_handler()
    limits = {"expires": "2000-01-01T00:00:00+00:00", "timelimit": [None, 0.5]}
    inbound = _message()
    inbound.headers.update(limits)
    tick = _message()
    tick.headers.update(limits, task="aftersales.tick")
    handle(inbound)
    handle(tick)
    assert (seen[0]["expires"], seen[0]["timelimit"]) == (None, None)
    assert seen[1]["expires"] == limits["expires"]  # the worker's own: an old tick is dropped
