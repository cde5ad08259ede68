"""Restart an embedded Redis on the same port and data directory (AOF kept)."""

from __future__ import annotations

import contextlib
import os
import signal

from worker.cli.embedded_redis import EmbeddedRedis, start_embedded_redis


def restart_embedded_redis(server: EmbeddedRedis, hard: bool = True) -> EmbeddedRedis:
    """Stop `server` and start a new one on its port and data dir, which loads its AOF.

    `hard=True`: SIGKILL, as a process crash would. The embedded server runs the default
    `appendfsync everysec`: Redis write(2)s each event loop's commands to the AOF before
    it replies, so the kernel keeps them when only the process dies (a machine crash
    could lose the last second). The exception: Redis 6.2 postpones that write, up to
    2 s, while a background fsync is still running on a slow disk, and still replies;
    a kill -9 in that window loses acknowledged writes. `hard=False`: SIGTERM, Redis's
    own clean shutdown (final write and fsync).
    """
    if hard:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
        server.process.wait(10)
    server.stop()  # reaps it (or stops it gently) and releases the data dir lock
    return start_embedded_redis(server.data_dir, port=server.port, host=server.host)
