"""A tiny stand-in for the shell: feeds inputs to decide() and keeps what came out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schemas.policy import PolicySet, build_policy
from worker.rules import decide, new_state
from worker.rules.state import (
    DeadLetter,
    Deadline,
    DeadlineFired,
    Decision,
    EventOut,
    LabelGenerated,
    LabelJob,
    OrderState,
)

POLICY = build_policy()


class Timeline:
    def __init__(self, order_id: str, policy: PolicySet = POLICY) -> None:
        self.order_id = order_id
        self.policy = policy
        self.state: OrderState = new_state(order_id)
        self.events: list[EventOut] = []
        self.dead_letters: list[DeadLetter] = []
        self.label_jobs: list[LabelJob] = []

    # --- inputs -------------------------------------------------------------------

    def apply(self, input_: Any, now: datetime) -> Decision:
        decision = decide(self.state, input_, now, self.policy)
        self.state = decision.state
        self.events.extend(decision.events)
        self.dead_letters.extend(decision.dead_letters)
        self.label_jobs.extend(decision.label_jobs)
        return decision

    def send(self, *messages: Any, now: datetime | None = None) -> Decision:
        decision = None
        for msg in messages:
            decision = self.apply(msg, now or msg.occurred_at)
        assert decision is not None
        return decision

    def fire(self, kind: str, ref: str = "") -> Decision:
        deadline = self.deadline(kind, ref)
        assert deadline is not None, f"no {kind}:{ref} deadline in {list(self.state.deadlines)}"
        return self.apply(DeadlineFired(order_id=self.order_id, deadline=deadline), deadline.due_at)

    def advance(self, to: datetime) -> None:
        """Fire due deadlines in due order, as the schedule would by wall-clock `to`."""
        while True:
            due = sorted(
                (d for d in self.state.deadlines.values() if d.due_at <= to),
                key=lambda d: (d.due_at, d.id),
            )
            for deadline in due:
                before = self.state
                self.apply(
                    DeadlineFired(order_id=self.order_id, deadline=deadline), deadline.due_at
                )
                if self.state != before:
                    break
            else:
                return

    def label(self, request_id: str, **overrides: Any) -> Decision:
        fields = {
            "order_id": self.order_id,
            "request_id": request_id,
            "tracking_number": f"EVRI-{request_id}",
            "qr_content": f"QR-{request_id}",
            "qr_png_uri": f"file:///labels/{request_id}.png",
            "pdf_uri": f"file:///labels/{request_id}.pdf",
            **overrides,
        }
        return self.apply(LabelGenerated(**fields), datetime.max)

    # --- looking at the outcome ----------------------------------------------------

    def deadline(self, kind: str, ref: str = "") -> Deadline | None:
        return self.state.deadlines.get(f"{kind}:{ref}")

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, event_type: str) -> list[Any]:
        return [e.data for e in self.events if e.type == event_type]

    def one(self, event_type: str) -> Any:
        found = self.of(event_type)
        assert len(found) == 1, f"{len(found)} x {event_type} in {self.types()}"
        return found[0]

    def codes(self) -> list[str]:
        return [data.code for data in self.of("action.rejected")]

    def refunded(self) -> list[str]:
        return [str(data.amount) for data in self.of("refund.initiated")]

    def clear(self) -> None:
        self.events.clear()


def later(at: datetime, **delta: float) -> datetime:
    return at + timedelta(**delta)
