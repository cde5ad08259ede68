"""A Step's builders change what they say and carry everything else over.

They make the new Step with its constructor (faster than dataclasses.replace), so a field
added to Step must be added to each of them: the first test says which fields they know.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from schemas.events import ActionRejectedData
from worker.rules.state import LabelJob, OrderState
from worker.rules.step import Step

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_step_has_the_three_fields_its_builders_carry() -> None:
    assert [f.name for f in fields(Step)] == ["state", "events", "label_jobs"]


def _full_step() -> Step:
    data = ActionRejectedData(message_id="m-1", type="order.paid", code="already_paid", detail="x")
    state = OrderState(order_id="o-1")
    return Step(state).emit("action.rejected", data, AT, "m-1").label_job("r-1")


def test_each_builder_changes_its_part_only() -> None:
    step = _full_step()
    assert [e.type for e in step.events] == ["action.rejected"]
    assert step.label_jobs == (LabelJob(request_id="r-1"),)

    updated = step.update(paid_at=AT)
    assert updated.state == step.state.model_copy(update={"paid_at": AT})
    assert (updated.events, updated.label_jobs) == (step.events, step.label_jobs)

    other = OrderState(order_id="o-2")
    moved = step.with_state(other)
    assert (moved.state, moved.events, moved.label_jobs) == (other, step.events, step.label_jobs)

    emitted = step.emit("action.rejected", step.events[0].data, AT, "m-2")
    assert emitted.state is step.state and emitted.label_jobs == step.label_jobs
    assert [e.cause for e in emitted.events] == ["m-1", "m-2"]

    jobs = step.label_job("r-2")
    assert jobs.state is step.state and jobs.events == step.events
    assert [j.request_id for j in jobs.label_jobs] == ["r-1", "r-2"]


def test_timers_start_and_stop_through_update() -> None:
    step = _full_step().start_timer("unpaid_expiry", "", AT)
    assert list(step.state.deadlines) == ["unpaid_expiry:"]
    assert step.events and step.label_jobs  # carried over
    assert step.stop_timers("unpaid_expiry:").state.deadlines == {}
    assert step.stop_timers("other:") is step
