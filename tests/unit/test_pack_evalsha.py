"""An EVALSHA packed for a batch of commits (worker/adapters/order_store.py,
`_pack_evalsha`) is byte for byte what redis-py's own encoder writes, for every argument
type a commit carries and the edges of each; what hiredis does not take goes through
redis-py's encoder, which answers as it always did. No server: packing only."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import redis
from hiredis import pack_command
from redis.exceptions import DataError

from worker.adapters.order_store import _pack_evalsha

SHA = "0" * 40


class _Kind(enum.IntEnum):
    ONE = 1


def _by_redis_py(client: redis.Redis, keys: list[Any], args: list[Any]) -> bytes:
    encoder = client.get_encoder()
    values = [encoder.encode(value) for value in (*keys, *args)]
    return bytes(pack_command((b"EVALSHA", SHA, len(keys), *values)))


ARGS: list[Any] = [
    0,
    -3,
    2**70,
    -(2**70),
    1.5,
    0.1,
    1e-7,
    1e16,
    -0.0,
    1 / 3,
    5e-324,
    1765000000.123456,
    "",
    "plain",
    "naïve ✓ 中文 \x00 \x1e",
    '{"a":"b\\"c"}',
    b"\x00\xff raw",
    memoryview(b"a view"),
    _Kind.ONE,  # an int subclass: hiredis refuses it, redis-py writes its repr
]


def _id(value: Any) -> str:
    """A stable test id (a memoryview's repr holds its address)."""
    return f"memoryview({bytes(value)!r})" if isinstance(value, memoryview) else repr(value)


@pytest.mark.parametrize("value", ARGS, ids=_id)
def test_each_argument_packs_as_redis_py_packs_it(value: Any) -> None:
    client = redis.Redis()
    assert _pack_evalsha(client.get_encoder(), SHA, ["{o}:state"], [value]) == _by_redis_py(
        client, ["{o}:state"], [value]
    )


def test_a_whole_call_packs_as_redis_py_packs_it() -> None:
    client = redis.Redis()
    keys = ["{o-1}:state", "{o-1}:seen", "aftersales:schedule"]
    assert _pack_evalsha(client.get_encoder(), SHA, keys, ARGS) == _by_redis_py(client, keys, ARGS)


@pytest.mark.parametrize("value", [True, None, 1 + 2j, bytearray(b"x")], ids=repr)
def test_what_redis_py_refuses_is_refused_as_before(value: Any) -> None:
    client = redis.Redis()
    with pytest.raises((DataError, TypeError)) as before:
        _by_redis_py(client, ["k"], ["fine", value])
    with pytest.raises(before.type):
        _pack_evalsha(client.get_encoder(), SHA, ["k"], ["fine", value])


def test_a_lone_surrogate_is_refused_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        _pack_evalsha(redis.Redis().get_encoder(), SHA, ["k"], ["\ud800"])


def test_another_encoding_goes_through_redis_pys_encoder() -> None:
    client = redis.Redis(encoding="latin-1")
    packed = _pack_evalsha(client.get_encoder(), SHA, ["k"], ["café", 7])
    assert packed == _by_redis_py(client, ["k"], ["café", 7])
    assert b"caf\xe9" in packed  # latin-1, not hiredis's UTF-8
