"""Out-of-order arrival: a message that needs an earlier fact waits in the order's record.

It is retried, in event-time order, after every input that was applied, and
dead-lettered by its `hold` deadline if the fact never comes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from schemas.inbound import ANY_MESSAGE, TASK_OF_TYPE, Message
from worker.rules.codes import RejectionCode
from worker.rules.state import DeadLetter, Deadline, OrderState, ParkedMessage
from worker.rules.step import Park, Step, reject, timer_id

DEFAULT_HOLD = timedelta(minutes=10)
"""How long a message waits for an earlier fact before it is refused or dead-lettered
(docs/rules.md); `AFTERSALES_HOLD_FOR` changes it."""


def message_id_of(parked: ParkedMessage) -> str:
    return str(parked.message["message_id"])


def is_parked(state: OrderState, message_id: str) -> bool:
    return any(message_id_of(p) == message_id for p in state.parked)


def park(
    state: OrderState, msg: Message, now: datetime, hold_for: timedelta, why: Park
) -> OrderState:
    code, detail = why.refuse or (None, "")
    parked = ParkedMessage(
        message=msg.model_dump(mode="json"),
        task=TASK_OF_TYPE[msg.type],
        occurred_at=msg.occurred_at,
        parked_at=now,
        waiting_for=why.waiting_for,
        refuse_code=code,
        refuse_detail=detail,
    )
    step = Step(state).update(parked=(*state.parked, parked))
    return step.start_timer("hold", msg.message_id, now + hold_for).state


def unpark(state: OrderState, message_id: str) -> OrderState:
    kept = tuple(p for p in state.parked if message_id_of(p) != message_id)
    return Step(state).update(parked=kept).stop_timers(timer_id("hold", message_id)).state


def rewait(state: OrderState, message_id: str, why: Park) -> OrderState:
    """Still parked, perhaps now for another fact (the dead letter names the last one)."""
    code, detail = why.refuse or (None, "")
    update = {"waiting_for": why.waiting_for, "refuse_code": code, "refuse_detail": detail}
    parked = tuple(
        p.model_copy(update=update) if message_id_of(p) == message_id else p for p in state.parked
    )
    return state if parked == state.parked else state.model_copy(update={"parked": parked})


def expire_hold(state: OrderState, deadline: Deadline) -> tuple[Step, DeadLetter | None]:
    """The fact never came: the message is refused by its rule, or dead-lettered."""
    found = next((p for p in state.parked if message_id_of(p) == deadline.ref), None)
    state = unpark(state, deadline.ref)
    if found is None:
        return Step(state), None
    if found.refuse_code is not None:
        msg = ANY_MESSAGE.validate_python(found.message)
        code = cast(RejectionCode, found.refuse_code)
        return reject(state, msg, code, found.refuse_detail), None
    waited = _duration(deadline.due_at - found.parked_at)
    reason = f"{found.message.get('type')} {deadline.ref} waited {waited} for {found.waiting_for}"
    return Step(state), DeadLetter(message=found.message, task=found.task, reason=reason)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
