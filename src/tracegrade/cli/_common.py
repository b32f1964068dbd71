"""What every command shares: loading config and store, output formats, errors, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tracegrade.analysis.errors import NotEnoughReleases
from tracegrade.config import Config, ConfigError, load_config
from tracegrade.graders import GraderConfigError
from tracegrade.sources import RemoteError
from tracegrade.store import Store, StoreError, open_store

EXIT_OK = 0
EXIT_FINDINGS = 1
"""Something regressed, or (with ``--strict``) bad records were found."""
EXIT_USAGE = 2
"""A user mistake: bad config, missing file, unknown grader…"""
EXIT_INSUFFICIENT = 3
"""``--strict`` and a grader has too little data to tell."""

USER_ERRORS = (ConfigError, StoreError, GraderConfigError, NotEnoughReleases, FileNotFoundError,
               IsADirectoryError, PermissionError, RemoteError)

format_option = click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="table for people, json for scripts.",
)


@dataclass
class AppContext:
    """Global options, resolved lazily so `--help` never touches the disk."""

    config_path: Path | None
    store_url: str | None
    console: Console
    err_console: Console

    def config(self) -> Config:
        """The validated config (defaults when there is no tracegrade.yaml)."""
        return load_config(self.config_path)

    def open_store(self, config: Config | None = None) -> Store:
        """The store named by --store, else by the config."""
        config = config or self.config()
        return open_store(self.store_url or config.store)


pass_app = click.make_pass_decorator(AppContext)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class TracegradeGroup(click.Group):
    """A click group that turns user mistakes into one-line errors instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            fail(_message(exc))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def print_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(value, option=options, default=str).decode())
    sys.stdout.write("\n")


@contextmanager
def progress_bar(console: Console, description: str, total: int | None, *,
                 threaded: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields a callback that advances it.

    ``threaded=False`` redraws only when the callback is called, without rich's refresh
    thread: an import forks worker processes, which is only safe with no other thread running.
    """
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True, auto_refresh=threaded) as progress:
        task = progress.add_task(description, total=total)
        if threaded:
            yield lambda n: progress.advance(task, n)
            return

        def advance(n: int) -> None:
            progress.advance(task, n)
            progress.refresh()

        yield advance
