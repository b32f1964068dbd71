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
from tracegrade.cli._index import COMMANDS


class _LazyGroup(TracegradeGroup):
    """Imports a command's module only when that command runs.

    The statistics, embedding and web stacks some commands need take seconds to import;
    ``tracegrade --help`` or ``tracegrade import`` should not wait for them.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click lays it out, from the index's help text instead of the imported commands.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        # A stand-in command with the same help shortens it exactly as the real one would.
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    Exit codes: 0 ok, 1 a finding (something regressed; bad records with
    --strict; a source or destination failed in pull/export; a failed replay;
    a new watch --once finding; init --check found the config out of date),
    2 a usage or config error, 3 insufficient data with --strict, 130 interrupted.
    """
    # Piped output (CI logs, files) gets room for the tables instead of rich's 80 columns.
    width = None if sys.stdout.isatty() else 160
    # A `python` grader's "module:function" is found in the working directory, as users expect.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    ctx.obj = AppContext(config_path, store_url, Console(width=width), Console(stderr=True))


def discover_commands() -> dict[str, click.Command]:
    """Every top-level click command defined in this package's ``_*.py`` modules (importing all).

    Each command group lives in its own module; discovering them keeps this file from being
    the place every new command has to touch. :data:`tracegrade.cli._index.COMMANDS`, which
    lets ``tracegrade`` start without importing them all, is generated from this (`make docs`).
    """
    found: dict[str, click.Command] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in ("_common", "_index"):
            continue
        found.update(_commands_of(f"{__name__}.{module_info.name}"))
    return found


def _commands_of(module_name: str) -> dict[str, click.Command]:
    module = importlib.import_module(module_name)
    commands = [value for value in vars(module).values()
                if isinstance(value, click.Command) and value.callback is not None
                and value.callback.__module__ == module.__name__]
    # A group's subcommands (e.g. `labels import`) are not top-level commands.
    nested = {id(sub) for command in commands for sub in _subcommands(command)}
    return {command.name: command for command in commands
            if id(command) not in nested and command.name}


def _subcommands(command: click.Command) -> list[click.Command]:
    if not isinstance(command, click.Group):
        return []
    found = list(command.commands.values())
    for sub in command.commands.values():
        found += _subcommands(sub)
    return found


def load_command(name: str) -> click.Command | None:
    """The command ``name``, importing only the module that defines it."""
    if name not in cli.commands and name in COMMANDS:
        for command_name, command in _commands_of(COMMANDS[name][0]).items():
            cli.add_command(command, command_name)
    return cli.commands.get(name)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tracegrade")
