"""Upgrade order states stored before the 1.1 rules (docs/rules.md), keeping their terms.

    .venv/bin/python examples/upgrade_1_0_states.py [--dry-run]   # AFTERSALES_REDIS_URL

Run it once, after stopping the old workers and before starting the new ones
(docs/operations.md, "Upgrading"). Each order keeps the policy snapshot it was placed
under, and two things about 1.0 snapshots do not load or do not mean the same under 1.1:

- A marketplace with money settings (drop-off `max_value` or `rates`, a postage cap) must
  name its `currency` in 1.1; 1.0 snapshots (the built-in UK one included) have none, so
  the order does not load. The order's own currency is the one its amounts were in.
- 1.0 windows were elapsed time and were written back in whole days where they could be
  (48 h as `P2D`). In 1.1 days are local calendar days, an hour apart across a clock
  change. Every window of a 1.0 snapshot is rewritten in hours (`P2D` -> `PT48H`), which
  1.1 reads as elapsed time: exactly the 1.0 terms.

A 1.0 state is recognised by its missing `published` field (1.1 states always have it).
Each state is rewritten only at the version it was read at, and its version is bumped,
so a worker that read it before reloads it. A second run changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis

from schemas.durations import parse_duration
from worker.adapters import keys
from worker.rules.state import OrderState

WINDOWS = (
    "free_cancel_window",
    "cancel_response_window",
    "unpaid_cancel_after",
    "return_window",
    "return_response_window",
    "resubmit_window",
    "self_arrange_tracking_window",
    "label_validity",
    "receipt_confirm_window",
)
"""The policy's durations: in 1.0 all of them elapsed time."""


def in_hours(duration: str) -> str:
    """The same length as an ISO 8601 duration without days: `P2D` -> `PT48H`."""
    seconds = parse_duration(duration) / timedelta(seconds=1)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "H"), (minutes, "M"), (secs, "S")]
    return "PT" + "".join(f"{n:g}{unit}" for n, unit in parts if n)


def _needs_currency(policy: dict[str, Any]) -> bool:
    drop_off = policy.get("drop_off") or {}
    money = drop_off.get("max_value") is not None or bool(drop_off.get("rates"))
    return policy.get("currency") is None and (
        money or policy.get("self_arrange_postage_cap") is not None
    )


def upgrade_state(state: dict[str, Any]) -> bool:
    """Upgrade one stored state (its JSON object) in place; True if it was a 1.0 state."""
    if "published" in state or not isinstance(state.get("policy"), dict):
        return False  # 1.1 or later (since the compact form, a policy is a reference)
    policy = state["policy"]
    for name in WINDOWS:
        if isinstance(policy.get(name), str):
            policy[name] = in_hours(policy[name])
    for seller in (policy.get("sellers") or {}).values():
        for name in ("free_cancel_window", "cancel_response_window"):
            value = seller.get(name)
            if isinstance(value, str) and value.startswith("P"):  # not until_ready_to_ship
                seller[name] = in_hours(value)
    if _needs_currency(policy) and state.get("order"):
        policy["currency"] = state["order"]["currency"]
    state["published"] = {}
    OrderState.model_validate(state)  # it loads now, or the error names what does not
    return True


SET_IF_VERSION = """
if (redis.call("HGET", KEYS[1], "version") or "0") ~= ARGV[1] then return 0 end
redis.call("HSET", KEYS[1], "state", ARGV[2])
redis.call("HINCRBY", KEYS[1], "version", 1)
return 1
"""
"""Write the state only on the version it was read at, and bump it (as commits do)."""


def upgrade_all(client: redis.Redis, dry_run: bool = False) -> list[str]:
    """Upgrade every 1.0 order state in Redis; returns the order keys upgraded."""
    set_if_version = client.register_script(SET_IF_VERSION)
    upgraded = []
    for key in client.scan_iter(match=f"{keys.PREFIX}:order:*", count=1000):
        while True:
            raw, version = client.hmget(key, ["state", "version"])
            state = json.loads(raw) if raw else {}
            if not upgrade_state(state):
                break
            text = json.dumps(state, separators=(",", ":"))
            if dry_run or set_if_version(keys=[key], args=[version or b"0", text]) == 1:
                upgraded.append(key.decode() if isinstance(key, bytes) else str(key))
                break
            # A worker committed in between: read it again.
    return upgraded


def main(argv: Sequence[str] = ()) -> int:
    url = os.environ.get("AFTERSALES_REDIS_URL")
    if not url:
        print("set AFTERSALES_REDIS_URL to the workers' Redis", file=sys.stderr)
        return 2
    dry_run = "--dry-run" in argv
    upgraded = upgrade_all(redis.Redis.from_url(url), dry_run=dry_run)
    print(f"{len(upgraded)} order states {'to upgrade' if dry_run else 'upgraded'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
