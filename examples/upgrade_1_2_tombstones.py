"""Give orders closed before contract 1.2 the tombstone a 1.2 commit would have written.

    .venv/bin/python examples/upgrade_1_2_tombstones.py [--dry-run]   # AFTERSALES_REDIS_URL

Since 1.2 an order whose keys expired is recognised by its tombstone
(`aftersales:expired:{<order id>}`), written by the commit that closes the order, and a
message for an order with neither state nor tombstone is a new order (docs/rules.md,
retention). An order closed by an earlier version has its keys' expiry but no tombstone:
once its keys expire, a late or replayed message for it would start it afresh. This
writes, for every order state with an expiry and no tombstone, the tombstone with the
keys' remaining TTL plus `AFTERSALES_TOMBSTONE_RETENTION` (default `P180D`), as the closing
commit would have. Orders without an expiry (open, or closed before retention came in)
get theirs from their next commit that closes them.

Safe while workers run and safe to run twice: each key is checked and written in one
script (a commit that reopens the order in between leaves it without expiry, so nothing
is written), and an existing tombstone is never touched. One Redis (not a cluster).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import redis

from schemas.durations import parse_duration
from worker.adapters import keys
from worker.rules.retention import DEFAULT_TOMBSTONE_RETENTION

ORDER = f"{keys.PREFIX}:order:"
TOMBSTONE = f"{keys.PREFIX}:expired:"

SET_TOMBSTONE = """
local ttl = redis.call("PTTL", KEYS[1])
if ttl <= 0 then return 0 end
if redis.call("EXISTS", KEYS[2]) == 1 then return 0 end
if ARGV[2] == "1" then return 1 end
redis.call("SET", KEYS[2], "1", "PX", ttl + tonumber(ARGV[1]))
return 1
"""
"""KEYS: the order's state, its tombstone (one hash tag); ARGV: the tombstone retention
in ms, "1" for a dry run. 1 when the order is closed (its state expires) and had none."""


def tombstone_key(state_key: str) -> str:
    """The tombstone of the order whose state is `state_key` (same hash tag)."""
    return TOMBSTONE + state_key.removeprefix(ORDER)


def tombstone_all(
    client: redis.Redis, tombstone: timedelta = DEFAULT_TOMBSTONE_RETENTION, dry_run: bool = False
) -> list[str]:
    """Write the missing tombstones; returns the order ids given one (or to be, dry run)."""
    script = client.register_script(SET_TOMBSTONE)
    retention_ms = int(tombstone / timedelta(milliseconds=1))
    given = []
    for raw in client.scan_iter(match=f"{ORDER}*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if script(keys=[key, tombstone_key(key)], args=[retention_ms, int(dry_run)]) == 1:
            given.append(key.removeprefix(ORDER).removeprefix("{").removesuffix("}"))
    return given


def main(argv: Sequence[str] = ()) -> int:
    url = os.environ.get("AFTERSALES_REDIS_URL")
    if not url:
        print("set AFTERSALES_REDIS_URL to the workers' Redis", file=sys.stderr)
        return 2
    setting = os.environ.get("AFTERSALES_TOMBSTONE_RETENTION")
    tombstone = parse_duration(setting) if setting else DEFAULT_TOMBSTONE_RETENTION
    dry_run = "--dry-run" in argv
    given = tombstone_all(redis.Redis.from_url(url), tombstone, dry_run=dry_run)
    print(f"{len(given)} closed orders {'to give' if dry_run else 'given'} a tombstone")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
