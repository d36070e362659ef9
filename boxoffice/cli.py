"""The `boxoffice` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from boxoffice.settings import get_settings

app = typer.Typer(help="boxoffice: event-sourced ticketing and chat on Kafka", no_args_is_help=True)

Only = Annotated[
    list[str] | None,
    typer.Argument(
        help="components (postgres, kafka, deciders, views, chatviews, reconciler, processors, "
        "api); default all"
    ),
]


def _only(names: list[str] | None) -> tuple[str, ...]:
    from stack.services import COMPONENTS

    if not names:
        return COMPONENTS
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise typer.BadParameter(f"unknown component(s): {', '.join(unknown)}")
    return tuple(names)


@app.command()
def up(only: Only = None) -> None:
    """Start the local stack (idempotent) and print its URLs."""
    from stack.services import Stack

    settings = get_settings()
    Stack(settings).up(_only(only), say=typer.echo)
    typer.echo("")
    typer.echo(f"Web app   {settings.api_url}/")
    typer.echo(f"API       {settings.api_url}")
    typer.echo(f"API docs  {settings.api_url}/docs")
    typer.echo(f"Metrics   {settings.api_url}/metrics")
    typer.echo(f"Kafka     {settings.kafka_bootstrap}")
    typer.echo(
        f"Postgres  postgresql://{settings.pg_user}@{settings.pg_host}:{settings.pg_port}/"
        f"{settings.pg_database}"
    )
    typer.echo(f"Logs      {settings.log_dir}")


@app.command()
def down(only: Only = None) -> None:
    """Stop the local stack (or the named components)."""
    from stack.services import Stack

    Stack(get_settings()).down(_only(only), say=typer.echo)


@app.command()
def status() -> None:
    """Say how each component is doing and how far behind each consumer is; exit 1 unless
    every component is running."""
    from stack.services import Stack

    report = Stack(get_settings()).report()
    for process in report.processes:
        typer.echo(f"{process.name:<10} {process.describe()}")
    if report.lags:
        typer.echo("")
        width = max(len(lag.name) for lag in report.lags)
        for lag in report.lags:
            where = "kafka offsets" if lag.kind == "group" else "postgres checkpoints"
            typer.echo(
                f"{lag.kind:<5} {lag.name:<{width}}  {where:<20}  {lag.describe()}"
                f"  ({lag.partitions} partitions)"
            )
    typer.echo("")
    from producers.fetching import consumers

    for consumer in consumers(get_settings()):
        typer.echo(
            f"consumer {consumer.component:<10} {consumer.role:<8} {consumer.reads}; "
            f"fetches {consumer.fetch}"
        )
    for problem in report.problems:
        typer.echo(f"note: {problem}")
    if not report.all_running:
        raise typer.Exit(1)


user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="username: 3-32 chars of a-z, 0-9, _")],
    password: Annotated[str, typer.Option(help="8+ characters")],
    organizer: Annotated[
        bool | None,
        typer.Option(
            "--organizer/--no-organizer",
            help="may create shows; when neither is given an existing user keeps its flag",
        ),
    ] = None,
) -> None:
    """Create a user, or set the password (and the flag, if given) of an existing one."""
    import re

    import psycopg

    from api.auth import PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, USERNAME_PATTERN, hash_password
    from snapshots.accounts import put_user
    from snapshots.database import conninfo, migrate

    if not re.fullmatch(USERNAME_PATTERN, name):
        raise typer.BadParameter("3-32 characters of a-z, 0-9 and _", param_hint="NAME")
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise typer.BadParameter(
            f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters", param_hint="--password"
        )
    settings = get_settings()
    migrate(settings)
    with psycopg.connect(conninfo(settings), autocommit=True, connect_timeout=10) as conn:
        created, is_organizer = put_user(conn, name, hash_password(password), organizer)
    role = "organizer" if is_organizer else "fan"
    typer.echo(f"{'created' if created else 'updated'} user {name} ({role})")


@app.command()
def api() -> None:
    """Run the HTTP API in the foreground."""
    from api.app import main

    main()


@app.command()
def migrate() -> None:
    """Apply pending PostgreSQL migrations."""
    from snapshots.database import migrate as run

    for name in run(get_settings()):
        typer.echo(f"applied {name}")


@app.command()
def topics() -> None:
    """Create the missing Kafka topics."""
    from producers.topics import ensure_topics

    for name in ensure_topics(get_settings()):
        typer.echo(f"created {name}")


@app.command()
def replay(
    verify: Annotated[
        bool, typer.Option("--verify", help="compare with the live views; exit 1 on a difference")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="SCHEMA", help="continue an interrupted replay into its schema"
        ),
    ] = None,
) -> None:
    """Rebuild every view (ticketing and chat) from the journals alone into a fresh schema,
    with a progress line per journal on stderr; resumable after an interruption."""
    import sys

    from snapshots.replay import run

    code = run(get_settings(), check=verify, say=typer.echo, resume=resume, progress=sys.stderr)
    if code:
        raise typer.Exit(code)


@app.command()
def seatmap(
    show: Annotated[str, typer.Argument(help="the show id")],
    version: Annotated[
        int | None, typer.Option("--version", help="the map right after this event (time travel)")
    ] = None,
) -> None:
    """Print a show's seat map as JSON: now, or as it stood at --version N."""
    import asyncio

    import orjson

    from snapshots.timetravel import VersionNotFoundError, seatmap_document

    try:
        body = asyncio.run(seatmap_document(get_settings(), show, version))
    except VersionNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if body is None:
        typer.echo(f"no show {show}", err=True)
        raise typer.Exit(1)
    typer.echo(orjson.dumps(body).decode())


if __name__ == "__main__":
    app()
