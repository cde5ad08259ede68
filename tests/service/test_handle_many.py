"""Service.handle_many, the batch path's service: the same outcomes as one message at a
time, in turns per order, with lost races, duplicates, reused ids and expired orders."""

from __future__ import annotations

from datetime import timedelta

from tests.service.fakes import FakePublisher, FakeStore
from tests.service.test_service import make_service
from tests.support.factories import (
    T0,
    cancel_requested,
    days,
    hours,
    order_placed,
    paid,
    ready_to_ship,
)
from worker.service_layer.service import Arrival, _turns


def test_turns_take_each_order_once_a_turn_in_the_batchs_order():
    assert _turns(["a", "b", "a", "c", "a", "b"]) == [[0, 1, 3], [2, 5], [4]]
    assert _turns([]) == []
    assert _turns(["a"]) == [[0]]


def test_a_batch_has_the_outcomes_and_events_of_its_messages_one_at_a_time():
    placed = [order_placed(f"o-{i}", at=T0) for i in range(3)]
    later = [cancel_requested(p.order_id, T0 + timedelta(minutes=5)) for p in placed]
    messages = [*placed, *later]

    one_by_one = make_service()
    singly = [one_by_one.handle_message(m) for m in messages]
    batched = make_service()
    together = batched.handle_many([Arrival(m) for m in messages])

    assert [(o.status, o.events, o.version) for o in together] == [
        (o.status, o.events, o.version) for o in singly
    ]
    assert batched.publisher.event_types() == one_by_one.publisher.event_types()
    for p in placed:
        assert batched.store.load(p.order_id) == one_by_one.store.load(p.order_id)


def test_messages_of_one_order_go_in_turns_and_each_sees_the_one_before():
    store = FakeStore()
    service = make_service(store=store)
    oid = "o-turns"
    batch = [
        order_placed(oid, at=T0),
        order_placed("o-other", at=T0),
        paid(oid, T0 + hours(0.1)),
        ready_to_ship(oid, T0 + hours(0.2)),
    ]

    outcomes = service.handle_many([Arrival(m) for m in batch])

    assert [o.status for o in outcomes] == ["applied"] * 4
    assert store.begin_rounds == [2, 1, 1]  # three turns: oid's three messages apart
    assert store.load(oid).version == 3
    assert store.load(oid).state.ready_to_ship_at is not None


def test_a_duplicate_in_a_batch_is_answered_without_a_second_effect():
    service = make_service()
    placed = order_placed(at=T0)
    cancel = cancel_requested(placed.order_id, T0 + timedelta(minutes=5))
    service.handle_message(placed)

    outcomes = service.handle_many([Arrival(cancel), Arrival(cancel)])

    assert [o.status for o in outcomes] == ["applied", "duplicate"]
    assert service.publisher.event_types().count("order.cancelled") == 1


def test_a_reused_id_and_an_expired_order_are_answered_and_write_nothing():
    store = FakeStore()
    service = make_service(now=T0 + days(400), store=store)
    service.retention = timedelta(days=60)
    placed = order_placed("o-reused", at=T0 + days(399))
    service.handle_message(placed, digest="body-1")
    closed = "o-closed"
    service.handle_message(order_placed(closed, at=T0 + days(399)))
    service.handle_message(cancel_requested(closed, T0 + days(399)))
    store.expire(closed)
    commits = len(store.commits)

    outcomes = service.handle_many(
        [
            Arrival(placed, digest="body-2"),
            Arrival(order_placed(closed, at=T0 + days(399))),
        ]
    )

    assert [o.status for o in outcomes] == ["reused", "expired"]
    assert len(store.commits) == commits


def test_events_a_batch_could_not_publish_stay_in_the_outbox_for_the_relay():
    publisher = FakePublisher(fail_next=1)
    store = FakeStore()
    service = make_service(store=store, publisher=publisher)
    placed = [order_placed(f"o-{i}", at=T0) for i in range(2)]
    for p in placed:
        service.handle_message(p)

    outcomes = service.handle_many(
        [Arrival(cancel_requested(p.order_id, T0 + timedelta(minutes=5))) for p in placed]
    )

    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert len(store.outbox) >= 1  # left for the relay, not lost
    assert service.outbox.publish(list(store.outbox.items())) == 0
    assert publisher.event_types().count("order.cancelled") == 2


def test_an_empty_batch_does_nothing():
    store = FakeStore()
    assert make_service(store=store).handle_many([]) == []
    assert store.begin_rounds == [] and store.commits == []
