"""The stored form of an order's state: compact JSON, the policy by reference.

One place encodes and decodes the `state` field of an order's hash (RedisStore.load and
commit). Loading is exact: decode(encode(s)) == s, with every value written back as it was.

- **Policy by reference.** `policy` (the terms at purchase) is stored as the hash of its
  canonical JSON; the document itself lives once in Redis under `keys.policy(hash)`,
  immutable and without expiry, and is cached in-process by hash. An order of the 1.0 /
  1.1 form, with the policy inline, loads as before.
- **Versioned.** Every form any release wrote loads (schemas/formats.py): 1.0's
  (format 1) is upgraded on load (worker/adapters/state_upgrade.py), a newer release's
  raises `formats.NewerFormat` and is left as it is.
- **No defaults.** Fields at their default value are left out (pydantic's
  `exclude_defaults`), except a Decimal default written with another exponent (`0.00`).
- **When each deadline was first known apart.** A deadline's `known_at` (1.2) is kept out
  of the `state` field, which release 1.1 reads and whose models refuse any key they do
  not know, and stored beside it in the hash's `known` field (`encode` returns both,
  joined by SEPARATOR, which no JSON text holds; commit.lua splits them). Only a
  deadline still at the due time it had then gets its `known_at` back on load, so what a
  1.1 worker commits meanwhile (its state, the old `known` left beside it) loads right.
- **History as a difference.** The event-time history's base (the state after the last
  published outcome, worker/rules/eventtime.py) names the fields it shares with the
  current state in `"="` instead of repeating them. An input's message leaves out its
  `order_id` (the order's own) and names in `"="` the fields it shares with the order's
  facts (`"*"`: all of them, as `order.placed` does); its `occurred_at` is left out when
  its message carries the same one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from schemas import formats
from schemas.policy import MarketplacePolicy
from worker.adapters import compact_json, keys
from worker.adapters.shards import StateClient
from worker.adapters.state_upgrade import upgrade_format_1
from worker.rules.state import History, OrderState

PolicyRef = Callable[[MarketplacePolicy], str]
PolicyResolve = Callable[[str], MarketplacePolicy]

SAME = "="
"""Key of a history base's list of fields equal to the current state's (and of a logged
message's list of fields equal to the order's facts)."""

ALL = "*"
"""A logged message shares every fact of the order (it is the order's `order.placed`)."""

ORDER_DECIMALS = ("refunded_total",)
"""Decimal fields of OrderState with a default: `0.00` equals the default `0` and would be
left out, so they are kept when written otherwise (a test checks this list is complete)."""

RETURN_DECIMALS = ("return_cost",)
"""The same for each return request (ReturnRequest)."""


def policy_hash(policy: MarketplacePolicy) -> str:
    """Content address of a policy: SHA-256 of its canonical JSON, first 128 bits (a
    collision among the handful of policies a deployment ever has is out of reach)."""
    return hashlib.sha256(canonical_policy(policy).encode()).hexdigest()[:32]


POLICY_FIELDS_SINCE_1_2 = ("replacement_ship_window", "offer_response_window")
"""Policy fields release 1.1 does not know (its model refuses them). At their default
they are left out of the stored document, which 1.1 workers then read during a rolling
upgrade (a 1.2 worker reads the same defaults back); a policy file that sets one makes a
document only 1.2 reads (docs/operations.md, "Upgrades": set them once no 1.1 worker
runs). The same policy thus has the same content hash in both releases."""


def canonical_policy(policy: MarketplacePolicy) -> str:
    data = policy.model_dump(mode="json")
    defaults = MarketplacePolicy.model_fields
    for name in POLICY_FIELDS_SINCE_1_2:
        if getattr(policy, name) == defaults[name].default:
            data.pop(name, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


KNOWN_FIELD = "known"
"""The order hash's field beside `state`: {"d": {deadline id: [due_at, known_at]}} of the
state's deadlines, and "b" of its history base's own (when not the same as the state's)."""

SEPARATOR = "\x1e"
"""Between the state and its `known` in what `encode` returns: ASCII's record separator, a
control character no JSON text holds unescaped."""


def encode(state: OrderState, ref: PolicyRef) -> str:
    """The `state` field's JSON, then SEPARATOR and the `known` field's when a deadline has
    a `known_at` (`stored_parts` splits them)."""
    data = _compact(state, ref)
    known: dict[str, dict[str, list[str]]] = {}
    if mine := _pop_known(data):
        known["d"] = mine
    history = data.get("history")
    if history is not None and (base := _pop_known(history["base"])):
        known["b"] = base
    text = compact_json.dumps(data)
    if formats.state_json_needs_stamp(text):  # a 1.2 key or value somewhere: look closer
        text = compact_json.dumps(formats.stamp(formats.ORDER_STATE, data))
    if not known:
        return text
    return text + SEPARATOR + compact_json.dumps(known)


def stored_parts(encoded: str) -> tuple[str, str | None]:
    """What `encode` returned as the `state` and `known` fields (None: no `known`)."""
    state, separator, known = encoded.partition(SEPARATOR)
    return state, known if separator else None


def decode(
    raw: bytes | str, resolve: PolicyResolve, known: bytes | str | None = None
) -> OrderState:
    """Any stored form any release wrote (formats.py): format 1 (1.0) is upgraded here, on
    load; a format newer than this release reads raises formats.NewerFormat. `known`: the
    hash's `known` field (or `raw` is what `encode` returned, both in one)."""
    if known is None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        raw, known = stored_parts(text)
    data = compact_json.loads(raw)
    formats.version_of(formats.ORDER_STATE, data)
    data.pop(formats.FORMAT_KEY, None)
    upgrade_format_1(data)
    stamps = compact_json.loads(known) if known else {}
    _put_known(data, stamps.get("d"))
    history = data.get("history")
    if history is not None and "deadlines" in history["base"]:
        _put_known(history["base"], stamps.get("b"))
    return OrderState.model_validate(_expand(data, resolve))


def _pop_known(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each deadline's `known_at`, taken out of a compact state: {id: [due_at, known_at]}."""
    found = {}
    for deadline_id, deadline in (data.get("deadlines") or {}).items():
        if "known_at" in deadline:
            found[deadline_id] = [deadline["due_at"], deadline.pop("known_at")]
    return found


def _put_known(data: dict[str, Any], stamps: dict[str, list[str]] | None) -> None:
    """Each deadline its `known_at` back, if it is still at the due time it had then."""
    deadlines = data.get("deadlines") or {}
    for deadline_id, (due_at, known_at) in (stamps or {}).items():
        deadline = deadlines.get(deadline_id)
        if deadline is not None and deadline.get("due_at") == due_at:
            deadlines[deadline_id] = {**deadline, "known_at": known_at}


def _compact(state: OrderState, ref: PolicyRef) -> dict[str, Any]:
    data = state.model_dump(mode="json", exclude_defaults=True, exclude={"policy", "history"})
    _keep_decimals(state, data)
    if state.policy is not None:
        data["policy"] = ref(state.policy)
    if state.history is not None:
        data["history"] = _history(state.history, data, ref)
    return data


def _history(history: History, current: dict[str, Any], ref: PolicyRef) -> dict[str, Any]:
    base = _compact(history.base, ref)
    same = [k for k, v in base.items() if k != "history" and current.get(k, _NONE) == v]
    # A field at its default in the base but not in the current state is simply absent
    # from both `base` and `same`: it loads as the default again.
    packed = {k: v for k, v in base.items() if k not in same}
    packed[SAME] = same
    facts = _facts(current)
    inputs = []
    for item in history.inputs:
        logged = item.model_dump(mode="json")
        message = logged["message"]
        if logged["occurred_at"] == message.get("occurred_at"):
            del logged["occurred_at"]
        shared = [k for k, v in message.items() if facts.get(k, _NONE) == v]
        packed_message = {k: v for k, v in message.items() if k not in shared}
        if len(shared) == len(facts):
            packed_message[SAME] = ALL
        elif shared != ["order_id"]:
            packed_message[SAME] = [k for k in shared if k != "order_id"]
        if "order_id" not in shared:  # another order's id (never seen): kept as it is
            packed_message.setdefault(SAME, [])
        logged["message"] = packed_message
        inputs.append(logged)
    return {"base": packed, "inputs": inputs} if inputs else {"base": packed}


def _expand(data: dict[str, Any], resolve: PolicyResolve) -> dict[str, Any]:
    policy = data.get("policy")
    if isinstance(policy, str):  # a reference; a dict is an inline policy (older form)
        data["policy"] = resolve(policy)
    history = data.get("history")
    if history is not None:
        base = history["base"]
        same = base.pop(SAME, None)
        if same is not None:
            base = {**{k: data[k] for k in same}, **base}
        history["base"] = _expand(base, resolve)
        facts = _facts(data)
        for item in history.get("inputs", ()):
            message = item["message"]
            shared = message.pop(SAME, ["order_id"])
            if shared == ALL:
                shared = list(facts)
            elif "order_id" not in message:
                shared = ["order_id", *shared]
            message = item["message"] = {**{k: facts[k] for k in shared}, **message}
            if "occurred_at" not in item:
                item["occurred_at"] = message["occurred_at"]
    return data


def _facts(state: dict[str, Any]) -> dict[str, Any]:
    """What a logged message may share with its order: the order's id and the facts that
    `order.placed` carries (stored; `placed_at` is its `occurred_at`)."""
    facts = {k: v for k, v in (state.get("order") or {}).items() if k != "placed_at"}
    return {"order_id": state["order_id"], **facts}


def _keep_decimals(state: OrderState, data: dict[str, Any]) -> None:
    for name in ORDER_DECIMALS:
        _keep_decimal(getattr(state, name), OrderState.model_fields[name].default, name, data)
    for request_id, request in state.returns.items():
        for name in RETURN_DECIMALS:
            default = type(request).model_fields[name].default
            _keep_decimal(getattr(request, name), default, name, data["returns"][request_id])


def _keep_decimal(value: Decimal, default: Decimal, name: str, data: dict[str, Any]) -> None:
    if name not in data and str(value) != str(default):
        data[name] = str(value)


_NONE = object()
"""Marks a field absent from the current state (at its default)."""


POLICY_CACHE = 1024
"""Policies known by object in this process: a deployment has a handful (one per
marketplace and policy file version); the bound only stops a leak from a misuse."""


class StateCodec:
    """Encode and decode states against one Redis, where the policy documents live."""

    def __init__(self, client: StateClient) -> None:
        self.client = client
        self._by_hash: dict[str, MarketplacePolicy] = {}  # immutable: cached forever
        self._by_object: dict[int, tuple[MarketplacePolicy, str]] = {}

    def encode(self, state: OrderState) -> str:
        return encode(state, self.ref)

    def decode(self, raw: bytes | str, known: bytes | str | None = None) -> OrderState:
        return decode(raw, self.resolve, known)

    def ref(self, policy: MarketplacePolicy) -> str:
        """The policy's hash; its document is stored (once per process) before any state
        that names it is committed."""
        known = self._by_object.get(id(policy))
        if known is not None and known[0] is policy:  # the entry holds it: id not reused
            return known[1]
        digest = policy_hash(policy)
        if digest not in self._by_hash:
            self.client.set(keys.policy(digest), canonical_policy(policy), nx=True)
            self._by_hash[digest] = policy
        if len(self._by_object) >= POLICY_CACHE:
            self._by_object.clear()
        self._by_object[id(policy)] = (policy, digest)
        return digest

    def resolve(self, digest: str) -> MarketplacePolicy:
        policy = self._by_hash.get(digest)
        if policy is None:
            raw = self.client.get(keys.policy(digest))
            if raw is None:
                raise LookupError(f"policy {digest} named by an order is missing from Redis")
            policy = MarketplacePolicy.model_validate_json(raw)
            self._by_hash[digest] = policy
        return policy
