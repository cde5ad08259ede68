"""A bare kombu consumer in its own process, for the reliable-fetch tests.

``python -m tests.support.fetch_consumer URL TRANSPORT QUEUE FREEZE``: consumes QUEUE
(with acks) through TRANSPORT ("redis" for kombu's own, or an import path), appends every
body it receives to the Redis list ``received`` and acks it. With FREEZE a file path (not
"-"), the first message taken from Redis is never handed on: the process writes FREEZE and
sleeps, stuck between the fetch and the consumer's bookkeeping, waiting for a kill -9.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Consumer, Queue
from kombu.transport import virtual


def freeze_after_fetch(marker: Path) -> None:
    """Stop every message right where the transport hands it to the consumer: after it
    left the queue, before kombu's QoS has recorded it (QoS.append runs after this)."""

    def frozen(self: Any, message: Any, queue: str) -> None:
        marker.write_text(queue)
        time.sleep(3600)

    virtual.Transport._deliver = frozen


def main(url: str, transport: str, queue_name: str, freeze: str) -> None:
    if freeze != "-":
        freeze_after_fetch(Path(freeze))
    results = redis.Redis.from_url(url)

    def on_message(body: Any, message: Any) -> None:
        results.rpush("received", body if isinstance(body, str) else repr(body))
        message.ack()

    with Connection(url, transport=None if transport == "redis" else transport) as connection:
        queue = Queue(queue_name, routing_key=queue_name)
        with Consumer(connection, [queue], callbacks=[on_message], accept=["json"]):
            results.rpush("consumers-ready", queue_name)
            while True:
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
