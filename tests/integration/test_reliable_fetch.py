"""Nothing inbound is lost at kill -9 (worker/shell/transport.py, docs/reliable-fetch.md).

kombu's Redis transport pops a message (BRPOP) and records it as unacked in a second step;
a consumer killed in between loses it (kombu#305, celery#7950). These tests kill consumers
in that window, and real workers while orders flow, and look for every message's effect.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from tests.support.messages import ORDER_EVENT, ago, new_id, placed
from tests.support.processes import wait_until
from tests.support.state import versions
from worker.cli.embedded_redis import child_dies_with_parent

pytestmark = pytest.mark.integration

RELIABLE = "worker.shell.transport:Transport"
QUEUE = "fetch-test"
DEAD_LETTER = "aftersales.dead_letter"
RESTORE_BOUND = 15.0  # alive expiry (5 s) + a beat (1 s), generously, on a loaded CI box


class Consumers:
    """`tests/support/fetch_consumer.py` processes; killed at teardown."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.redis_url, self.tmp_path = redis_url, tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, transport: str, freeze: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"consumer-{len(self.started)}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fetch_consumer",
                self.redis_url,
                transport,
                QUEUE,
                str(freeze) if freeze else "-",
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_dies_with_parent(),
        )
        log.close()
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def consumers(redis_url: str, tmp_path: Path) -> Iterator[Consumers]:
    running = Consumers(redis_url, tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumers wait the whole `fetch_block_timeout` from the start: not the shorter wait
    of a consumer that started or took a message within RECENT seconds."""
    from worker.shell import transport

    monkeypatch.setattr(transport, "RECENT", 0.0)


def publish(redis_url: str, bodies: list[str], priority: int = 0, queue: str = QUEUE) -> None:
    """With kombu's own transport, as any producer would."""
    exchange = Exchange(queue, type="direct")
    with Connection(redis_url) as connection:
        Queue(queue, exchange, routing_key=queue)(connection.default_channel).declare()
        producer = Producer(connection.default_channel, exchange=exchange, routing_key=queue)
        for body in bodies:
            producer.publish(body, serializer="json", priority=priority)


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param(RELIABLE, id="reliable-fetch"),
        pytest.param(
            "redis",
            id="kombu-redis",
            marks=pytest.mark.xfail(
                strict=True, reason="kombu#305: the message popped by BRPOP is in no Redis key"
            ),
        ),
    ],
)
def test_a_consumer_killed_between_fetch_and_bookkeeping_loses_nothing(
    transport, consumers, redis_url, redis_client, tmp_path
):
    publish(redis_url, ["the one"])
    marker = tmp_path / "taken"
    frozen = consumers.start(transport, freeze=marker)
    wait_until(marker.exists, 30, "the frozen consumer never took the message")

    assert redis_client.llen(QUEUE) == 0  # it left the queue...
    os.killpg(frozen.pid, signal.SIGKILL)
    frozen.wait(10)
    # ...and, the consumer dead, is still somewhere in Redis: queue or unacked records
    assert redis_client.llen(QUEUE) + redis_client.hlen("unacked") == 1

    killed_at = time.monotonic()
    consumers.start(transport)  # a living consumer gives it back and then takes it
    wait_until(
        lambda: redis_client.lrange("received", 0, -1) == [b"the one"],
        RESTORE_BOUND,
        lambda: f"received {redis_client.lrange('received', 0, -1)}",
    )
    print(f"redelivered {time.monotonic() - killed_at:.1f} s after the kill")
    wait_until(lambda: redis_client.hlen("unacked") == 0, 10, "the ack left an unacked entry")
    assert redis_client.keys("aftersales:fetch:held:*") == []


def test_priorities_and_queues_are_served_as_kombu_does(redis_url, redis_client):
    """Same order as kombu's own BRPOP: priority steps first (kombu's Redis default: 0 is
    the most urgent), then the queues in fair rotation."""
    served = {}
    for transport in ("redis", RELIABLE):
        publish(redis_url, ["later-1", "later-2"], priority=9)
        publish(redis_url, ["urgent"], priority=0)
        publish(redis_url, ["other-1", "other-2"], priority=9, queue="fetch-other")
        served[transport] = _consume(redis_url, transport, 5)

    assert served[RELIABLE] == served["redis"]
    assert served[RELIABLE][0] == "urgent"
    assert served[RELIABLE].index("later-1") < served[RELIABLE].index("later-2")
    assert redis_client.hlen("unacked") == 0
    assert redis_client.keys("aftersales:fetch:held:*") == []


def _consume(redis_url: str, transport: str, count: int) -> list[str]:
    received: list[str] = []
    with Connection(redis_url, transport=None if transport == "redis" else transport) as conn:
        queues = [Queue(name, routing_key=name) for name in (QUEUE, "fetch-other")]

        def on_message(body, message):
            received.append(body)
            message.ack()

        with conn.Consumer(queues, callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + 15
            while len(received) < count and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
    return received


def test_a_living_consumers_messages_are_left_to_it(redis_url, redis_client):
    """A consumer holding a message unacked is not robbed by another one's restore."""
    from worker.shell import transport

    publish(redis_url, ["mine"])
    with (
        Connection(redis_url, transport=RELIABLE) as holder,
        Connection(redis_url, transport=RELIABLE) as other,
    ):
        taken: list = []
        with holder.Consumer(
            [Queue(QUEUE, routing_key=QUEUE)],
            callbacks=[lambda body, message: taken.append(message)],
            accept=["json"],
        ):
            wait_until(lambda: _drain(holder) or bool(taken), 15, "nothing fetched")
            restorer = transport.Heartbeat(other.default_channel)
            try:
                assert restorer.beat() == 0
            finally:
                restorer.client.close()
            assert redis_client.hlen("unacked") == 1 and redis_client.llen(QUEUE) == 0
            taken[0].ack()
    assert redis_client.hlen("unacked") == 0


def test_a_channel_closed_after_its_connection_was_dropped_stops_no_worker(redis_url, redis_client):
    """On a lost connection Celery drops the kombu Connection (its transport's `client`
    becomes None) and may close a channel after that. kombu's close then restored the
    channel's unacked messages through a client built from that Connection, and raised
    AttributeError 'hostname': the worker exited ("Unrecoverable error", docs/chaos.md,
    finding 7). The close must not raise; what the channel held comes back through the
    restore once its alive key has expired, as after a kill -9."""
    from worker.shell import transport

    publish(redis_url, ["held when the connection dropped"])
    with (
        Connection(redis_url, transport=RELIABLE) as holder,
        Connection(redis_url, transport=RELIABLE) as other,
    ):
        taken: list = []
        channel = holder.channel()
        consumer = holder.Consumer(
            [Queue(QUEUE, routing_key=QUEUE)],
            channel=channel,
            callbacks=[lambda body, message: taken.append(message)],
            accept=["json"],
        )
        consumer.consume()
        wait_until(lambda: _drain(holder) or bool(taken), 15, "nothing fetched")
        channel.connection.client = None  # what Connection._do_close_transport does
        channel.close()  # raised AttributeError before
        channel.close()  # closed again (Celery's pidbox does): kombu has let go of it
        restorer = transport.Heartbeat(other.default_channel)
        try:
            wait_until(lambda: restorer.beat() == 1, RESTORE_BOUND, "the message stayed taken")
        finally:
            restorer.client.close()
    (restored,) = redis_client.lrange(QUEUE, 0, -1)
    body = json.loads(base64.b64decode(json.loads(restored)["body"]))
    assert body == "held when the connection dropped"


@pytest.mark.parametrize("ending", ["ack", "reject", "requeue"])
def test_a_message_ending_after_its_channel_closed_with_the_connection_stops_no_worker(
    redis_url, redis_client, ending
):
    """Finding 8 (docs/chaos.md): Redis goes away while a task runs; Celery drops the
    Connection and closes its channels (finding 7: without kombu's restore), then the task
    ends and Celery acks, rejects or requeues its message on that closed channel. kombu's
    QoS built a client from the channel's connection, None, and raised AttributeError
    'client': "Unrecoverable error", the worker exited. Now it is a connection error,
    which Celery logs (`*_log_error`) and goes on; the message stays taken and the
    restore gives it back."""
    import logging

    from worker.shell import transport

    publish(redis_url, ["ended after the connection dropped"])
    with Connection(redis_url, transport=RELIABLE) as holder, \
            Connection(redis_url, transport=RELIABLE) as other:  # fmt: skip
        taken: list = []
        channel = holder.channel()
        consumer = holder.Consumer([Queue(QUEUE, routing_key=QUEUE)], channel=channel,
                                   callbacks=[lambda body, message: taken.append(message)],
                                   accept=["json"])  # fmt: skip
        consumer.consume()
        wait_until(lambda: _drain(holder) or bool(taken), 15, "nothing fetched")
        channel.connection.client = None  # what Connection._do_close_transport does
        channel.close()
        errors, log = holder.connection_errors, logging.getLogger("test")
        with pytest.raises(errors):  # AttributeError before
            {"ack": taken[0].ack, "reject": taken[0].reject,
             "requeue": lambda: taken[0].reject(requeue=True)}[ending]()  # fmt: skip
        if ending == "ack":
            taken[0].ack_log_error(log, errors)  # as Celery does: logged, not raised
        else:
            taken[0].reject_log_error(log, errors, requeue=ending == "requeue")
        assert redis_client.hlen("unacked") == 1  # still taken, not lost
        restorer = transport.Heartbeat(other.default_channel)
        try:
            wait_until(lambda: restorer.beat() == 1, RESTORE_BOUND, "the message stayed taken")
        finally:
            restorer.client.close()
    (restored,) = redis_client.lrange(QUEUE, 0, -1)
    body = json.loads(base64.b64decode(json.loads(restored)["body"]))
    assert body == "ended after the connection dropped"
    assert redis_client.hlen("unacked") == 0


def test_after_redis_was_down_the_living_beat_again_before_anyone_is_declared_dead(
    redis_url, redis_client
):
    """Alive keys expire while Redis is down (a restart with AOF keeps their expiry times),
    those of living consumers too: the first consumer to restore after the restart must not
    take a living one's messages for a dead one's (they would run twice). A restore after
    a gap in the restores declares nobody dead for a few beats; then the dead are restored."""
    from worker.adapters import keys
    from worker.shell import transport

    publish(redis_url, ["held by the living", "held by the dead"])
    living, dead = "host:2:living", "host:3:dead"
    for consumer in (living, dead):
        script_keys, argv = transport.fetch_arguments(
            "unacked", "unacked_index", consumer, f"{consumer}|0", [(QUEUE, QUEUE, False)]
        )
        assert redis_client.eval(transport.FETCH, len(script_keys), *script_keys, *argv)
        redis_client.delete(keys.alive(consumer))  # expired while Redis was down
    server_now = float("{}.{:06d}".format(*redis_client.time()))
    redis_client.hset(keys.FETCH_RESTORE, "last", server_now - 10)  # the outage: 10 s

    with Connection(redis_url, transport=RELIABLE) as other:
        restorer = transport.Heartbeat(other.default_channel)
        try:
            assert restorer.beat() == 0  # first restore after the outage: nobody is dead yet
            redis_client.set(keys.alive(living), "1", px=transport.ALIVE_TTL_MS)  # it beats
            wait_until(lambda: restorer.beat() == 1, 15, "the dead one's message stayed taken")
        finally:
            restorer.client.close()
    (restored,) = redis_client.lrange(QUEUE, 0, -1)  # a kombu envelope, back in its queue
    assert json.loads(base64.b64decode(json.loads(restored)["body"])) == "held by the dead"
    assert redis_client.hlen(keys.fetch_taken(living)) == 1
    assert not redis_client.exists(keys.fetch_taken(dead))


def test_a_message_moved_by_a_dead_consumers_blocking_wait_goes_back_to_its_queue(
    redis_url, redis_client
):
    """An idle consumer waits in BLMOVE from the list the fetch script named in its wait
    key into its moving list: a message is in the queue or in that list at every moment.
    Killed after the move, before its next fetch took it, the message goes back to the
    head of the list it came from; a living consumer's next fetch takes it from there,
    recorded as held from that list."""
    from worker.adapters import keys
    from worker.shell import transport

    dead, living = "host:4:dead", "host:5:living"
    for consumer in (dead, living):  # both find nothing and name the list they will wait on
        script_keys, argv = transport.fetch_arguments(
            "unacked", "unacked_index", consumer, f"{consumer}|0", [(QUEUE, QUEUE, False)],
            block=QUEUE,
        )  # fmt: skip
        assert redis_client.eval(transport.FETCH, len(script_keys), *script_keys, *argv) is None
        assert redis_client.get(keys.fetch_wait(consumer)) == QUEUE.encode()
        assert redis_client.sismember(keys.FETCH_CONSUMERS, consumer)
    publish(redis_url, ["moved to the dead", "older", "moved to the living"])
    # what their BLMOVEs do when the messages arrive (the oldest first)
    for consumer in (dead, dead, living):
        assert redis_client.lmove(QUEUE, keys.fetch_moving(consumer), "RIGHT", "LEFT")
    assert redis_client.llen(QUEUE) == 0

    # the living one's next fetch takes its message, recorded as held from the queue
    script_keys, argv = transport.fetch_arguments(
        "unacked", "unacked_index", living, f"{living}|1", [(QUEUE, QUEUE, False)],
        moved=(QUEUE, QUEUE, False), block=QUEUE,
    )  # fmt: skip
    number, payload, junk, inflight = redis_client.eval(
        transport.FETCH, len(script_keys), *script_keys, *argv
    )
    assert (number, junk, inflight) == (0, 0, b"")
    assert json.loads(base64.b64decode(json.loads(payload)["body"])) == "moved to the living"
    held = redis_client.hget(keys.fetch_taken(living), f"{living}|1")
    assert held == f"{len(payload)} {QUEUE}".encode()
    assert redis_client.hexists("unacked", f"{living}|1")

    redis_client.delete(keys.alive(dead))  # the dead one's alive key has expired
    with Connection(redis_url, transport=RELIABLE) as other:
        sweeper = transport.Heartbeat(other.default_channel)
        try:
            wait_until(lambda: sweeper.beat() == 2, RESTORE_BOUND, "the moved ones stayed")
        finally:
            sweeper.client.close()
    # back in the queue in their order: the older one is the next out
    bodies = [json.loads(base64.b64decode(json.loads(raw)["body"]))
              for raw in reversed(redis_client.lrange(QUEUE, 0, -1))]  # fmt: skip
    assert bodies == ["moved to the dead", "older"]
    assert not redis_client.exists(keys.fetch_moving(dead), keys.fetch_wait(dead))
    assert redis_client.hlen(keys.fetch_taken(living)) == 1  # the living keep theirs


def test_one_fetch_takes_up_to_the_free_prefetch_each_recorded_and_restored_in_order(
    redis_url, redis_client
):
    """A consumer with room for several messages takes them in one script, in kombu's
    order (a list drained before the next), each under its own delivery tag and recorded
    before the reply; killed then, all of them go back."""
    from worker.adapters import keys
    from worker.shell import transport

    publish(redis_url, ["a-1", "a-2"])
    publish(redis_url, ["b-1", "b-2"], queue="fetch-other")
    dead = "host:6:dead"
    lists = [(QUEUE, QUEUE, False), ("fetch-other", "fetch-other", False)]
    script_keys, argv = transport.fetch_arguments(
        "unacked", "unacked_index", dead, f"{dead}|x", lists, count=3
    )
    reply = redis_client.eval(transport.FETCH, len(script_keys), *script_keys, *argv)
    bodies = [json.loads(base64.b64decode(json.loads(raw)["body"])) for raw in reply[1::4]]
    assert bodies == ["a-1", "a-2", "b-1"] and reply[0::4] == [1, 1, 2]
    tags = [f"{dead}|x", f"{dead}|x.2", f"{dead}|x.3"]
    assert sorted(redis_client.hkeys("unacked")) == [t.encode() for t in tags]
    assert sorted(redis_client.hkeys(keys.fetch_taken(dead))) == [t.encode() for t in tags]
    assert redis_client.llen("fetch-other") == 1

    redis_client.delete(keys.alive(dead))
    with Connection(redis_url, transport=RELIABLE) as other:
        sweeper = transport.Heartbeat(other.default_channel)
        try:
            wait_until(lambda: sweeper.beat() == 3, RESTORE_BOUND, "the batch stayed held")
        finally:
            sweeper.client.close()
    assert redis_client.hlen("unacked") == 0
    # back at the head of their lists (in no particular order among themselves: the
    # rules put late messages in their place), served before what was behind them
    served = _consume(redis_url, RELIABLE, 4)
    assert served.index("b-1") < served.index("b-2")
    assert sorted(served) == ["a-1", "a-2", "b-1", "b-2"]


def test_an_idle_consumer_waits_in_redis_instead_of_polling(redis_url, redis_client, left_alone):
    """Idle, a consumer sends the fetch script once a blocking wait ends (every
    BLOCK_TIMEOUT, 2 s), not every 50 ms; a message arriving wakes it at once."""
    with Connection(redis_url, transport=RELIABLE) as connection:
        received: list[float] = []

        def on_message(body, message):
            received.append(time.monotonic())
            message.ack()

        with connection.Consumer([Queue(QUEUE, routing_key=QUEUE)], callbacks=[on_message],
                                 accept=["json"]):  # fmt: skip
            _drain(connection)
            before = _calls(redis_client)
            idle_until = time.monotonic() + 5
            while time.monotonic() < idle_until:
                _drain(connection)
            calls = {name: n - before.get(name, 0) for name, n in _calls(redis_client).items()}
            assert 2 <= calls.get("blmove", 0) <= 4, calls  # 5 s of 2 s waits
            # fetch scripts and beats (one restore script a second), not 100 fetches
            assert calls.get("evalsha", 0) <= 20, calls
            publish(redis_url, ["wake up"])
            sent = time.monotonic()
            wait_until(lambda: _drain(connection) or bool(received), 15, "nothing fetched")
            assert received[0] - sent < 2.0  # at once, but the box is loaded
    assert redis_client.hlen("unacked") == 0


def test_a_consumer_that_just_took_a_message_waits_a_second_at_most(redis_url, redis_client):
    """Within RECENT (5 s) of starting or of taking a message a consumer waits
    BUSY_BLOCK_TIMEOUT (1 s) at most, however long its fetch_block_timeout: a message in a
    queue the wait does not watch is taken within about a second, not at the end of an 8 s
    wait. Left alone longer, it waits the whole block."""
    from worker.shell import transport

    options = {"fetch_block_timeout": 8}
    with Connection(redis_url, transport=RELIABLE, transport_options=options) as connection:
        received: list[tuple[str, float]] = []

        def on_message(body, message):
            received.append((body, time.monotonic()))
            message.ack()

        queues = [Queue(QUEUE, routing_key=QUEUE), Queue("fetch-other", routing_key="fetch-other")]
        with connection.Consumer(queues, callbacks=[on_message], accept=["json"]):
            channel = connection.default_channel
            assert channel.wait_seconds() == 1.0  # just started
            channel._took_at -= transport.RECENT  # nothing taken since it started
            assert channel.wait_seconds() == 8
            publish(redis_url, ["first"])
            wait_until(lambda: _drain(connection) or bool(received), 15, "never fetched")
            assert channel.wait_seconds() == transport.BUSY_BLOCK_TIMEOUT == 1.0
            wait_until(lambda: _waiting(connection), 15, "the consumer never waited")
            sent = time.monotonic()
            publish(redis_url, ["other"], queue="fetch-other")  # not the queue waited on
            wait_until(lambda: _drain(connection) or len(received) > 1, 30, "never fetched")
            assert received[1][0] == "other"
            assert received[1][1] - sent < 4.0  # a 1 s wait; the 8 s one would end near 8
            channel._took_at -= transport.RECENT  # left alone since
            assert channel.wait_seconds() == 8
    assert redis_client.hlen("unacked") == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 2.0), ("PT1S", 1.0), ("PT0.5S", 0.5), ("PT4.9S", 4.9)],
)
def test_the_fetch_wait_setting_reaches_the_transport(monkeypatch, raw, expected):
    """AFTERSALES_FETCH_WAIT (default 2 s) is the worker's `fetch_block_timeout`."""
    from worker.celery import broker_options
    from worker.settings import Settings

    monkeypatch.delenv("AFTERSALES_FETCH_WAIT", raising=False)
    if raw is not None:
        monkeypatch.setenv("AFTERSALES_FETCH_WAIT", raw)
    settings = Settings.from_env()
    assert settings.fetch_wait.total_seconds() == expected
    assert broker_options(settings)["fetch_block_timeout"] == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [("2", "AFTERSALES_FETCH_WAIT"), ("PT0S", "AFTERSALES_FETCH_WAIT"),
     ("-PT1S", "AFTERSALES_FETCH_WAIT"), ("PT5S", "shorter than the beat tick's expiry, 5 s"),
     ("PT21S", "shorter than the beat tick's expiry, 5 s")],
)  # fmt: skip
def test_a_bad_fetch_wait_stops_start_up_readably(monkeypatch, raw, says):
    from worker.settings import Settings, SettingsError

    monkeypatch.setenv("AFTERSALES_FETCH_WAIT", raw)
    with pytest.raises(SettingsError, match=says):
        Settings.from_env()


@pytest.mark.parametrize(
    ("block", "options", "most"),
    [(0, {}, 25), (-1, {}, 25), (25.5, {}, 25), (60, {}, 25),
     (3, {"socket_timeout": 3.5}, 2.5), (3, {"health_check_interval": 2}, 2)],
)  # fmt: skip
def test_a_wait_kombu_would_drop_as_stale_is_refused(redis_url, block, options, most):
    """kombu drops a connection whose wait has not answered within brpop_timeout plus
    health_check_interval (1 + 25 s), and a socket timeout gives up on it: a wait that
    long would reconnect forever. A second's margin under both."""
    connection = Connection(
        redis_url,
        transport=RELIABLE,
        transport_options={"fetch_block_timeout": block, **options},
    )
    refused = pytest.raises(ValueError, match=f"above 0 and at most {most:g} s")
    with connection, refused:
        connection.default_channel  # noqa: B018  # the channel reads its options


def test_kombus_binding_timer_looks_every_ten_seconds_after_its_first_look(redis_url):
    """kombu looks at its expiring bindings every second (a wake-up of an idle worker each
    time); this transport, a second after the loop starts and then every ten seconds."""
    from kombu.asynchronous import Hub

    from worker.shell.transport import BINDING_REFRESH_PERIOD

    hub = Hub()
    try:
        with Connection(redis_url, transport=RELIABLE) as connection:
            connection.default_channel  # noqa: B018
            now = time.monotonic()
            connection.transport.register_with_event_loop(connection.connection, hub)
            looks = sorted(
                round(event.eta - now)
                for event in hub.timer.queue
                if event.entry.fun.__name__ == "maybe_refresh_binding_expiry"
                and not event.entry.canceled
            )
            assert looks == [1, BINDING_REFRESH_PERIOD] == [1, 10]
    finally:
        hub.close()


def _waiting(connection: Connection) -> bool:
    """Drain a little; True once the channel's BLMOVE and the script sent with it are out."""
    _drain(connection)
    channel = connection.default_channel
    return bool(channel._blocking and channel._in_poll)


def test_a_message_arriving_during_the_wait_is_taken_without_another_round_trip(
    redis_url, redis_client
):
    """The BLMOVE and the fetch script go out in one write: Redis runs the script the
    moment the BLMOVE returns, so the message it moved is taken, recorded and delivered
    from the replies already sent, with no fetch sent after the wait ended."""
    with Connection(redis_url, transport=RELIABLE) as connection:
        received: list[tuple[str, int]] = []
        sent: list[bytes] = []

        def on_message(body, message):
            received.append((body, len(sent)))
            message.ack()

        with connection.Consumer([Queue(QUEUE, routing_key=QUEUE)], callbacks=[on_message],
                                 accept=["json"]):  # fmt: skip
            wait_until(lambda: _waiting(connection), 15, "the consumer never waited")
            redis_connection = connection.default_channel.client.connection
            send = redis_connection.send_packed_command

            def spy(command, *args, **kwargs):
                parts = [command] if isinstance(command, bytes | str | memoryview) else command
                sent.append(b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts))
                return send(command, *args, **kwargs)

            redis_connection.send_packed_command = spy
            publish(redis_url, ["wake up"])
            wait_until(lambda: _drain(connection) or bool(received), 15, "nothing fetched")
    assert [body for body, _ in received] == ["wake up"]
    before_delivery = sent[: received[0][1]]
    # every fetch sent meanwhile was a wait with its script, none a script alone
    assert all(b"BLMOVE" in command for command in before_delivery), before_delivery
    assert redis_client.hlen("unacked") == 0


def test_a_queue_added_during_the_wait_is_looked_at_when_the_wait_ends(
    redis_url, redis_client, left_alone
):
    """The script sent with a BLMOVE was prepared before the wait: a queue added meanwhile
    (Celery's add_consumer) is not among its lists. When it finds nothing, the next fetch
    is a script looking at every queue at once, not another whole wait: a message in the
    new queue is taken when the current wait ends, not a second one later."""
    block = 4.0
    options = {"fetch_block_timeout": block}
    with Connection(redis_url, transport=RELIABLE, transport_options=options) as connection:
        received: list[float] = []

        def on_message(body, message):
            received.append(time.monotonic())
            message.ack()

        with connection.Consumer([Queue(QUEUE, routing_key=QUEUE)], callbacks=[on_message],
                                 accept=["json"]):  # fmt: skip
            wait_until(lambda: _waiting(connection), 15, "the consumer never waited")
            waiting_since = time.monotonic()
            with connection.Consumer([Queue("fetch-other", routing_key="fetch-other")],
                                     callbacks=[on_message], accept=["json"]):  # fmt: skip
                publish(redis_url, ["in the new queue"], queue="fetch-other")
                wait_until(lambda: _drain(connection) or bool(received), 30, "never fetched")
    # the wait out ends within `block`; a second whole wait would end near 2 * block
    assert received[0] - waiting_since < 1.5 * block
    assert redis_client.hlen("unacked") == 0


@pytest.mark.parametrize("forgotten", [False, True], ids=["script-ran", "script-forgotten"])
def test_a_wait_cut_short_by_a_cancel_gives_its_message_back_to_the_head(
    forgotten, redis_url, redis_client, left_alone
):
    """A consumer cancelled (a warm shutdown) while its BLMOVE and script are out reads
    both replies and puts the message back at the head of its queue: taken by the script,
    through its unacked record; the script refused (Redis forgot it), from the moving list."""
    from worker.adapters import keys

    publish(redis_url, ["older"])  # the queue exists; taken and acked first
    options = {"fetch_block_timeout": 10}  # the message surely arrives during the wait
    with Connection(redis_url, transport=RELIABLE, transport_options=options) as connection:
        taken: list[str] = []

        def on_message(body, message):
            taken.append(body)
            message.ack()

        with connection.Consumer([Queue(QUEUE, routing_key=QUEUE)], callbacks=[on_message],
                                 accept=["json"]):  # fmt: skip
            channel = connection.default_channel
            wait_until(lambda: _waiting(connection), 15, "the consumer never waited")
            assert taken == ["older"]
            if forgotten:
                redis_client.script_flush()
            publish(redis_url, ["given back"])
            assert channel.give_back_pending()
            consumer = channel.consumer_id
            assert not redis_client.exists(keys.fetch_moving(consumer))
            assert redis_client.hlen(keys.fetch_taken(consumer)) == 0
    assert taken == ["older"]
    assert redis_client.hlen("unacked") == 0
    assert _consume(redis_url, RELIABLE, 1) == ["given back"]


def test_the_consumer_beat_carries_the_worker_incarnations_alive_key_while_it_is_fresh(
    redis_url, redis_client, monkeypatch
):
    """The reliable fetch's beat sets the worker incarnation's alive key in its own round
    trip while the worker's event loop ticks (fresh), and says when it did; a stuck loop
    (not fresh) is not carried: its key runs out and the sweep re-sends its deadlines."""
    from worker.shell import transport

    key, fresh = "aftersales:alive:node@host#boot", [True]
    carried = transport.CarriedAlive(key, 5_000, lambda: fresh[0])
    monkeypatch.setattr(transport, "carried", carried)
    with Connection(redis_url, transport=RELIABLE) as connection:
        beat = transport.Heartbeat(connection.default_channel)
        try:
            assert not carried.set_within(60)
            beat.beat()
            assert 3_000 < redis_client.pttl(key) <= 5_000
            assert carried.set_within(1.5)
            assert redis_client.exists(f"aftersales:alive:{beat.consumer_id}")  # its own too

            redis_client.delete(key)
            fresh[0], carried.set_at = False, float("-inf")
            beat.beat()
            assert not redis_client.exists(key)
            assert not carried.set_within(60)
        finally:
            beat.client.close()


def test_liveness_beats_itself_only_when_no_consumer_beat_carried_its_key(monkeypatch):
    """The worker's Liveness timer ticks every second, every two where the fetch's beat
    carries the key; it writes the key itself only when no consumer beat has set it within
    FRESH (none runs yet, Redis was slow, a broker that is not the state's Redis), so the
    key never goes unrefreshed while the loop ticks."""
    from worker.shell import hooks, transport

    beats: list[str] = []

    class Store:
        def heartbeat(self, claimant: str, ttl_ms: int) -> None:
            beats.append(claimant)

    monkeypatch.setattr(hooks.runtime, "store", lambda: Store())
    step = hooks.Liveness(None)
    step._tick("w#1")  # nothing carries it: beats itself
    assert beats == ["w#1"]
    step.carried = transport.CarriedAlive("k", 5_000, lambda: True)
    step._tick("w#1")  # carried, but never set yet
    assert beats == ["w#1", "w#1"]
    step.carried.set_at = time.monotonic()  # a consumer beat just set it
    step._tick("w#1")
    assert beats == ["w#1", "w#1"]
    step.carried.set_at = time.monotonic() - hooks.Liveness.FRESH  # too long ago
    step._tick("w#1")
    assert beats == ["w#1"] * 3
    # started where the fetch can carry it: the carried key is the incarnation's, fresh
    # while the timer ticks; stopped, nothing is carried any more
    periods: list[float] = []

    def call_repeatedly(period: float, *_: Any) -> SimpleNamespace:
        periods.append(period)
        return SimpleNamespace(cancel=lambda: None)

    timer = SimpleNamespace(call_repeatedly=call_repeatedly)
    monkeypatch.setattr(hooks, "carried_by_fetch", lambda: False)
    hooks.Liveness(None).start(SimpleNamespace(hostname="w@host", timer=timer))
    monkeypatch.setattr(hooks, "carried_by_fetch", lambda: True)
    monkeypatch.setattr(transport, "carried", None)
    step.carried = None
    step.start(SimpleNamespace(hostname="w@host", timer=timer))
    # beating itself, every second; carried, every two: within FRESH, half a second to spare
    assert periods == [hooks.Liveness.PERIOD, hooks.Liveness.CARRIED_PERIOD] == [1.0, 2.0]
    assert hooks.Liveness.FRESH - hooks.Liveness.CARRIED_PERIOD == 0.5
    carried = transport.carried
    assert carried is step.carried and carried is not None
    assert carried.key == f"aftersales:alive:{hooks.incarnation('w@host')}" and carried.fresh()
    step.ticked -= hooks.Liveness.FRESH  # the loop stopped ticking
    assert not carried.fresh()
    step.stop(None)
    assert transport.carried is None


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def test_a_rejected_message_goes_back_to_its_queue_through_kombus_own_path(redis_url, redis_client):
    """Celery rejects with requeue when a pool process dies (task_reject_on_worker_lost):
    kombu restores it from the unacked entry the fetch script wrote."""
    publish(redis_url, ["again"])
    with Connection(redis_url, transport=RELIABLE) as connection:
        taken: list = []
        with connection.Consumer(
            [Queue(QUEUE, routing_key=QUEUE)],
            callbacks=[lambda body, message: taken.append(message)],
            accept=["json"],
        ):
            wait_until(lambda: _drain(connection) or bool(taken), 15, "nothing fetched")
            taken[0].reject(requeue=True)

    assert redis_client.llen(QUEUE) == 1
    assert redis_client.hlen("unacked") == 0
    assert redis_client.keys("aftersales:fetch:held:*") == []
    assert _consume(redis_url, RELIABLE, 1) == ["again"]


def test_fetching_goes_on_after_redis_forgets_its_scripts(redis_url, redis_client):
    """A Redis restart (or SCRIPT FLUSH) forgets loaded scripts: NOSCRIPT loads it again."""
    redis_client.script_flush()
    publish(redis_url, ["first"])
    assert _consume(redis_url, RELIABLE, 1) == ["first"]
    redis_client.script_flush()
    publish(redis_url, ["second"])
    assert _consume(redis_url, RELIABLE, 1) == ["second"]


UNDELIVERABLE = {
    "not-json": b"\xff not json",
    "no-properties": b'{"body": "e30="}',
    "bad-base64-body": json.dumps(
        {
            "body": "%%% not base64",
            "content-type": "application/json",
            "headers": {},
            "content-encoding": "utf-8",
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": "t",
                "priority": 0,
                "delivery_info": {"exchange": QUEUE, "routing_key": QUEUE},
            },
        }
    ).encode(),
}


@pytest.mark.parametrize("junk", UNDELIVERABLE.values(), ids=UNDELIVERABLE.keys())
def test_a_message_no_consumer_could_take_is_dead_lettered_and_the_next_one_served(
    junk, redis_url, redis_client
):
    """Bytes pushed onto the list by hand: kombu cannot make a message of them, so they
    are not kept (and restored after every crash) but dead-lettered with their bytes;
    what follows is served as usual."""
    publish(redis_url, ["after the junk"])
    redis_client.rpush(QUEUE, junk)  # the head of the queue: taken first

    assert _consume(redis_url, RELIABLE, 1) == ["after the junk"]
    assert redis_client.llen(QUEUE) == 0
    assert redis_client.hlen("unacked") == 0
    assert redis_client.keys("aftersales:fetch:held:*") == []
    (letter,) = _dead_letters(redis_url)
    assert letter["reason"] == "undeliverable" and letter["original"]["queue"] == QUEUE
    kept = letter["original"].get("text")
    if kept is None:
        kept = base64.b64decode(letter["original"]["base64"])
    assert (kept.encode() if isinstance(kept, str) else kept) == junk


def _dead_letters(redis_url: str) -> list[dict]:
    """Bodies waiting in the dead-letter queue, read by a stock kombu consumer."""
    queue = Queue(
        DEAD_LETTER, Exchange(DEAD_LETTER, type="direct", durable=True), routing_key=DEAD_LETTER
    )
    letters = []
    with Connection(redis_url) as connection:
        bound = queue(connection.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            letters.append(json.loads(message.body))
    return letters


def _drain(connection: Connection) -> bool:
    with contextlib.suppress(TimeoutError):
        connection.drain_events(timeout=0.2)
    return False


# --- real workers, kill -9 while orders flow --------------------------------------------

KILLS = 4
RATE = 40  # orders a second: about what two workers manage here, so a backlog builds


def test_kill_9_of_a_worker_while_orders_flow_loses_and_repeats_nothing(
    start_worker, wire_client, redis_client
):
    workers = [start_worker()]  # a steady one
    victim = start_worker()
    workers.append(victim)
    orders: list[str] = []
    stop = threading.Event()
    sender = threading.Thread(target=_send_orders, args=(wire_client, orders, stop))
    sender.start()
    try:
        for _ in range(KILLS):
            wait_until(lambda v=victim: _holds(redis_client, v.pid), 60, "it took none")
            victim.kill9()  # with its prefetched and running messages, mid-flow
            victim = start_worker()
            workers.append(victim)
    finally:
        stop.set()
        sender.join(10)

    wait_until(
        lambda: _applied(redis_client, orders) == len(orders),
        90,
        lambda: (
            f"{len(orders) - _applied(redis_client, orders)} orders never applied; "
            f"{redis_client.hlen('unacked')} messages unacked (back only after the visibility "
            f"timeout), {redis_client.llen('aftersales.inbound')} queued; the rest are lost"
        ),
    )
    assert set(versions(redis_client, orders)) == {1}, "applied twice"  # exactly-once commit
    wait_until(lambda: redis_client.hlen("unacked") == 0, 30, "unacked entries left behind")
    # the kills landed while the victims held messages, which the living gave back
    restored = sum(_restored(worker.log_text()) for worker in workers)
    assert restored >= 1
    print(f"{KILLS} kills, {restored} messages restored, {len(orders)} orders applied once")


def _holds(client: redis.Redis, pid: int) -> bool:
    """The worker whose main process is `pid` holds a message it took: its consumer's
    held hash (aftersales:fetch:held:<host>:<pid>:<random>) is not empty."""
    held = client.keys(f"aftersales:fetch:held:*:{pid}:*")
    return any(client.hlen(key) for key in held)


def _send_orders(wire_client, orders: list[str], stop: threading.Event) -> None:
    """RATE orders a second, in bursts, until told to stop."""
    while not stop.wait(0.25):
        for _ in range(RATE // 4):
            order = new_id("o")
            wire_client.send(ORDER_EVENT, placed(order, ago(minutes=5)))
            orders.append(order)


def _restored(log: str) -> int:
    """Messages a worker gave back for dead consumers, from its JSON log lines."""
    lines = (json.loads(line) for line in log.splitlines() if RESTORED in line)
    return sum(int(line["count"]) for line in lines)


RESTORED = "restored messages of dead consumers"


def _applied(client: redis.Redis, orders: list[str]) -> int:
    return sum(1 for version in versions(client, orders) if version >= 1)


def test_junk_held_by_a_consumer_dead_longer_than_the_visibility_timeout_stops_no_worker(
    start_worker, event_listener, redis_client
):
    """A consumer killed between fetching bytes that are not a kombu message and
    dead-lettering them: if no consumer lives to give them back before the visibility
    timeout, kombu's own restore (`restore_visible`, which every kombu client on this Redis
    runs, a worker first as it starts) reads kombu's `unacked` hash as JSON. What the
    fetch left there must not stop anyone, and the bytes must still be dead-lettered."""
    from worker.shell import transport

    junk, dead = b"\xff not json", "host:1:dead"
    redis_client.rpush("aftersales.inbound", junk)
    script_keys, argv = transport.fetch_arguments(
        "unacked",
        "unacked_index",
        dead,
        f"{dead}|0",
        [("aftersales.inbound", "aftersales.inbound", False)],
    )
    argv[0] = time.time() - 3600  # fetched an hour ago; the consumer died right after
    assert redis_client.eval(transport.FETCH, len(script_keys), *script_keys, *argv)
    redis_client.delete(*script_keys[4:5])  # its alive key, long expired

    worker = start_worker(concurrency=1)
    (letter,) = event_listener.dead_letters(timeout=30.0)
    assert letter["reason"] == "undeliverable"
    assert base64.b64decode(letter["original"]["base64"]) == junk
    wait_until(lambda: not redis_client.keys("aftersales:fetch:held:*"), 15, "still held")
    assert redis_client.hlen("unacked") == 0 and redis_client.llen("aftersales.inbound") == 0
    assert worker.alive() and "Unrecoverable error" not in worker.log_text()
