"""`field_of` is `getattr(model, name, None)` for every model the rules read it on.

It reads the model's `__dict__`, where pydantic keeps field values, to skip pydantic's
slow way to a missing attribute. Every inbound message class, every event data class and
the timer inputs are checked field by field, and with the names the callers ask for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from schemas.events import EVENT_DATA
from schemas.inbound import InboundMessage
from worker.rules.state import Deadline, DeadlineFired, LabelGenerated, field_of

ASKED = ("message_id", "request_id", "occurred_at")
"""The names the rules and the commit ask of an input or an event's data."""

MESSAGES = get_args(get_args(InboundMessage)[0])
MODELS: tuple[type[BaseModel], ...] = (
    *MESSAGES,
    *EVENT_DATA.values(),
    DeadlineFired,
    LabelGenerated,
)


def _constructed(cls: type[BaseModel]) -> BaseModel:
    """An instance with a distinct value in every field (unvalidated: any type will do)."""
    return cls.model_construct(**{name: f"{cls.__name__}.{name}" for name in cls.model_fields})


def test_every_inbound_message_class_is_checked() -> None:
    assert len(MESSAGES) >= 23
    assert all(issubclass(cls, BaseModel) for cls in MESSAGES)


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_field_of_is_getattr_with_a_default(cls: type[BaseModel]) -> None:
    model = _constructed(cls)
    for name in (*cls.model_fields, *ASKED, "no_such_field"):
        assert field_of(model, name) == getattr(model, name, None), name


def test_a_validated_model_and_a_field_left_at_its_default() -> None:
    due = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    fired = DeadlineFired(order_id="o-1", deadline=Deadline(kind="unpaid_expiry", due_at=due))
    assert field_of(fired, "deadline").due_at == due
    assert field_of(fired.deadline, "ref") == ""  # a default, kept in the instance too
    assert field_of(fired, "message_id") is None
    assert fired.deadline.id == "unpaid_expiry:"
    assert field_of(fired.deadline, "id") is None  # a property, not a field: not read


def test_a_missing_field_costs_no_exception() -> None:
    model: Any = _constructed(DeadlineFired)
    with pytest.raises(AttributeError):
        model.message_id  # noqa: B018 - the slow way field_of avoids
    assert field_of(model, "message_id") is None
