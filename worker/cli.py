"""The `aftersales` command line: one click group, one small function per command.

A command parses its options and delegates to a module that does the work (`runner`,
`schema_export`, ...), so each stays testable without click. Add a command with
`@main.command()` below; import heavy modules (Celery, the app) inside the command so
`aftersales --help` stays fast and needs no Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


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
    from worker.embedded_redis import EmbeddedRedisError
    from worker.runner import Runner

    var_dir = Path(os.environ.get("AFTERSALES_VAR_DIR", "var"))
    runner = Runner(var_dir, concurrency, loglevel.upper(), redis_port)
    try:
        status = runner.run()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def schemas(out_dir: Path) -> None:
    """Write the JSON Schemas of the wire contract into OUT_DIR.

    One file per inbound task and per message type, the CloudEvent envelope and each
    event's data, and the policy file.
    """
    from worker.schema_export import write_schemas

    for path in write_schemas(out_dir):
        click.echo(path)
