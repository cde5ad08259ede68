"""Scheduler.fire_batch: a batch of firings, each exactly as a single firing decides it."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.types import format_timestamp
from tests.service.fakes import FakePublisher, FakeQueues, FakeStore
from tests.service.scheduling import make_scheduler
from tests.service.test_service import make_service
from tests.support.factories import T0, order_placed
from worker.service_layer.scheduler import tally


def unpaid_orders(store: FakeStore, count: int) -> list[tuple[str, str, datetime]]:
    """`count` unpaid orders placed at T0: (order id, deadline id, due) of each expiry."""
    placed = [order_placed(at=T0) for _ in range(count)]
    service = make_service(store=store)
    rows = []
    for message in placed:
        service.handle_message(message)
        (deadline,) = store.load(message.order_id).state.deadlines.values()
        rows.append((message.order_id, deadline.id, deadline.due_at))
    return rows


def test_a_batch_fences_gates_and_fires_each_deadline_once():
    store, publisher = FakeStore(), FakePublisher()
    (raced, raced_id, due), (clear, clear_id, _), (moved, moved_id, _), (held, held_id, _) = (
        unpaid_orders(store, 4)
    )
    # Another change of `raced` commits just before the batch's commit: it loses the race
    # and is decided again on the fresh order.
    store.interfere.append(store.load(raced).state)
    queues = FakeQueues(store, inflight={held: {"t-1": (T0, due)}})  # an earlier message
    scheduler, sent = make_scheduler(due + timedelta(seconds=2), store, publisher, queues)
    at = format_timestamp(due)

    outcomes = scheduler.fire_batch(
        [
            (raced, raced_id, at),
            (clear, clear_id, at),
            (moved, moved_id, format_timestamp(due + timedelta(seconds=1))),  # not current
            (held, held_id, at),
        ]
    )

    assert [o.status for o in outcomes] == ["applied", "applied", "stale", "waiting"]
    assert outcomes[3].wait == "inflight"
    assert all("order.cancelled" in o.events for o in outcomes[:2])
    assert sorted(e["event"]["subject"] for _, e in publisher.published) == sorted([raced, clear])
    assert store.outbox == {}  # every event published and confirmed
    assert store.lateness == [2000.0, 2000.0]
    assert (moved, moved_id) in store.schedule and (held, held_id) in store.schedule
    # The held one is checked again shortly, from the deadlines queue.
    assert [args for _, args, _ in sent.tasks] == [(held, held_id, at, True)]
    assert tally(outcomes) == {"applied": 2, "stale": 1, "waiting": 1}


def test_a_batch_run_again_changes_and_publishes_nothing():
    store, publisher = FakeStore(), FakePublisher()
    rows = unpaid_orders(store, 3)
    due = rows[0][2]
    scheduler, _ = make_scheduler(due, store, publisher)
    batch = [(order_id, deadline_id, format_timestamp(due)) for order_id, deadline_id, _ in rows]

    first = scheduler.fire_batch(batch)
    again = scheduler.fire_batch(batch)  # a redelivered batch task, or a sweep re-send

    assert {o.status for o in first} == {"applied"} and {o.status for o in again} == {"stale"}
    assert len(publisher.published) == 3 and len(store.lateness) == 3


def test_an_early_member_is_reported_not_due_with_its_time_and_sent_for_it():
    store = FakeStore()
    ((order_id, deadline_id, due),) = unpaid_orders(store, 1)
    scheduler, sent = make_scheduler(due - timedelta(seconds=1), store)

    (outcome,) = scheduler.fire_batch([(order_id, deadline_id, None)])

    assert outcome.status == "not_due" and outcome.retry_at == due
    assert outcome.summary() == f"not_due:{format_timestamp(due)}"
    assert store.load(order_id).version == 1
    ((_, args, options),) = sent.tasks
    assert args == (order_id, deadline_id, format_timestamp(due)) and options["eta"] == due
