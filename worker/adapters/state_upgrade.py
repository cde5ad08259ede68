"""Order states of format 1 (release 1.0), upgraded as they are loaded (lazily).

Each order keeps the policy snapshot it was placed under, and two things about 1.0
snapshots do not load, or do not mean the same, under 1.1 and later (docs/rules.md):

- A marketplace with money settings (drop-off `max_value` or `rates`, a postage cap) must
  name its `currency` since 1.1; 1.0 snapshots (the built-in UK one included) have none.
  The order's own currency is the one its amounts were in.
- 1.0 windows were elapsed time, written in whole days where they could be (48 h as
  `P2D`); since 1.1 days are local calendar days, an hour apart across a clock change.
  Every window of a 1.0 snapshot is read in hours (`P2D` -> `PT48H`), which later releases
  read as elapsed time: exactly the 1.0 terms.

A 1.0 state is recognised by its inline policy and its missing `published` field (1.1
writes `published` when inline, and the policy by reference since the compact form). The
upgraded state is written back, in today's form, by the order's next commit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from schemas.durations import parse_duration

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

SELLER_WINDOWS = ("free_cancel_window", "cancel_response_window")


def in_hours(duration: str) -> str:
    """The same length as an ISO 8601 duration without days: `P2D` -> `PT48H`."""
    seconds = parse_duration(duration) / timedelta(seconds=1)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "H"), (minutes, "M"), (secs, "S")]
    return "PT" + "".join(f"{n:g}{unit}" for n, unit in parts if n)


def is_format_1(state: dict[str, Any]) -> bool:
    return "published" not in state and isinstance(state.get("policy"), dict)


def _needs_currency(policy: dict[str, Any]) -> bool:
    drop_off = policy.get("drop_off") or {}
    money = drop_off.get("max_value") is not None or bool(drop_off.get("rates"))
    return policy.get("currency") is None and (
        money or policy.get("self_arrange_postage_cap") is not None
    )


def upgrade_format_1(state: dict[str, Any]) -> bool:
    """Upgrade one stored state (its JSON object) in place; True if it was format 1."""
    if not is_format_1(state):
        return False
    policy = state["policy"]
    for name in WINDOWS:
        if isinstance(policy.get(name), str):
            policy[name] = in_hours(policy[name])
    for seller in (policy.get("sellers") or {}).values():
        for name in SELLER_WINDOWS:
            value = seller.get(name)
            if isinstance(value, str) and value.startswith("P"):  # not until_ready_to_ship
                seller[name] = in_hours(value)
    if _needs_currency(policy) and state.get("order"):
        policy["currency"] = state["order"]["currency"]
    state["published"] = {}
    return True
