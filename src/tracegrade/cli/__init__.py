"""The ``tracegrade`` command line: thin commands over the library."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import click
from rich.console import Console

from tracegrade import __version__
from tracegrade.cli._common import AppContext, TracegradeGroup


@click.group(cls=TracegradeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracegrade")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              envvar="TRACEGRADE_CONFIG",
              help="Config file. [default: ./tracegrade.yaml; env TRACEGRADE_CONFIG]")
@click.option("--store", "store_url", default=None, envvar="TRACEGRADE_STORE",
              help="Store URL, overriding the config: sqlite:///path.db or "
                   "postgresql+psycopg://user@host/db. [env TRACEGRADE_STORE]")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, store_url: str | None) -> None:
    """Grade an LLM application on its production traces.

    Import spans, sample them, run graders, and see per release which grader
    regressed, with intervals and false-discovery control.

    \b
    Exit codes: 0 ok, 1 something regressed (or bad records with --strict),
    2 a usage or config error, 3 insufficient data with --strict.
    """
    # Piped output (CI logs, files) gets room for the tables instead of rich's 80 columns.
    width = None if sys.stdout.isatty() else 160
    # A `python` grader's "module:function" is found in the working directory, as users expect.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    ctx.obj = AppContext(config_path, store_url, Console(width=width), Console(stderr=True))


def _register_commands() -> None:
    """Add every click command defined in this package's ``_*.py`` modules.

    Each command group lives in its own module; discovering them keeps this file from being
    the place every new command has to touch.
    """
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "_common":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        commands = [value for value in vars(module).values()
                    if isinstance(value, click.Command) and value.callback is not None
                    and value.callback.__module__ == module.__name__]
        # A group's subcommands (e.g. `labels import`) are not top-level commands.
        nested = {id(sub) for command in commands for sub in _subcommands(command)}
        for command in commands:
            if id(command) not in nested:
                cli.add_command(command)


def _subcommands(command: click.Command) -> list[click.Command]:
    if not isinstance(command, click.Group):
        return []
    found = list(command.commands.values())
    for sub in command.commands.values():
        found += _subcommands(sub)
    return found


_register_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tracegrade")
