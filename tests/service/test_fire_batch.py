"""Service.fire_deadlines: a batch of firings, each exactly as fire_deadline decides it."""

from __future__ import annotations

from datetime import timedelta

from tests.service.fakes import FakePublisher, FakeStore
from tests.service.test_service import make_service
from tests.support.factories import T0, order_placed
from worker.service_layer.service import Firing


def unpaid_orders(store: FakeStore, count: int) -> list[tuple[str, str, object]]:
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
    service = make_service(now=due + timedelta(seconds=2), store=store, publisher=publisher)

    outcomes = service.fire_deadlines(
        [
            Firing(raced, raced_id, due, loaded=store.load(raced)),
            Firing(clear, clear_id, due),
            Firing(moved, moved_id, due + timedelta(seconds=1)),  # not the current due time
            Firing(held, held_id, due, gate=lambda _: "inflight"),
        ]
    )

    assert [o.status for o in outcomes] == ["applied", "applied", "stale", "waiting"]
    assert outcomes[3].detail == "inflight"
    assert all("order.cancelled" in o.events for o in outcomes[:2])
    assert sorted(e["event"]["subject"] for _, e in publisher.published) == sorted([raced, clear])
    assert store.outbox == {}  # every event published and confirmed
    assert store.lateness == [2000.0, 2000.0]
    assert (moved, moved_id) in store.schedule and (held, held_id) in store.schedule


def test_a_batch_run_again_changes_and_publishes_nothing():
    store, publisher = FakeStore(), FakePublisher()
    rows = unpaid_orders(store, 3)
    due = rows[0][2]
    service = make_service(now=due, store=store, publisher=publisher)
    batch = [Firing(order_id, deadline_id, due) for order_id, deadline_id, _ in rows]

    first = service.fire_deadlines(batch)
    again = service.fire_deadlines(batch)  # a redelivered batch task, or a sweep re-send

    assert {o.status for o in first} == {"applied"} and {o.status for o in again} == {"stale"}
    assert len(publisher.published) == 3 and len(store.lateness) == 3


def test_an_early_member_is_reported_not_due_with_its_time():
    store = FakeStore()
    ((order_id, deadline_id, due),) = unpaid_orders(store, 1)
    service = make_service(now=due - timedelta(seconds=1), store=store)

    (outcome,) = service.fire_deadlines([Firing(order_id, deadline_id, None)])

    assert outcome.status == "not_due" and outcome.detail.startswith(due.strftime("%Y-%m-%dT"))
    assert store.load(order_id).version == 1


def test_the_tick_sends_deadlines_due_together_as_batches_at_their_latest_time():
    from schemas.types import format_timestamp
    from worker.adapters.topology import DEADLINE_BATCH_TASK, DEADLINE_TASK
    from worker.service_layer.scheduler import BATCH_MAX, BATCH_WIDTH, Scheduler

    sent: list[tuple[str, tuple, dict]] = []
    now = T0
    scheduler = Scheduler(
        store=None,
        service=None,
        queues=None,
        send_task=lambda name, args, **options: sent.append((name, args, options)),
        settings=None,
        clock=lambda: now,
    )
    start = T0 + timedelta(seconds=10)  # on a bucket boundary: T0 is a whole second
    together = [(f"o-{i}", "unpaid_expiry:", start + timedelta(seconds=0.15 * i / 250))
                for i in range(250)]  # fmt: skip
    alone = [("o-alone", "unpaid_expiry:", start + timedelta(seconds=5))]
    overdue = [(f"o-late-{i}", "unpaid_expiry:", T0 - timedelta(hours=i + 1)) for i in range(3)]

    tasks = scheduler.send_armed(together + alone + overdue)

    batches = [(args[0], options) for name, args, options in sent if name == DEADLINE_BATCH_TASK]
    singles = [args for name, args, _ in sent if name == DEADLINE_TASK]
    assert tasks == len(sent) == 5 and BATCH_WIDTH > 0.15
    assert [len(members) for members, _ in batches] == [BATCH_MAX, BATCH_MAX, 50, 3]
    for members, options in batches[:3]:  # each at its latest member's due time
        assert options["eta"] == max(due for o, _, due in together if o in {m[0] for m in members})
    assert batches[3][1]["eta"] == max(due for _, _, due in overdue)  # in the past: at once
    assert singles == [("o-alone", "unpaid_expiry:", format_timestamp(alone[0][2]))]
    assert len({options["task_id"] for _, options in batches}) == 4
