"""Outbox publishing (worker/service_layer/outbox.py): what went out is confirmed, what did
not stays for the relay; a batch goes out in one go where the publisher can."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.service.fakes import FakePublisher, FakeStore
from worker.service_layer.outbox import Outbox
from worker.service_layer.ports import BatchPublisher

ENTRIES = [(f"e-{i}", {"kind": "event", "event": {"type": "order.cancelled"}}) for i in range(3)]


@dataclass
class FakeBatchPublisher(FakePublisher):
    batches: list[list[str]] = field(default_factory=list)
    fail_batch: bool = False

    def publish_many(self, entries: Any) -> None:
        if self.fail_batch:
            raise ConnectionError("broker unavailable")
        self.batches.append([entry_id for entry_id, _ in entries])


def store_with(entries: list[tuple[str, dict[str, Any]]]) -> FakeStore:
    store = FakeStore()
    store.outbox.update(dict(entries))
    return store


@dataclass
class FailingAt(FakePublisher):
    """Publishes until the `at`-th entry (0-based), which fails."""

    at: int = 0

    def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
        if len(self.published) == self.at:
            raise ConnectionError("broker unavailable")
        super().publish(entry_id, entry)


@pytest.mark.parametrize(("at", "left"), [(0, 3), (1, 2), (2, 1), (3, 0)])
def test_entries_published_one_by_one_are_confirmed_up_to_the_first_failure(at, left):
    store, publisher = store_with(ENTRIES), FailingAt(at=at)

    assert Outbox(store, publisher).publish(ENTRIES) == left
    assert sorted(store.outbox) == [entry_id for entry_id, _ in ENTRIES][at:]


def test_a_batch_goes_out_in_one_go_and_is_confirmed_together():
    store, publisher = store_with(ENTRIES), FakeBatchPublisher()
    assert isinstance(publisher, BatchPublisher)
    assert not isinstance(FakePublisher(), BatchPublisher)

    Outbox(store, publisher).publish_batch(ENTRIES)

    assert publisher.batches == [["e-0", "e-1", "e-2"]] and publisher.published == []
    assert store.outbox == {}


def test_a_batch_that_fails_is_left_whole_to_the_relay():
    store, publisher = store_with(ENTRIES), FakeBatchPublisher(fail_batch=True)

    Outbox(store, publisher).publish_batch(ENTRIES)

    assert sorted(store.outbox) == ["e-0", "e-1", "e-2"]


def test_a_batch_without_a_batch_publisher_goes_one_by_one():
    store, publisher = store_with(ENTRIES), FakePublisher()

    Outbox(store, publisher).publish_batch(ENTRIES)

    assert [entry_id for entry_id, _ in publisher.published] == ["e-0", "e-1", "e-2"]
    assert store.outbox == {}
