"""Shared fixtures. They live in tests/support/fixtures.py (documented there):

- `redis_server` (session) -> URL; `redis_url` -> URL after FLUSHALL; `redis_client`
- `start_worker(concurrency=2, env=None, ...)` -> real worker process handle
- `start_beat(env=None, ...)` -> real beat process handle
- `wire_client`: bare Celery producer (`send`, `send_raw`)
- `event_listener`: bound to `aftersales.events` with `#` (`wait_for`, `collect`,
  `dead_letters`)
- `--redis-cluster`: the worker's state in a Redis Cluster (tests/support/cluster.py)
- `--broker=rabbitmq`: `broker_url` is a private RabbitMQ node (tests/support/rabbitmq.py)
"""

pytest_plugins = ["tests.support.cluster", "tests.support.fixtures", "tests.support.rabbitmq"]
