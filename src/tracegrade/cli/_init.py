"""``tracegrade init``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import click

from tracegrade.cli._common import AppContext, fail, pass_app
from tracegrade.config import CONFIG_FILE


def starter_config() -> str:
    """The commented starter config ``tracegrade init`` writes."""
    return (files("tracegrade") / "templates" / "starter.yaml").read_text(encoding="utf-8")


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@pass_app
def init_command(app: AppContext, force: bool) -> None:
    """Write a commented starter tracegrade.yaml in the current directory."""
    path = app.config_path or Path(CONFIG_FILE)
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite it)")
    path.write_text(starter_config(), encoding="utf-8")
    app.console.print(f"Wrote {path}. Next: `tracegrade import FILE...`, then `tracegrade grade`.")
