"""A scheduler over the in-memory parts: the fake store, whose commits write the package's
in-memory schedule, fake queues, and a `send_task` that records what it is asked to send."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.policy import build_policy
from tests.service.fakes import Clock, FakePublisher, FakeQueues, FakeStore
from tests.service.test_service import make_service
from worker.service_layer.scheduler import Scheduler
from worker.settings import Settings


@dataclass
class Sent:
    tasks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def __call__(self, name: str, args: tuple[Any, ...], **options: Any) -> None:
        self.tasks.append((name, args, options))


def make_scheduler(
    now: datetime,
    store: FakeStore,
    publisher: FakePublisher | None = None,
    queues: FakeQueues | None = None,
) -> tuple[Scheduler, Sent]:
    sent = Sent()
    settings = Settings(
        redis_url="redis://unused",
        broker_url="redis://unused",
        label_dir=Path("unused"),
        policy_file=None,
        policy=build_policy(),
    )
    clock = Clock(now)  # one clock: a test moves the scheduler's and the service's time
    service = make_service(now=now, store=store, publisher=publisher)
    service.clock = clock
    store.schedule.clock = clock  # heartbeats expire on the test's time
    scheduler = Scheduler(
        schedule=store.schedule,
        outbox=store,
        service=service,
        queues=queues or FakeQueues(store),
        send_task=sent,
        settings=settings,
        clock=clock,
    )
    return scheduler, sent
