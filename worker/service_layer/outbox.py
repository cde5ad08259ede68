"""Publishing a commit's outbox entries, and confirming those that went out.

An entry that fails to go out stays in the outbox: the tick's relay (scheduler.py) reads
it again and publishes it under the same id. Used by the service after each commit and
by the relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worker.logging import get_logger
from worker.service_layer.ports import BatchPublisher, Publisher

log = get_logger("aftersales.service")  # the service's log: these lines always were


class Confirms(Protocol):
    """The store's side of the outbox (ports.Store has it)."""

    def confirm_published(self, entry_ids: list[str]) -> None: ...


@dataclass(frozen=True)
class Outbox:
    store: Confirms
    publisher: Publisher

    def publish(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Publish outbox entries; confirm those that went out. Returns how many did not."""
        done: list[str] = []
        try:
            for entry_id, entry in entries:
                self.publisher.publish(entry_id, entry)
                done.append(entry_id)
        except Exception:
            # Nothing is lost: the entry stays in the outbox and the relay retries it.
            log.warning("publish failed; left for the outbox relay", exc_info=True)
        finally:
            self.store.confirm_published(done)
        return len(entries) - len(done)

    def publish_batch(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """A batch's outbox entries in one go where the publisher can (one producer, one
        pipeline), else one by one; all confirmed together, or all left to the relay."""
        if not entries or not isinstance(self.publisher, BatchPublisher):
            self.publish(entries)
            return
        try:
            self.publisher.publish_many(entries)
        except Exception:  # nothing is lost: the relay publishes them again, same ids
            log.warning("batch publish failed; left for the outbox relay", exc_info=True)
            return
        self.store.confirm_published([entry_id for entry_id, _ in entries])
