"""One typed settings object, read from the environment once: configuration in one place.

Every variable is documented in the README with its default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from schemas.policy import PolicyError, PolicySet, build_policy, parse_duration
from worker.redis_urls import verified_tls
from worker.rules.parking import DEFAULT_HOLD
from worker.rules.retention import DEFAULT_RETENTION, DEFAULT_TOMBSTONE_RETENTION

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(RuntimeError):
    """The environment asks for something impossible; start-up stops with this message."""


def _duration(name: str, default: timedelta) -> timedelta:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _duration_or_off(name: str, default: timedelta) -> timedelta | None:
    if os.environ.get(name, "").strip().lower() == "off":
        return None
    return _duration(name, default)


def _duration_or_zero(name: str, default: timedelta) -> timedelta:
    """A duration, or zero written as `PT0S` or `0`."""
    if os.environ.get(name, "").strip().upper() in ("0", "PT0S"):
        return timedelta(0)
    return _duration(name, default)


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}: must be at least 1, not {value}")
    return value


STALL_AFTER = timedelta(seconds=20)
"""Default of AFTERSALES_STALL_AFTER (Settings.stall_after)."""


DEFAULT_METRICS_PORT = 9808
"""A port of Prometheus's default-port allocation range (9100-9999) taken by no exporter on
its wiki page; beat serves on the next one (docs/observability.md)."""


def _metrics_port(name: str, default: int) -> int | None:
    raw = os.environ.get(name, str(default)).strip().lower()
    if raw in ("off", "none", ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a port number or 'off'") from None
    if not 1 <= value <= 65534:  # beat takes the next port
        raise SettingsError(f"{name}: {value} is not a port from 1 to 65534")
    return value


EVENT_CONTENT_TYPES = ("application/json", "application/cloudevents+json")


def _event_content_type() -> str:
    raw = os.environ.get("AFTERSALES_EVENT_CONTENT_TYPE", "application/json").strip().lower()
    if raw not in EVENT_CONTENT_TYPES:
        raise SettingsError(
            f"AFTERSALES_EVENT_CONTENT_TYPE: {raw!r} is not one of {', '.join(EVENT_CONTENT_TYPES)}"
        )
    return raw


def _url_file_default() -> str | None:
    # `aftersales run` writes the embedded server's URL here for producers and CLIs.
    path = Path(os.environ.get("AFTERSALES_VAR_DIR", "var")) / "redis.url"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def load_policy(path: str | None) -> PolicySet:
    if not path:
        return build_policy()
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"AFTERSALES_POLICY_FILE {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"AFTERSALES_POLICY_FILE {path}: not valid TOML: {exc}") from None
    try:
        return build_policy(document)
    except PolicyError as exc:
        raise SettingsError(f"AFTERSALES_POLICY_FILE {path}: {exc}") from None


def _switch(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name}: {raw!r} is not 1 or 0")


def _check_cluster_broker(redis_url: str, broker_url: str | None) -> None:
    """With state in a Redis Cluster the broker must be another server: kombu does not
    speak Redis Cluster, and the reliable-fetch scripts (worker/shell/transport.py) need all
    their keys on one Redis (docs/cluster.md)."""
    if not broker_url:
        raise SettingsError(
            "AFTERSALES_REDIS_CLUSTER=1 needs AFTERSALES_BROKER_URL: a plain Redis "
            "(redis://...) or RabbitMQ (amqp://...); kombu cannot use a Redis Cluster"
        )
    broker, state = urlsplit(broker_url), urlsplit(redis_url)
    if broker.scheme.startswith("redis") and (broker.hostname, broker.port) == (
        state.hostname,
        state.port,
    ):
        raise SettingsError(
            "AFTERSALES_BROKER_URL points at the state's Redis Cluster node: the broker "
            "must be a separate plain Redis or RabbitMQ (kombu cannot use a Redis Cluster)"
        )


@dataclass(frozen=True)
class Settings:
    # Out of repr: the URLs may hold a password (print them with redis_urls.redacted).
    redis_url: str = field(repr=False)
    broker_url: str = field(repr=False)
    label_dir: Path
    policy_file: str | None
    policy: PolicySet = field(repr=False)
    # State in a Redis Cluster (AFTERSALES_REDIS_URL is any node of it; docs/cluster.md).
    redis_cluster: bool = False
    # How long a message waits for an earlier fact before it is dead-lettered (docs/rules.md).
    hold_for: timedelta = DEFAULT_HOLD
    # How long a closed order's keys are kept before they expire (docs/rules.md, retention).
    retention: timedelta = DEFAULT_RETENTION
    # How long an expired order's tombstone outlives its keys (docs/rules.md, retention).
    tombstone_retention: timedelta = DEFAULT_TOMBSTONE_RETENTION
    # Deadlines due within this horizon become Celery ETA tasks; the rest wait in Redis only.
    deadline_horizon: timedelta = timedelta(seconds=60)
    # Period of the beat tick that arms deadlines, sweeps overdue ones and relays the outbox.
    sweep_interval: timedelta = timedelta(seconds=1)
    # With nothing to arm, re-send or relay, beat sends the tick only this often (it checks
    # every sweep interval, one read; 0: a tick every interval, idle or not).
    idle_tick_every: timedelta = timedelta(seconds=30)
    # Redis broker: how long a worker waits in Redis on its inbound queue (a message there
    # wakes it at once) before it looks at its deadlines and control queues again, once 5 s
    # have passed since it started or last took a message (1 s at most before that:
    # worker/shell/transport.py). Shorter: those are looked at sooner, for more idle CPU.
    fetch_wait: timedelta = timedelta(seconds=2)
    # Redis transport: unacked messages come back after this long. Must exceed the horizon
    # so an ETA task is never redelivered while it still waits (celery#4766).
    visibility_timeout: timedelta = timedelta(seconds=300)
    # Runs of the label task, the first included, before it dead-letters ("label_failed").
    # With the full-jitter backoff of tasks/errors.py, 8 runs wait up to ~64 s in all: a full
    # disk or a broken font will not fix itself sooner than someone looks at the dead letter.
    label_max_attempts: int = 8
    # Input safety (docs/input-safety.md): task bodies larger than this many bytes, or
    # nested deeper than this many levels, are dead-lettered before they are decoded
    # further. 256 KiB is over 100 times the largest real message; 32 levels is 5 times
    # the deepest one (body > args > message > items > item > dimensions).
    max_message_bytes: int = 256 * 1024
    max_message_depth: int = 32
    # Stalled-consumer watchdog: a worker that fetched nothing for this long while inbound
    # messages waited and it had a free process exits (75) to be restarted. Twenty seconds
    # is 20 polls of the Redis transport; a healthy worker takes a waiting message at once.
    # `off`: no watchdog (the health probe still uses the default).
    stall_after: timedelta | None = STALL_AFTER
    # Inbound messages a worker decides and commits together, in one pool call with two
    # round trips to Redis (worker/shell/batch.py): at most this many, those taken in one
    # turn of the event loop. 1: one Celery task per message. Redis broker only.
    inbound_batch: int = 16
    # Content type of outbound events: application/json, or the CloudEvents AMQP binding's
    # structured mode, application/cloudevents+json (docs/observability.md).
    event_content_type: str = "application/json"
    # Prometheus /metrics: a worker serves on this port, beat on the next (None: off).
    metrics_port: int | None = DEFAULT_METRICS_PORT
    # Where /metrics listens: every interface, for a Prometheus on another host or pod.
    metrics_address: str = "0.0.0.0"  # metrics carry no order data

    @property
    def tick_expires(self) -> timedelta:
        """How long beat's tick waits to be run before it is dropped: the next one does the
        same work."""
        return max(timedelta(seconds=5), self.sweep_interval * 5)

    @classmethod
    def from_env(cls) -> Settings:
        redis_url = (
            os.environ.get("AFTERSALES_REDIS_URL") or _url_file_default() or DEFAULT_REDIS_URL
        )
        policy_file = os.environ.get("AFTERSALES_POLICY_FILE") or None
        broker_url = os.environ.get("AFTERSALES_BROKER_URL") or None
        redis_cluster = _switch("AFTERSALES_REDIS_CLUSTER")
        if redis_cluster:
            _check_cluster_broker(redis_url, broker_url)
        settings = cls(
            redis_url=verified_tls(redis_url),
            broker_url=verified_tls(broker_url or redis_url),
            redis_cluster=redis_cluster,
            label_dir=Path(os.environ.get("AFTERSALES_LABEL_DIR", "var/labels")).resolve(),
            policy_file=policy_file,
            policy=load_policy(policy_file),
            # The defaults are the class's own (one source).
            hold_for=_duration("AFTERSALES_HOLD_FOR", cls.hold_for),
            retention=_duration("AFTERSALES_RETENTION", cls.retention),
            tombstone_retention=_duration(
                "AFTERSALES_TOMBSTONE_RETENTION", cls.tombstone_retention
            ),
            deadline_horizon=_duration("AFTERSALES_DEADLINE_HORIZON", cls.deadline_horizon),
            sweep_interval=_duration("AFTERSALES_SWEEP_INTERVAL", cls.sweep_interval),
            idle_tick_every=_duration_or_zero("AFTERSALES_IDLE_TICK_EVERY", cls.idle_tick_every),
            visibility_timeout=_duration("AFTERSALES_VISIBILITY_TIMEOUT", cls.visibility_timeout),
            fetch_wait=_duration("AFTERSALES_FETCH_WAIT", cls.fetch_wait),
            label_max_attempts=_positive_int(
                "AFTERSALES_LABEL_MAX_ATTEMPTS", cls.label_max_attempts
            ),
            max_message_bytes=_positive_int("AFTERSALES_MAX_MESSAGE_BYTES", cls.max_message_bytes),
            max_message_depth=_positive_int("AFTERSALES_MAX_MESSAGE_DEPTH", cls.max_message_depth),
            stall_after=_duration_or_off("AFTERSALES_STALL_AFTER", STALL_AFTER),
            inbound_batch=_positive_int("AFTERSALES_INBOUND_BATCH", cls.inbound_batch),
            event_content_type=_event_content_type(),
            metrics_port=_metrics_port("AFTERSALES_METRICS_PORT", DEFAULT_METRICS_PORT),
            metrics_address=os.environ.get("AFTERSALES_METRICS_ADDRESS") or cls.metrics_address,
        )
        if settings.visibility_timeout <= settings.deadline_horizon * 2:
            raise SettingsError(
                "AFTERSALES_VISIBILITY_TIMEOUT must be more than twice "
                "AFTERSALES_DEADLINE_HORIZON, or armed deadline tasks are redelivered early"
            )
        if settings.fetch_wait >= settings.tick_expires:
            raise SettingsError(
                "AFTERSALES_FETCH_WAIT must be shorter than the beat tick's expiry, "
                f"{settings.tick_expires.total_seconds():g} s (5 s, or five "
                "AFTERSALES_SWEEP_INTERVAL if longer): an idle worker would find its ticks "
                "expired"
            )
        return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
