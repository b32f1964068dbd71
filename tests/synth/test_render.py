"""The written config: prompt text quoted in it stays literal for Jinja and for ``${ENV}``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tracegrade.cli import cli
from tracegrade.config import load_config
from tracegrade.llm import compile_rubric

TEMPLATED_PROMPT_APP = '''\
from openai import OpenAI

client = OpenAI()
SYSTEM = "You are a billing assistant.\\nGreet the customer as ${user} and thank {{customer}}."


def answer(question: str):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
    )
'''


def write_app(root: Path, source: str, name: str = "bot.py") -> Path:
    app = root / "app"
    app.mkdir(exist_ok=True)
    (app / name).write_text(source, encoding="utf-8")
    return app


def test_prompt_placeholders_are_quoted_verbatim_in_the_rubric(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("user", "alice")
    app = write_app(workspace, TEMPLATED_PROMPT_APP)
    result = CliRunner().invoke(cli, ["init", "--from-code", str(app), "--no-dry-run"])
    assert result.exit_code == 0, result.output
    (judge,) = [g for g in load_config().graders if g.type == "llm_judge"]
    rubric = str(judge.params()["rubric"])
    # Neither a Jinja variable nor an environment variable: the judge reads the words.
    assert "Greet the customer as ${user} and thank {{customer}}." in rubric
    assert "customer" not in compile_rubric(rubric).variables
