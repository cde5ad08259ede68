"""The `aftersales` command line: one click group, one small function per command.

A command parses its options and delegates to a module that does the work (`runner`,
`schema_export`, ...), so each stays testable without click. Add a command with
`@main.command()` below; import heavy modules (Celery, the app) inside the command so
`aftersales --help` stays fast and needs no Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:  # heavy imports stay out of `aftersales --help`
    from worker.adapters.redis_store import RedisStore


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aftersales")
def main() -> None:
    """After-sales worker: cancellations, returns and their deadlines on Celery and Redis."""


@main.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=lambda: os.cpu_count() or 1,
    show_default="number of CPUs",
    help="Worker processes.",
)
@click.option(
    "--redis-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Port of the embedded Redis (default 6379 if free, else any; 0 = any).",
)
@click.option(
    "--loglevel",
    "-l",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
def run(concurrency: int, redis_port: int | None, loglevel: str) -> None:
    """Worker and scheduler; an embedded Redis too when AFTERSALES_REDIS_URL is unset.

    Ctrl-C stops everything it started: worker, then beat, then Redis.
    """
    from worker.cli.embedded_redis import EmbeddedRedisError
    from worker.cli.runner import Runner

    var_dir = Path(os.environ.get("AFTERSALES_VAR_DIR", "var"))
    runner = Runner(var_dir, concurrency, loglevel.upper(), redis_port)
    try:
        status = runner.run()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)


@main.command()
@click.option(
    "--own-worker",
    is_flag=True,
    help="Start its own Redis, worker and beat (under var/demo) even if one runs.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=10),
    default=60.0,
    show_default=True,
    help="Seconds for the whole demo, start-up included.",
)
def demo(own_worker: bool, timeout: float) -> None:
    """Play a scripted story and print each event as it comes: an instant cancel, an
    ignored cancel request, a UK return over a bank holiday, a drop-off label, a refund,
    a seller's offer that lapses.

    Event times lie in the past, so 48-hour timers fire within seconds. Uses the running
    worker (AFTERSALES_REDIS_URL or var/redis.url) when one answers, else starts its own.
    Exits 1 if a promised outcome did not come.
    """
    import time

    from rich.console import Console

    from worker.cli.demo.story import play
    from worker.cli.demo.target import STOP_GRACE, workers_answering
    from worker.cli.demo.target import own_worker as start_own
    from worker.redis_urls import redacted
    from worker.settings import get_settings

    started, console = time.monotonic(), Console(highlight=False)
    url = get_settings().broker_url
    nodes = [] if own_worker else workers_answering(url)
    if nodes:
        console.print(f"Using {len(nodes)} running worker(s) at {redacted(url)}.")
        budget = timeout - (time.monotonic() - started)
        raise SystemExit(play(url, console, budget, state_url=get_settings().redis_url))
    var_dir = Path(os.environ.get("AFTERSALES_VAR_DIR", "var")) / "demo"
    console.print(f"Starting a Redis, worker and beat of its own under {var_dir}/ ...")
    try:
        with start_own(var_dir, timeout / 2) as target:
            console.print(f"Ready at {target.url} (log: {target.log}).")
            budget = timeout - (time.monotonic() - started) - STOP_GRACE / 4
            status = play(target.url, console, budget)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--asyncapi",
    "asyncapi_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the AsyncAPI 3.0 document (YAML) to this file.",
)
def schemas(out_dir: Path | None, asyncapi_file: Path | None) -> None:
    """Write the JSON Schemas of the wire contract into OUT_DIR, and/or the AsyncAPI 3.0
    document of the inbound tasks and outbound events (`--asyncapi docs/asyncapi.yaml`).

    One file per inbound task and per message type, the CloudEvent envelope and each
    event's data, and the policy file.
    """
    if out_dir is None and asyncapi_file is None:
        raise click.UsageError("give OUT_DIR, --asyncapi FILE, or both")
    if out_dir is not None:
        from worker.contract.json_schemas import write_schemas

        for path in write_schemas(out_dir):
            click.echo(path)
    if asyncapi_file is not None:
        from worker.contract.asyncapi import document_yaml

        asyncapi_file.parent.mkdir(parents=True, exist_ok=True)
        asyncapi_file.write_text(document_yaml())
        click.echo(asyncapi_file)


def _store() -> RedisStore:
    from worker.adapters.redis_store import RedisStore
    from worker.adapters.state_client import connect
    from worker.settings import get_settings

    return RedisStore(connect(get_settings()))


def _echo_json(value: object) -> None:
    import json

    click.echo(json.dumps(value, indent=2, default=str))


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="JSON, for scripts.")


@main.command()
@click.argument("order_id")
@JSON_OPTION
def order(order_id: str, as_json: bool) -> None:
    """One order: its timeline, open requests, pending deadlines, parked messages.

    Times are shown in UTC and in the marketplace's local time; `--json` prints
    everything, the whole state included.
    """
    from worker.cli.ops import order_view

    view = order_view(_store(), order_id)
    if view is None:
        raise click.ClickException(f"no order {order_id!r} in this Redis")
    if as_json:
        _echo_json(view)
        return
    from worker.cli.views import order_renderable, print_renderable

    print_renderable(order_renderable(view))


@main.command()
@click.option(
    "--next",
    "count",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the next pending deadlines, all orders together.",
)
@click.option("--order", "order_id", default=None, help="Only this order's deadlines.")
def deadlines(count: int, order_id: str | None) -> None:
    """Pending deadlines (the next N overall, or one order's) and firing lateness."""
    from worker.cli.ops import lateness, next_deadlines, order_view

    store = _store()
    if order_id is not None:
        view = order_view(store, order_id)
        if view is None:
            raise click.ClickException(f"no order {order_id!r} in this Redis")
        _echo_json(view["deadlines"])
        return
    scheduled, armed = store.schedule_size()
    _echo_json(
        {
            "pending": {"scheduled": scheduled, "armed": armed},
            "lateness_ms": lateness(store),
            "next": next_deadlines(store, count),
        }
    )


@main.command("dead-letters")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@JSON_OPTION
def dead_letters(limit: int, as_json: bool) -> None:
    """Show dead letters, oldest first, without taking them off the queue."""
    import redis

    from worker.cli.ops import dead_letters as read
    from worker.settings import get_settings

    # The dead-letter queue is the broker's (the state's own Redis unless it is elsewhere).
    broker_url = get_settings().broker_url
    if not broker_url.startswith("redis"):
        raise click.ClickException("dead-letters reads a Redis broker's queue only")
    with redis.Redis.from_url(broker_url) as client:
        letters = read(client, limit)
    if as_json:
        _echo_json(letters)
        return
    from worker.cli.views import dead_letters_renderable, print_renderable

    print_renderable(dead_letters_renderable(letters))


@main.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="At most this many messages a second (to replay traffic at its pace).",
)
@click.option("--dry-run", is_flag=True, help="Validate only; send nothing.")
def publish(file: TextIO, rate: float | None, dry_run: bool) -> None:
    """Send inbound messages from FILE (a JSON array or JSON lines; - for stdin).

    Each message is validated first and sent to its task by its `type`; refused ones are
    listed with their line number and the command then exits with status 1.
    """
    from rich.console import Console
    from rich.progress import Progress

    from worker.cli.send import read_entries, send_entries
    from worker.contract.client import Producer
    from worker.settings import get_settings

    entries = list(read_entries(file.read()))
    progress_console = Console(stderr=True)
    with (
        Producer(get_settings().broker_url) as producer,
        Progress(
            console=progress_console, disable=not progress_console.is_terminal, transient=True
        ) as progress,
    ):
        task = progress.add_task("publishing", total=len(entries))
        summary = send_entries(
            entries,
            (lambda _: None) if dry_run else producer.send,
            rate,
            advance=lambda: progress.advance(task),
        )
    verb = "valid (dry run, nothing sent)" if dry_run else "sent"
    click.echo(f"{summary.sent} {verb}, {len(summary.refused)} refused")
    for line, why in summary.refused:
        click.echo(f"  line {line}: {why}")
    if summary.refused:
        raise SystemExit(1)


@main.command()
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def replay(limit: int) -> None:
    """Send dead-lettered inbound messages to their task again (after a fix)."""
    from celery import Celery

    from worker.cli.ops import replay as send_again
    from worker.service_layer.service import utcnow
    from worker.settings import get_settings

    # A bare producer on the current settings: the CLI need not load the worker app.
    client = Celery("aftersales-cli", broker=get_settings().broker_url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"])
    try:
        sent = send_again(client, limit, utcnow())
    finally:
        client.close()
    _echo_json({"replayed": len(sent), "messages": sent})
