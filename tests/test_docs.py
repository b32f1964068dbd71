"""The README documents every command, and its CLI reference is current (as sqlite-utils does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cogapp import Cog
from docs.cli_reference import command_names, help_text

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_and_a_reference_entry(name: str) -> None:
    text = help_text(name)
    summary = text.split("\n\n")[1].strip()
    assert len(summary) > 20, f"`tracegrade {name}` has no real help text"
    assert f"### tracegrade {name}\n" in README


def test_cli_reference_is_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    status = Cog().main(["cog", "--check", "-I", str(ROOT), "README.md"])
    assert status == 0, "README's CLI reference is stale: run `make docs`"


def test_command_index_is_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    status = Cog().main(["cog", "--check", "-I", str(ROOT), "src/tracegrade/cli/_index.py"])
    assert status == 0, "tracegrade/cli/_index.py is stale: run `make docs`"


HEAVY = ("statsmodels", "scipy.stats", "sklearn", "fastapi", "pandas")


@pytest.mark.parametrize("args", [["--help"], ["import", "--help"], ["stats", "--help"]])
def test_commands_start_without_the_heavy_stacks(args: list[str]) -> None:
    # A fresh interpreter: what `tracegrade ARGS` imports before it can answer.
    script = ("import sys; from click.testing import CliRunner; from tracegrade.cli import cli; "
              f"result = CliRunner().invoke(cli, {args!r}); assert result.exit_code == 0; "
              f"print([m for m in {HEAVY!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_quick_start_is_the_two_make_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.splitlines()
                if line.startswith("make ")]
    assert commands == ["make demo", "make test"]
