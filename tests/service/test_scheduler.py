"""The scheduler over the in-memory schedule: a firing fenced, gated and followed up, the
tick arming, batching and sweeping (Redis's own scripts: tests/integration/test_sweep.py)."""

from __future__ import annotations

from datetime import timedelta

from schemas.channels import DEADLINE_BATCH_TASK, DEADLINE_TASK, DEADLINES, INBOUND
from schemas.types import format_timestamp
from tests.service.fakes import FakePublisher, FakeQueues, FakeStore
from tests.service.scheduling import make_scheduler
from tests.service.test_service import make_service
from tests.support.factories import T0, order_placed
from worker.adapters.memory_schedule import InMemorySchedule
from worker.service_layer.scheduler import BATCH_MAX, BATCH_WIDTH, WAIT_RETRY


def test_a_deadline_fires_only_if_current_due_and_not_held_back():
    store = FakeStore()
    placed = order_placed(at=T0)  # unpaid: expires 48 h after placement
    make_service(store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    oid, did, at = placed.order_id, deadline.id, format_timestamp(deadline.due_at)
    queues = FakeQueues(store)

    early, _ = make_scheduler(deadline.due_at - timedelta(seconds=1), store)
    assert early.fire(oid, did, at, False).status == "not_due"
    due, sent = make_scheduler(deadline.due_at, store, queues=queues)
    moved = format_timestamp(deadline.due_at + timedelta(seconds=1))
    assert due.fire(oid, did, moved, False).status == "stale"
    queues.inflight[oid] = {"t-1": (T0, deadline.due_at)}  # an earlier message, in flight
    assert due.fire(oid, did, None, False).status == "waiting"
    assert store.load(oid).version == 1  # nothing committed so far
    queues.inflight.clear()

    fired = due.fire(oid, did, at, False)
    again = due.fire(oid, did, at, False)

    assert fired.status == "applied" and "order.cancelled" in fired.events
    assert again.status == "stale"
    assert (oid, did) not in store.schedule
    assert store.lateness == [0.0]
    assert sent.tasks == [(DEADLINE_TASK, (oid, did, None, True),
                           {"queue": DEADLINES, "countdown": WAIT_RETRY})]  # fmt: skip


def test_a_deadline_behind_queued_messages_goes_round_the_inbound_queue_first():
    store = FakeStore()
    placed = order_placed(at=T0)
    make_service(store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    at = format_timestamp(deadline.due_at)
    queues = FakeQueues(store, depth=3)
    scheduler, sent = make_scheduler(deadline.due_at, store, queues=queues)

    waiting = scheduler.fire(placed.order_id, deadline.id, at, False)
    after_barrier = scheduler.fire(placed.order_id, deadline.id, at, True)  # out of the tail

    assert waiting.status == "waiting" and waiting.wait == "barrier"
    assert waiting.summary() == "waiting:barrier"
    assert sent.tasks == [(DEADLINE_TASK, (placed.order_id, deadline.id, at, True),
                           {"queue": INBOUND, "countdown": None})]  # fmt: skip
    assert after_barrier.status == "applied"


def test_a_stale_firing_releases_the_claim_and_a_failed_one_releases_it_even_if_armed():
    store = FakeStore()
    placed = order_placed(at=T0)
    make_service(store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    oid, did = placed.order_id, deadline.id
    scheduler, _ = make_scheduler(deadline.due_at, store)
    schedule = store.schedule
    schedule.arm_due(deadline.due_at, 10, recheck_after=2.0)
    schedule.claim(oid, did, "w@h#1", deadline.due_at)

    scheduler.failed(oid, did)  # a bug: back to the sweep though still armed
    assert (oid, did) not in schedule.claims
    schedule.claim(oid, did, "w@h#1", deadline.due_at)
    scheduler.fire(oid, did, format_timestamp(deadline.due_at), False)  # fired: unscheduled
    scheduler.fire(oid, did, format_timestamp(deadline.due_at), False)  # a late copy: stale
    assert (oid, did) not in schedule.claims and (oid, did) not in schedule


def test_the_tick_arms_due_deadlines_sweeps_lost_ones_and_relays_the_outbox():
    store, publisher = FakeStore(), FakePublisher()
    placed = order_placed(at=T0)
    make_service(store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    oid, did = placed.order_id, deadline.id
    store.outbox["entry-1"] = {"kind": "event", "event": {"type": "order.cancelled"}}
    before = deadline.due_at - timedelta(seconds=30)  # inside the 60 s horizon
    scheduler, sent = make_scheduler(before, store, publisher)

    assert scheduler.tick() == {"armed": 1, "overdue": 0, "relayed": 1}
    assert sent.tasks[0][1] == (oid, did, format_timestamp(deadline.due_at))
    assert store.outbox == {} and publisher.published[0][0] == "entry-1"

    # Received by a worker that then stops beating: once it is overdue, sent again.
    store.schedule.claim(oid, did, "w@h#1", before)
    store.schedule.heartbeat("w@h#1", ttl_ms=5_000)
    scheduler.clock.now = deadline.due_at + timedelta(seconds=3)
    assert scheduler.tick()["overdue"] == 1
    assert sent.tasks[-1][1] == (oid, did, None)
    assert scheduler.tick()["overdue"] == 0  # backing off


def test_the_sweep_leaves_a_deadline_to_its_live_claimant_or_to_a_busy_queue():
    schedule = InMemorySchedule(clock=lambda: T0)
    schedule.put("o-1", "d", T0)
    schedule.put("o-2", "d", T0)
    schedule.arm_due(T0, 10, recheck_after=2.0)
    schedule.claim("o-1", "d", "w@h#1", T0)
    schedule.heartbeat("w@h#1", ttl_ms=5_000)
    later = T0 + timedelta(seconds=3)

    assert schedule.lost_armed(later, 2.0, 100, 60.0, 300.0, queued=5) == []
    assert schedule.claims[("o-2", "d")][0] == "queue"  # presumed queued behind the others
    assert schedule.lost_armed(later + timedelta(seconds=3), 2.0, 100, 60.0, 300.0) == [
        ("o-2", "d")  # the queue drained and it never came: lost
    ]


def test_the_tick_sends_deadlines_due_together_as_batches_at_their_latest_time():
    store = FakeStore()
    now = T0
    scheduler, sent = make_scheduler(now, store)
    start = T0 + timedelta(seconds=10)  # on a bucket boundary: T0 is a whole second
    count = 2 * BATCH_MAX + 50  # two full batches and a part
    together = [(f"o-{i}", "unpaid_expiry:", start + timedelta(seconds=0.15 * i / count))
                for i in range(count)]  # fmt: skip
    alone = [("o-alone", "unpaid_expiry:", start + timedelta(seconds=5))]
    overdue = [(f"o-late-{i}", "unpaid_expiry:", T0 - timedelta(hours=i + 1)) for i in range(3)]

    tasks = scheduler.send_armed(together + alone + overdue)

    batches = [
        (args[0], options) for name, args, options in sent.tasks if name == DEADLINE_BATCH_TASK
    ]
    singles = [args for name, args, _ in sent.tasks if name == DEADLINE_TASK]
    assert tasks == len(sent.tasks) == 5 and BATCH_WIDTH > 0.15
    assert [len(members) for members, _ in batches] == [BATCH_MAX, BATCH_MAX, 50, 3]
    for members, options in batches[:3]:  # each at its latest member's due time
        assert options["eta"] == max(due for o, _, due in together if o in {m[0] for m in members})
    assert batches[3][1]["eta"] == max(due for _, _, due in overdue)  # in the past: at once
    assert singles == [("o-alone", "unpaid_expiry:", format_timestamp(alone[0][2]))]
    assert len({options["task_id"] for _, options in batches}) == 4


def test_the_sweep_line_is_a_warning_when_it_resent_or_relayed(monkeypatch):
    """Arming is routine (info); a re-send (a worker died) or a relay (an event not out
    with its commit) stays visible at `--loglevel WARNING`."""
    from worker.service_layer import scheduler as scheduler_module

    lines: list[tuple[str, dict]] = []

    class Recorder:
        def info(self, event, **fields):
            lines.append(("info", fields))

        def warning(self, event, **fields):
            lines.append(("warning", fields))

    monkeypatch.setattr(scheduler_module, "log", Recorder())
    store = FakeStore()
    placed = order_placed(at=T0)
    make_service(store=store).handle_message(placed)
    (deadline,) = store.load(placed.order_id).state.deadlines.values()
    oid, did = placed.order_id, deadline.id
    scheduler, _ = make_scheduler(deadline.due_at - timedelta(seconds=30), store)

    scheduler.tick()  # armed only
    store.outbox["entry-1"] = {"kind": "event", "event": {"type": "order.cancelled"}}
    scheduler.tick()  # relayed
    store.schedule.claim(oid, did, "w@h#1", deadline.due_at)
    store.schedule.heartbeat("w@h#1", ttl_ms=5_000)
    scheduler.clock.now = deadline.due_at + timedelta(seconds=3)
    scheduler.tick()  # overdue: sent again
    scheduler.tick()  # backing off, nothing to do: silent

    assert [(level, f["armed"], f["overdue"], f["relayed"]) for level, f in lines] == [
        ("info", 1, 0, 0),
        ("warning", 0, 0, 1),
        ("warning", 0, 1, 0),
    ]
