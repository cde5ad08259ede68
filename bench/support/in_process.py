"""The setting of the in-process benches (bench/inbound_cost.py, bench/firing_profile.py):
the worker's code run in this process against an embedded Redis of its own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def embedded_worker(prefix: str, **env: str) -> Iterator[Any]:
    """An embedded Redis on a free port, the worker's settings pointed at it (plus `env`),
    and this process's stderr sent to /dev/null: the worker's log lines are part of the
    cost, written but not to the terminal. Yields the server; restores stderr and stops
    it after."""
    from worker.cli.embedded_redis import start_embedded_redis

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = start_embedded_redis(data_dir=workdir / "redis", port=0)
    os.environ.update(
        AFTERSALES_REDIS_URL=server.url,
        AFTERSALES_VAR_DIR=str(workdir / "var"),
        AFTERSALES_LABEL_DIR=str(workdir / "labels"),
        **env,
    )
    os.environ.pop("AFTERSALES_BROKER_URL", None)
    saved_stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield server
    finally:
        os.dup2(saved_stderr, 2)
        os.close(devnull)
        server.stop()
