"""Shared fixtures. They live in tests/support/fixtures.py (documented there):

- `redis_server` (session) -> URL; `redis_url` -> URL after FLUSHALL; `redis_client`
- `start_worker(concurrency=2, env=None, ...)` -> real worker process handle
- `start_beat(env=None, ...)` -> real beat process handle
- `wire_client`: bare Celery producer (`send`, `send_raw`)
- `event_listener`: bound to `aftersales.events` with `#` (`wait_for`, `collect`,
  `dead_letters`)
"""

import pytest

pytest_plugins = ["tests.support.cluster", "tests.support.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-cluster",
        action="store_true",
        help="State in a Redis Cluster started on loopback (tests/support/cluster.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "single_redis(reason): skipped with --redis-cluster")
