"""Restart an embedded Redis on the same port and data directory (AOF kept)."""

from __future__ import annotations

import contextlib
import os
import signal

from worker.embedded_redis import EmbeddedRedis, start_embedded_redis


def restart_embedded_redis(server: EmbeddedRedis, hard: bool = True) -> EmbeddedRedis:
    """Stop `server` and start a new one on its port and data dir, which loads its AOF.

    `hard=True`: SIGKILL, as a crash would (no final fsync; with `appendfsync everysec`
    acknowledged writes are already written to the AOF file, only not yet fsynced, so a
    process crash keeps them; a machine crash would not). `hard=False`: SIGTERM, Redis's
    own clean shutdown.
    """
    if hard:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
        server.process.wait(10)
    server.stop()  # reaps it (or stops it gently) and releases the data dir lock
    return start_embedded_redis(server.data_dir, port=server.port, host=server.host)
