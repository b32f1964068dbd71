"""Generates the README's CLI reference from the commands themselves (run by cog)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from tracegrade.cli import cli, discover_commands


def command_names() -> list[str]:
    """Every command, in the order the reference lists them."""
    return sorted(discover_commands())


def command_index() -> str:
    """``tracegrade.cli._index.COMMANDS``: each command's module and first help paragraph."""
    lines = ["COMMANDS: dict[str, tuple[str, str]] = {"]
    for name, command in sorted(discover_commands().items()):
        summary = (command.help or "").split("\n\n", 1)[0]
        lines.append(f"    {name!r}: ({command.callback.__module__!r},")  # type: ignore[union-attr]
        lines.append(f"        {summary!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def help_text(name: str | None = None) -> str:
    """The exact ``--help`` output of a command (or of the top-level group)."""
    args = [name, "--help"] if name else ["--help"]
    result = CliRunner().invoke(cli, args, prog_name="tracegrade", terminal_width=100)
    if result.exit_code != 0:
        raise click.ClickException(f"tracegrade {' '.join(args)} failed: {result.output}")
    return result.output


def reference() -> str:
    """The CLI reference as Markdown."""
    parts = ["```\n" + help_text() + "```\n"]
    for name in command_names():
        parts.append(f"### tracegrade {name}\n\n```\n{help_text(name)}```\n")
    return "\n".join(parts)
