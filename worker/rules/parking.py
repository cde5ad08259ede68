"""Out-of-order arrival: a message that needs an earlier fact waits in the order's record.

It is retried, in event-time order, after every input that was applied, and
dead-lettered by its `hold` deadline if the fact never comes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.inbound import TYPES_BY_TASK, Message
from worker.rules.state import DeadLetter, Deadline, OrderState, ParkedMessage
from worker.rules.step import Step, timer_id

TASK_OF_TYPE: dict[str, str] = {
    message_type: task for task, types in TYPES_BY_TASK.items() for message_type in types
}
"""The contract task that carries each message type (a dead letter names its task)."""


def message_id_of(parked: ParkedMessage) -> str:
    return str(parked.message["message_id"])


def is_parked(state: OrderState, message_id: str) -> bool:
    return any(message_id_of(p) == message_id for p in state.parked)


def park(
    state: OrderState, msg: Message, now: datetime, hold_for: timedelta, waiting_for: str
) -> OrderState:
    parked = ParkedMessage(
        message=msg.model_dump(mode="json"),
        task=TASK_OF_TYPE[msg.type],
        occurred_at=msg.occurred_at,
        parked_at=now,
        waiting_for=waiting_for,
    )
    step = Step(state).update(parked=(*state.parked, parked))
    return step.start_timer("hold", msg.message_id, now + hold_for).state


def unpark(state: OrderState, message_id: str) -> OrderState:
    kept = tuple(p for p in state.parked if message_id_of(p) != message_id)
    return Step(state).update(parked=kept).stop_timers(timer_id("hold", message_id)).state


def rewait(state: OrderState, message_id: str, waiting_for: str) -> OrderState:
    """Still parked, perhaps now for another fact (the dead letter names the last one)."""
    parked = tuple(
        p.model_copy(update={"waiting_for": waiting_for}) if message_id_of(p) == message_id
        else p
        for p in state.parked
    )
    return state if parked == state.parked else state.model_copy(update={"parked": parked})


def expire_hold(state: OrderState, deadline: Deadline) -> tuple[OrderState, DeadLetter | None]:
    found = next((p for p in state.parked if message_id_of(p) == deadline.ref), None)
    state = unpark(state, deadline.ref)
    if found is None:
        return state, None
    waited = _duration(deadline.due_at - found.parked_at)
    reason = (
        f"{found.message.get('type')} {deadline.ref} waited {waited} for {found.waiting_for}"
    )
    return state, DeadLetter(message=found.message, task=found.task, reason=reason)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
