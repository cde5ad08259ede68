"""The service layer with in-memory fakes: dedupe, optimistic retries, outbox, fencing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from schemas.policy import build_policy
from tests.service.fakes import Clock, FakePublisher, FakeStore
from tests.support.factories import (
    T0,
    cancel_requested,
    days,
    delivered,
    hours,
    order_placed,
    paid,
    ready_to_ship,
    return_requested,
    shipped,
)
from worker import rules
from worker.service_layer.service import Arrival, Service

AN_HOUR_IN = T0 + hours(1)
"""make_service's default clock (a module constant: ruff B008 bans calls in defaults)."""


def make_service(now=AN_HOUR_IN, store=None, publisher=None) -> Service:
    return Service(
        store or FakeStore(),
        publisher or FakePublisher(),
        build_policy(),
        hold_for=timedelta(minutes=10),
        clock=Clock(now),
        sleep=lambda _: None,
    )


def paid_by_another_process_meanwhile() -> tuple[FakeStore, Service, Any]:
    """A placed order whose next commit loses a race: another process commits `paid`
    between that commit's load and the commit itself."""
    store = FakeStore()
    service = make_service(store=store)
    placed = order_placed(at=T0)
    service.handle_message(placed)
    other = rules.decide(
        store.load(placed.order_id).state,
        paid(placed.order_id, T0 + hours(0.2)),
        T0 + hours(1),
        build_policy(),
    )
    store.interfere.append(other.state)
    return store, service, placed


def test_a_message_seen_twice_is_applied_once():
    service = make_service()
    placed = order_placed(at=T0)
    cancel = cancel_requested(placed.order_id, T0 + timedelta(minutes=5))
    service.handle_message(placed)

    first, second = service.handle_message(cancel), service.handle_message(cancel)

    assert first.status == "applied" and "order.cancelled" in first.events
    assert second.status == "duplicate" and second.events == ()
    assert service.publisher.event_types().count("order.cancelled") == 1


@pytest.mark.parametrize("way", ["one", "batch"])
def test_a_lost_race_is_retried_on_the_fresh_state_without_losing_either_update(way):
    store, service, placed = paid_by_another_process_meanwhile()
    message = ready_to_ship(placed.order_id, T0 + hours(0.5))

    if way == "one":
        outcome = service.handle_message(message)
    else:  # Service.handle_many: the race is lost between the batch's begin and commit
        (outcome,) = service.handle_many([Arrival(message)])

    state = store.load(placed.order_id).state
    assert outcome.status == "applied"
    assert state.paid_at is not None and state.ready_to_ship_at is not None
    assert store.load(placed.order_id).version == 3


def test_events_left_unpublished_stay_in_the_outbox_and_go_out_later_with_the_same_id():
    publisher = FakePublisher(fail_next=1)
    store = FakeStore()
    service = make_service(store=store, publisher=publisher)
    placed = order_placed(at=T0)
    service.handle_message(placed)

    outcome = service.handle_message(cancel_requested(placed.order_id, T0 + timedelta(minutes=5)))

    assert outcome.unpublished == 1 and len(store.outbox) == 1
    pending = list(store.outbox.items())
    assert service.outbox.publish(pending) == 0
    assert store.outbox == {}
    ((entry_id, entry),) = publisher.published
    assert entry["event"]["id"] == entry_id == pending[0][0]


def test_event_ids_are_a_function_of_their_cause():
    placed = order_placed(at=T0)
    cancel = cancel_requested(placed.order_id, T0 + timedelta(minutes=5))
    ids = []
    for _ in range(2):
        service = make_service()
        service.handle_message(placed)
        service.handle_message(cancel)
        ids.append([e["event"]["id"] for _, e in service.publisher.published])
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0])


def test_a_parked_message_that_times_out_is_dead_lettered_and_forgotten():
    store = FakeStore()
    service = make_service(store=store)
    early = paid("o-never-placed", T0)

    assert service.handle_message(early).status == "parked"
    (hold,) = store.load("o-never-placed").state.deadlines.values()
    later = make_service(now=hold.due_at, store=store, publisher=service.publisher)
    later.fire("o-never-placed", hold)

    (letter,) = [e for _, e in service.publisher.published if e["kind"] == "dead_letter"]
    assert letter["body"]["reason"] == "held_too_long"
    assert letter["body"]["original"]["message_id"] == early.message_id
    assert not store.is_seen("o-never-placed", early.message_id)  # a replay may apply it


def test_a_message_for_an_expired_order_is_refused_and_writes_nothing():
    """1.2: refused only with the order's tombstone (it closed and its keys expired); an
    order never seen before is new however old its order.placed."""
    store = FakeStore()
    retention = timedelta(days=60)
    service = make_service(now=T0 + days(400), store=store)
    service.retention = retention

    old = service.handle_message(order_placed("o-never-seen", at=T0))  # 400 days old
    assert old.status == "applied" and len(store.commits) == 1

    closed = "o-closed"
    service.handle_message(order_placed(closed, at=T0 + days(399)))
    service.handle_message(cancel_requested(closed, T0 + days(399)))  # unpaid: at once
    assert store.commits[-1].expire_in == retention
    assert store.commits[-1].tombstone_in == retention + service.tombstone
    store.expire(closed)
    commits = len(store.commits)
    late = service.handle_message(order_placed(closed, at=T0 + days(399)))
    assert late.status == "expired" and len(store.commits) == commits
    assert closed not in store.states


def test_the_commit_that_closes_an_order_gives_its_keys_a_ttl_and_a_new_request_clears_it():
    store = FakeStore()
    service = make_service(now=T0 + days(40), store=store)
    oid = "o-ttl"
    service.handle_message(order_placed(oid, T0))
    assert store.commits[-1].expire_in is None  # unpaid expiry pending: open
    for message in (paid(oid, T0), shipped(oid, T0 + days(1)), delivered(oid, T0 + days(2))):
        service.handle_message(message)
    # Closed: retention from now (the 30-day return window ended on day 32).
    assert store.commits[-1].expire_in == service.retention
    request = return_requested(oid, T0 + days(3), method="self_arrange")
    assert service.handle_message(request).status == "applied"
    assert store.commits[-1].expire_in is None  # open again: the keys persist


def test_a_message_id_reused_with_another_body_is_refused_and_changes_nothing():
    store = FakeStore()
    service = make_service(store=store)
    placed = order_placed(at=T0)
    service.handle_message(placed, digest="body-1")

    again = service.handle_message(placed, digest="body-1")
    other = service.handle_message(placed, digest="body-2")

    assert again.status == "duplicate"
    assert other.status == "reused" and other.events == ()
    assert len(store.commits) == 1
