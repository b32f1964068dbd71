"""What every command shares: loading config and store, output formats, errors, progress."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from tracegrade import __version__
from tracegrade.analysis.errors import NotEnoughReleases
from tracegrade.config import Config, ConfigError, load_config
from tracegrade.graders import GraderConfigError
from tracegrade.sources import RemoteError
from tracegrade.store import Store, StoreError, open_store
from tracegrade.store._store import BUSY_TIMEOUT_MS, hide_password

EXIT_OK = 0
EXIT_FINDINGS = 1
"""Something regressed, or (with ``--strict``) bad records were found."""
EXIT_USAGE = 2
"""A user mistake: bad config, missing file, unknown grader…"""
EXIT_INSUFFICIENT = 3
"""``--strict`` and a grader has too little data to tell."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT), as shells report it: never mistaken for "regressed"."""


USER_ERRORS = (ConfigError, StoreError, GraderConfigError, NotEnoughReleases, FileNotFoundError,
               IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError,
               RemoteError)

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
    opened_store: str | None = None
    """The URL of the store this command opened, named in errors about it."""

    def config(self) -> Config:
        """The validated config (defaults when there is no tracegrade.yaml)."""
        return load_config(self.config_path)

    def open_store(self, config: Config | None = None, *, existing: bool = False) -> Store:
        """The store named by --store (or TRACEGRADE_STORE), else by the config.

        Args:
            config: the loaded config, when the command has it already.
            existing: the command only makes sense on a store that holds data (it reads):
                a SQLite file that does not exist is an error instead of a new, empty store.

        Raises:
            StoreError: an in-memory SQLite store (everything would be lost when the command
                ends), a missing store with ``existing``, or a store that cannot be opened.
        """
        config = config or self.config()
        url = self.store_url or config.store
        check_store_url(url, existing=existing)
        self.opened_store = url
        return open_store(url, existing=existing)


pass_app = click.make_pass_decorator(AppContext)


def require_release(store: Store, release: str | None) -> None:
    """Fail (exit 2) when ``release`` is given and no span has it: a typo, not an empty result."""
    if release is not None:
        _require_known("release", release, store.releases(), "releases in order")


def require_environment(store: Store, environment: str | None) -> None:
    """Fail (exit 2) when ``environment`` is given and no span has it: a typo, not an empty
    report."""
    if environment is not None:
        _require_known("environment", environment, store.environments(), "environments")


def _require_known(what: str, value: str, known: list[str], listed: str) -> None:
    if value not in known:
        fail(f"no spans of {what} {value!r} in the store ({listed}: "
             f"{', '.join(known) or 'none'})")


def _sqlite_database(url: str) -> str | None:
    """The database part of a SQLite URL ('' when in memory); None for any other URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # open_store says what is wrong with it
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database == ":memory:" or (database.startswith("file:") and "mode=memory" in url):
        return ""
    return database


def check_store_url(url: str, *, existing: bool = False) -> None:
    """Refuse a store URL the command line cannot use (see :meth:`AppContext.open_store`)."""
    database = _sqlite_database(url)
    if database is None:
        return  # a server database (PostgreSQL) always exists once it answers
    if not database:
        raise StoreError(f"store {url!r} is an in-memory database: everything would be lost "
                         "when the command ends; give a file instead, e.g. "
                         "sqlite:///path/to/tracegrade.db")
    if existing and not database.startswith("file:"):
        path = Path(database).expanduser()
        if not path.exists():
            raise StoreError(f"no store at {database}: run `tracegrade import` first "
                             "(or pass --store / --config to use another store)")
        if path.is_file() and path.stat().st_size == 0:  # SQLite would make it a new store
            raise StoreError(f"store {database} is an empty file (0 bytes), no tracegrade "
                             "store: a copy that failed? Restore it, or remove it and run "
                             "`tracegrade import`")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error and exit."""
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


class TracegradeGroup(click.Group):
    """A click group that turns user mistakes into one-line errors instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Commands that write leave what they committed (a grading run is recorded as
            # interrupted); click alone would say "Aborted!" and exit 1, the "regressed" code.
            fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            message = user_error(exc, app.opened_store if app else None)
            if message is None:
                raise
            fail(message)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)


def user_error(exc: BaseException, store_url: str | None = None) -> str | None:
    """The one-line message for an exception caused by the user's input; None for a bug.

    Args:
        exc: what a command raised.
        store_url: the store the command opened, if any (named in store errors).
    """
    if isinstance(exc, GraderConfigError):
        return _grader_config_message(exc)
    if isinstance(exc, USER_ERRORS):
        return _message(exc)
    if isinstance(exc, DatabaseError):
        return _database_message(exc, store_url)
    if isinstance(exc, BrokenProcessPool):
        return ("a worker process died (killed, or out of memory): what it committed is kept; "
                "run the command again to finish")
    if type(exc).__module__.startswith("alembic.") and "Can't locate revision" in str(exc):
        revision = re.search(r"identified by '([^']*)'", str(exc))
        return (f"store {_shown(store_url)} was migrated by a newer tracegrade (its schema "
                f"revision {revision.group(1) if revision else '?'} is unknown to tracegrade "
                f"{__version__}): upgrade tracegrade to use it")
    judge_errors = sys.modules.get("tracegrade.llm._errors")  # loaded if a judge could raise
    if judge_errors is not None and isinstance(exc, judge_errors.JudgeError):
        return f"LLM judge: {exc}"
    return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _grader_config_message(exc: GraderConfigError) -> str:
    text = str(exc)
    where = re.match(r"^graders\[\d+\] \(([^)]*)\)", text)
    if where is None:
        return text
    return text.replace(f"{where.group(0)}: grader {where.group(1)!r}: ", f"{where.group(0)}: ")


def _database_message(exc: DatabaseError, store_url: str | None) -> str | None:
    code = str(getattr(exc.orig, "sqlite_errorname", ""))
    problem = " ".join(str(exc.orig).split())
    if code == "SQLITE_NOTADB":
        return (f"store {_shown(store_url)} is not a SQLite database ({problem}): point --store "
                "or `store:` at a tracegrade store, e.g. sqlite:///.tracegrade/tracegrade.db")
    if code.startswith("SQLITE_CORRUPT"):
        return (f"store {_shown(store_url)} is damaged ({problem}): restore it from a backup, "
                "or move it aside and import the traces again")
    if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED"):
        return (f"store {_shown(store_url)} stayed locked by another process for "
                f"{BUSY_TIMEOUT_MS // 1000} s ({problem}): nothing was lost; run the command "
                "again once the other one (a long import, an open sqlite3 shell) is done")
    if code.startswith("SQLITE_READONLY") or code.startswith("SQLITE_CANTOPEN"):
        return (f"store {_shown(store_url)} cannot be written ({problem}): SQLite needs to "
                "write the database file and create its -wal and -shm files beside it, so "
                "both the file and its directory must be writable")
    if not type(exc.orig).__module__.startswith("psycopg"):
        return None
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if not sqlstate and isinstance(exc, OperationalError):
        sqlstate = "08000"  # the client lost the server: psycopg gives no SQLSTATE then
    return _postgresql_message(sqlstate, problem, store_url)


def _postgresql_message(sqlstate: str, problem: str, store_url: str | None) -> str | None:
    """PostgreSQL errors the operator, not tracegrade, has to fix (by SQLSTATE)."""
    if sqlstate == "42501":  # insufficient_privilege
        return (f"store {_shown(store_url)}: the database user lacks a permission ({problem}): "
                "a new store needs CREATE on its schema; an existing one SELECT, INSERT, "
                "UPDATE and DELETE on its tables")
    if sqlstate == "42P07":  # duplicate_table
        return (f"store {_shown(store_url)} already holds a table of that name from another "
                f"application ({problem}): give tracegrade a database of its own")
    if sqlstate[:2] in ("08", "57"):  # connection exception, operator intervention
        return (f"store {_shown(store_url)}: the connection to PostgreSQL was lost ({problem}): "
                "what was committed is kept; run the command again")
    return None


def _shown(store_url: str | None) -> str:
    """A store as errors name it: a SQLite file by its path, a server without its password."""
    if store_url is None:
        return "(unknown)"
    database = _sqlite_database(store_url)
    if database:
        return database
    return hide_password(store_url)


_DIAGRAM_LINE = re.compile(r"^(->|\||\d+\s*\||\^)")


def one_line(message: str) -> str:
    """A message on one line: its lines joined, a parser's caret diagram left out."""
    lines = [line.strip() for line in message.strip().splitlines()]
    kept = lines[:1] + [line for line in lines[1:] if line and not _DIAGRAM_LINE.match(line)]
    joined = kept[0] if kept else ""
    for line in kept[1:]:
        joined += (" " if joined.endswith((".", ":", ";", ",", "?", "!")) else ". ") + line
    return joined


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
