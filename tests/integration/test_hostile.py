"""Hostile input through ONE real worker: a hand-made corpus and hypothesis-generated
payloads, sent in bulk. Afterwards every message is accounted for (applied, dead-lettered
with its reason, or answered with `action.rejected`), the worker is alive and answers a
ping, the order the refused messages aimed at is unchanged, and no queue holds anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from tests.integration.hostile_corpus import Case, generated, hand_made
from tests.support.messages import ORDER_EVENT, ago, message, new_id, placed
from tests.support.processes import (
    START_TIMEOUT,
    WORKER_QUEUES,
    CeleryProcess,
    ping,
    spawn,
    tail,
    unique_node,
    wait_until,
    worker_args,
)
from tests.support.state import wait_applied
from tests.support.wire import EventListener, WireClient
from worker.adapters import keys
from worker.adapters.redis_store import RedisStore

pytestmark = pytest.mark.integration

# Generated cases per kind (random bytes, random JSON, mutated message): 3 x 20 keeps the
# module well under a minute on 2 cores while the hand-made corpus covers the edges.
GENERATED_PER_KIND = 20
# Held messages of unknown orders are dead-lettered after this, instead of 10 minutes.
ENV = {"AFTERSALES_HOLD_FOR": "PT3S", "AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
SETTLE_TIMEOUT = 60.0


@dataclass
class World:
    redis_url: str
    client: redis.Redis
    worker: CeleryProcess
    wire: WireClient
    listener: EventListener


def _env(redis_url: str, labels: str) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AFTERSALES_") and k != "PYTHONWARNINGS"
    }
    return {
        **env,
        "AFTERSALES_REDIS_URL": redis_url,
        "AFTERSALES_LABEL_DIR": labels,
        "PYTHONUNBUFFERED": "1",
        **ENV,
    }


@pytest.fixture(scope="module")
def world(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One worker and one beat for the whole module, on a flushed Redis."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    base = tmp_path_factory.mktemp("hostile")
    env = _env(redis_server, str(base / "labels"))
    node_arg, node = unique_node("hostile")
    worker = spawn(
        "worker",
        worker_args(node_arg, 2, "prefork", "INFO", WORKER_QUEUES),
        env,
        base,
        base / "worker.log",
        node,
    )
    beat_dir = base / "beat"
    beat_dir.mkdir()
    beat = spawn(
        "beat",
        ["beat", "--schedule", str(beat_dir / "schedule")],
        env,
        beat_dir,
        beat_dir / "beat.log",
    )
    wire, listener = WireClient(redis_server), EventListener(redis_server)
    try:
        wait_until(
            lambda: ping(redis_server, node) or not worker.alive(),
            START_TIMEOUT,
            lambda: worker._failure("a ping reply"),
        )
        yield World(redis_server, client, worker, wire, listener)
    finally:
        listener.close()
        wire.close()
        beat.stop()
        worker.stop()
        client.close()


def _victim(world: World) -> tuple[str, str]:
    """A placed, paid, ready-to-ship order the refused messages aim at."""
    order, paid = new_id("victim"), message("order.paid", "", ago(hours=1))
    paid["order_id"] = order
    world.wire.send(ORDER_EVENT, placed(order, ago(hours=2)))
    world.wire.send(ORDER_EVENT, paid)
    world.wire.send(ORDER_EVENT, message("order.ready_to_ship", order, ago(minutes=30)))
    wait_applied(world.client, order, 3)
    return order, paid["message_id"]


def _send(world: World, case: Case) -> None:
    if case.queue == "aftersales.inbound":
        world.wire.send_raw(
            case.body,
            content_type=case.content_type,
            content_encoding=case.content_encoding,
            headers=case.headers,
        )
        return
    queue = Queue(case.queue, Exchange(case.queue, type="direct"), routing_key=case.queue)
    with Connection(world.redis_url) as connection, connection.Producer() as producer:
        producer.publish(
            case.body,
            exchange=queue.exchange,
            routing_key=case.queue,
            content_type=case.content_type,
            content_encoding=case.content_encoding,
            headers=dict(case.headers or {}),
            declare=[queue],
        )


# --- accounting --------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _decoded(case: Case) -> Any:
    try:
        return json.loads(case.body)
    except (ValueError, RecursionError):
        return None


_NOT_A_TASK = object()


def _message(case: Case) -> Any:
    """The message object as the task received it, if the body is a protocol 2 body."""
    body = _decoded(case)
    if isinstance(body, list) and len(body) == 3 and isinstance(body[0], list):
        args, kwargs = body[0], body[1]
        return args[0] if len(args) == 1 and not kwargs else {"args": args, "kwargs": kwargs}
    return _NOT_A_TASK


def _ids(msg: dict[str, Any]) -> str:
    """Order and message id, whatever their JSON type, as one hashable key."""
    return _canonical([msg.get("order_id"), msg.get("message_id")])


def _letter_keys(letter: dict[str, Any]) -> list[tuple[Any, ...]]:
    original = letter.get("original")
    if (
        isinstance(original, dict)
        and "headers" in original
        and ("text" in original or "base64" in original)
    ):
        if "sha256" in original:
            return [("raw", original["sha256"])]
        raw = (
            base64.b64decode(original["base64"])
            if "base64" in original
            else original["text"].encode("utf-8", "surrogatepass")
        )
        return [("raw", hashlib.sha256(raw).hexdigest())]
    if letter.get("reason") == "held_too_long" and isinstance(original, dict):
        return [("held", _ids(original))]
    return [("json", _canonical(original))]


def _case_keys(case: Case) -> list[tuple[Any, ...]]:
    found = [("raw", hashlib.sha256(case.body).hexdigest())]
    msg = _message(case)
    if msg is not _NOT_A_TASK:
        found.append(("json", _canonical(msg)))
        if isinstance(msg, dict):
            found.append(("held", _ids(msg)))
            found.append(("mid", _ids(msg)))
    return found


def _outcomes(world: World, cases: list[Case]) -> list[tuple[str, Any] | None]:
    """What became of each case so far: ("dead", reason), ("rejected", code),
    ("applied", None) or None (not yet)."""
    outcome: list[tuple[str, Any] | None] = [None] * len(cases)
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for index, case in enumerate(cases):
        for key in _case_keys(case):
            by_key.setdefault(key, []).append(index)

    def claim(key: tuple[Any, ...], result: tuple[str, Any]) -> None:
        for index in by_key.get(key, []):
            if outcome[index] is None:
                outcome[index] = result
                return

    world.listener.dead_letters(timeout=0, count=0)
    for letter in world.listener.letters:
        for key in _letter_keys(letter):
            claim(key, ("dead", letter.get("reason")))
    for event in world.listener.of_type("action.rejected"):
        data = event["data"]
        claim(
            ("mid", _ids({"order_id": event["subject"], "message_id": data["message_id"]})),
            ("rejected", data["code"]),
        )
    store = RedisStore(world.client)
    for index, case in enumerate(cases):
        msg = _message(case)
        if outcome[index] is None and isinstance(msg, dict) and _applied(store, msg):
            outcome[index] = ("applied", None)
    return outcome


def _applied(store: RedisStore, msg: dict[str, Any]) -> bool:
    order, message_id = msg.get("order_id"), msg.get("message_id")
    if not isinstance(order, str) or not isinstance(message_id, str) or not order:
        return False
    try:
        if not store.client.sismember(store.keys.seen_messages(order), message_id):
            return False
        state = store.load(order).state
    except (redis.RedisError, UnicodeError):
        return False
    return state is not None and all(
        p.message.get("message_id") != message_id for p in state.parked
    )


def _inbound_left(client: redis.Redis) -> int:
    """Messages still queued on, or taken but not acked from, aftersales.inbound (and the
    control queue; the deadlines queue legitimately holds armed deadline tasks)."""
    queued = sum(
        int(client.llen(key))
        for pattern in (b"aftersales.inbound*", b"aftersales.control*")
        for key in client.keys(pattern)
    )
    unacked = 0
    for raw in client.hvals("unacked"):
        _, _, routing_key = json.loads(raw)
        unacked += routing_key in ("aftersales.inbound", "aftersales.control")
    return queued + unacked


# --- the test ----------------------------------------------------------------------------


def test_hostile_input_is_accounted_for_and_never_kills_the_worker(world: World):
    victim, paid_id = _victim(world)
    state_before = world.client.hget(keys.order_state(victim), "state")
    cases = hand_made(victim, paid_id) + generated(GENERATED_PER_KIND)
    assert len(cases) >= 120

    for case in cases:
        _send(world, case)

    deadline = time.monotonic() + SETTLE_TIMEOUT
    while None in (outcome := _outcomes(world, cases)) and time.monotonic() < deadline:
        assert world.worker.alive(), tail(world.worker.log_text())
        time.sleep(0.5)
    wait_until(lambda: _inbound_left(world.client) == 0, 15.0, "inbound queue not empty")

    missing = [
        (case.name, case.body[:300])
        for case, result in zip(cases, outcome, strict=True)
        if result is None
    ]
    applied = sum(1 for r in outcome if r and r[0] == "applied")
    dead = sum(1 for r in outcome if r and r[0] == "dead")
    rejected = sum(1 for r in outcome if r and r[0] == "rejected")
    alive = world.worker.alive() and ping(world.redis_url, world.worker.name or "")
    crashed = 0 if alive and "Unrecoverable error" not in world.worker.log_text() else 1
    print(
        f"hostile: tried {len(cases)}, applied {applied}, dead-lettered {dead}, "
        f"rejected {rejected}, crashed {crashed}"
    )

    assert crashed == 0, tail(world.worker.log_text())
    assert not missing, f"not accounted for: {missing}; dead letters: {_unclaimed(world, cases)}"
    wrong = [
        (case.name, case.expect, result)
        for case, result in zip(cases, outcome, strict=True)
        if case.expect is not None and _expected(case.expect) != result
    ]
    assert not wrong, wrong
    unexplained = [
        (case.name, result)
        for case, result in zip(cases, outcome, strict=True)
        if result and result[0] == "dead" and result[1] in ("unprocessable", "processing_failed")
    ]
    assert not unexplained, f"refused only by the safety net: {unexplained}"
    assert _the_order(world.client.hget(keys.order_state(victim), "state")) == _the_order(
        state_before
    )
    assert "signal hook failed" not in world.worker.log_text()  # nothing raised in a hook


def _the_order(raw: bytes | None) -> dict[str, Any]:
    """An order's state without its event-time log: a refusal publishes action.rejected,
    which the log records as a published outcome (worker/rules/eventtime.py); nothing of
    the order itself may change."""
    state = json.loads(raw or b"{}")
    state.pop("history", None)
    state.pop("published", None)
    return dict(state)


def _unclaimed(world: World, cases: list[Case]) -> list[Any]:
    known = {key for case in cases for key in _case_keys(case)}
    return [
        (letter.get("reason"), str(letter.get("original"))[:300])
        for letter in world.listener.letters
        if not any(key in known for key in _letter_keys(letter))
    ]


def _expected(expect: Any) -> tuple[str, Any]:
    return ("applied", None) if expect == "applied" else tuple(expect)  # type: ignore[return-value]
