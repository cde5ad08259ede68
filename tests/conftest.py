"""Shared fixtures. They live in tests/support/fixtures.py (documented there):

- `redis_server` (session) -> URL; `redis_url` -> URL after FLUSHALL; `redis_client`
- `start_worker(concurrency=2, env=None, ...)` -> real worker process handle
- `start_beat(env=None, ...)` -> real beat process handle
- `wire_client`: bare Celery producer (`send`, `send_raw`)
- `event_listener`: bound to `aftersales.events` with `#` (`wait_for`, `collect`,
  `dead_letters`)
- `--redis-cluster`: the worker's state in a Redis Cluster (tests/support/cluster.py);
  `python3 dev.py test` runs the tests marked `cluster` so
- `--broker=rabbitmq`: `broker_url` is a private RabbitMQ node (tests/support/rabbitmq.py);
  `python3 dev.py test` runs the tests marked `rabbitmq` so

Session fixtures are per process: under pytest-xdist (`-n N`) each process starts its own
Redis (and cluster or RabbitMQ node), so tests never share a server with a parallel one.
Helpers (messages, factories, the unit tests' timeline) are in tests/support/.
"""

pytest_plugins = ["tests.support.cluster", "tests.support.fixtures", "tests.support.rabbitmq"]
