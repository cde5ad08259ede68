"""Write a golden fixture: Redis as a past release left it, made by that release's code.

    python3 tests/upgrade/make_fixtures.py 1.1.0     # or 1.0.0; rewrites fixtures/<v>.json

With the release's own virtualenv (tests/upgrade/releases.py, from this clone's history)
and a private `redis-server`, this script runs itself again under the release's python
(`--inside`), which imports only that release's installed code: its service applies a
scripted set of inbound messages to Redis with the broker unreachable for events (every
publish fails, so the outbox keeps them), and every `aftersales:*` key is dumped with its
type, value and expiry. Nothing here may import today's code.

The script (`SCENARIO`): each order is left with something pending that the release
stored: a deadline due about a minute after the fixture was made (so it is overdue
whenever a test loads it), a message held for an earlier fact, events in the outbox.
`expect` says what today's code must make of it (tests/upgrade/test_golden_fixtures.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DUE_AFTER = timedelta(seconds=60)
"""Deadlines of the fixture come due this long after it was made."""


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _message(type_: str, order: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"message_id": f"m-{uuid.uuid4().hex[:12]}", "type": type_, "order_id": order,
            "occurred_at": _ts(at), **fields}  # fmt: skip


def _placed(order: str, at: datetime, **fields: Any) -> dict[str, Any]:
    body = {
        "marketplace": "UK", "seller_id": "seller-1", "buyer_id": "buyer-1",
        "payment_method": "prepaid", "pricing": "regular", "currency": "GBP",
        "shipping_fee": "3.99",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00", "weight_kg": 0.5,
                   "dimensions_cm": [20, 15, 10]}],
    }  # fmt: skip
    body.update(fields)
    return _message("order.placed", order, at, **body)


def scenario(now: datetime) -> list[dict[str, Any]]:
    """Orders, each with its messages (task name, body) and what today's code must do."""
    due = now + DUE_AFTER
    h, m = timedelta(hours=1), timedelta(minutes=1)
    return [
        {   # an unpaid prepaid order: its 48 h expiry pending
            "order": "fx-unpaid",
            "messages": [("aftersales.order_event", _placed("fx-unpaid", due - 48 * h))],
            "expect": {"events": ["order.cancelled"], "dead_letters": []},
        },
        {   # a cancel request the seller never answered: auto-accepted after 48 h
            "order": "fx-cancel",
            "messages": [
                ("aftersales.order_event", _placed("fx-cancel", due - 50 * h)),
                ("aftersales.order_event", _message("order.paid", "fx-cancel", due - 50 * h)),
                ("aftersales.buyer_action", _message(
                    "buyer.cancel_requested", "fx-cancel", due - 48 * h, reason="changed mind")),
            ],
            "expect": {"events": ["cancellation.requested", "cancellation.auto_accepted",
                                  "order.cancelled"], "dead_letters": []},
        },
        {   # a refund-only return the seller never answered: auto-approved; its answer
            # window counts business days, so it was asked days ago (overdue already)
            "order": "fx-return",
            "messages": [
                ("aftersales.order_event", _placed("fx-return", now - 300 * h)),
                ("aftersales.order_event", _message("order.paid", "fx-return", now - 300 * h)),
                ("aftersales.order_event", _message(
                    "order.shipped", "fx-return", now - 290 * h, tracking_number="T-fx-1")),
                ("aftersales.order_event", _message("order.delivered", "fx-return", now - 280 * h)),
                ("aftersales.buyer_action", _message(
                    "buyer.return_requested", "fx-return", now - 250 * h, request_id="r-fx-1",
                    kind="refund_only", reason="damaged")),
            ],
            "expect": {"events": ["return.requested", "return.auto_approved"],
                       "dead_letters": []},
        },
        {   # a seller's answer to a request not seen yet: held, then given up on
            "order": "fx-held",
            "messages": [
                ("aftersales.order_event", _placed("fx-held", now - 2 * h)),
                ("aftersales.order_event", _message("order.paid", "fx-held", now - 2 * h)),
                ("aftersales.seller_action", _message(
                    "seller.cancel_accepted", "fx-held", now - h)),
            ],
            "expect": {"events": [], "dead_letters": ["held_too_long"]},
        },
        {   # an instant cancel whose events never left: the outbox relay sends them
            "order": "fx-done",
            "messages": [
                ("aftersales.order_event", _placed("fx-done", now - 10 * m)),
                ("aftersales.order_event", _message("order.paid", "fx-done", now - 9 * m)),
                ("aftersales.buyer_action", _message(
                    "buyer.cancel_requested", "fx-done", now - 5 * m,
                    reason="ordered twice")),
            ],
            "expect": {"events": ["order.cancelled"], "dead_letters": []},
        },
    ]  # fmt: skip


# --- inside the release's virtualenv ----------------------------------------------------


def inside(out: Path) -> None:
    """Run by the release's python: apply the scenario with its code, dump Redis."""
    import inspect

    import redis
    from pydantic import ValidationError

    from schemas.inbound import parse_message
    from worker import runtime

    class Unreachable:
        """Every publish fails: events, dead letters and tasks stay in the outbox."""

        def publish(self, entry_id: str, entry: dict[str, Any]) -> None:
            raise ConnectionError("broker unreachable while the fixture is made")

    service = runtime.service()
    service.publisher = Unreachable()
    takes_digest = "digest" in inspect.signature(service.handle_message).parameters
    now = datetime.now(UTC)
    orders = scenario(now)
    for order in orders:
        for task_name, body in order["messages"]:
            try:
                message = parse_message(task_name, body, now=now)
            except TypeError:  # 1.0: no `now`
                message = parse_message(task_name, body)
            except ValidationError as exc:
                raise SystemExit(f"{order['order']}: {exc}") from None
            task_id = str(uuid.uuid4())
            if takes_digest:  # as tasks/inbound.py computes it: SHA-256 of canonical JSON
                canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
                digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
                service.handle_message(message, task_id, digest)
            else:
                service.handle_message(message, task_id)
    client = redis.Redis.from_url(os.environ["AFTERSALES_REDIS_URL"])
    dump = {
        "made_at": _ts(now),
        "orders": [{"order": o["order"], "expect": o["expect"]} for o in orders],
        "keys": _dump(client),
    }
    out.write_text(json.dumps(dump, indent=1, sort_keys=True) + "\n")


def _dump(client: Any) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(client.scan_iter(match="aftersales:*")):
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key).decode()
        elif kind == "hash":
            value = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        elif kind == "zset":
            value = [[m.decode(), s] for m, s in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "set":
            value = sorted(m.decode() for m in client.smembers(key))
        elif kind == "list":
            value = [m.decode() for m in client.lrange(key, 0, -1)]
        else:
            raise SystemExit(f"unexpected type {kind} of {key!r}")
        rows.append({"key": key.decode(), "type": kind, "value": value, "pttl": client.pttl(key)})
    return rows


# --- from the checkout ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make(version: str) -> Path:
    sys.path.insert(0, str(HERE))
    import releases  # this folder's helper, standard library only

    python = releases.ensure_venv(version)
    out = HERE / "fixtures" / f"{version}.json"
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", data],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for(port)
            env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
            env.update(
                AFTERSALES_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                # Another database: the commit does not push events itself, the outbox keeps them.
                AFTERSALES_BROKER_URL=f"redis://127.0.0.1:{port}/1",
                AFTERSALES_LOG_FORMAT="json",
                AFTERSALES_HOLD_FOR="PT1S",  # the held message gives up a second after
            )
            subprocess.run(
                [str(python), str(Path(__file__).resolve()), "--inside", str(out)],
                check=True, env=env, cwd=tempfile.gettempdir(),
            )  # fmt: skip
        finally:
            server.terminate()
            server.wait(10)
    return out


def _wait_for(port: int) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inside"]:
        inside(Path(sys.argv[2]))
    else:
        for name in sys.argv[1:] or ["1.0.0", "1.1.0"]:
            print(make(name))
