"""``--with-llm``: a model drafts the judge rubrics, against a loopback fake OpenAI endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from tests.fakes.openai_server import ServerError, running_fake
from tracegrade.cli import cli
from tracegrade.demo.generate import APP_SOURCE
from tracegrade.llm import compile_rubric
from tracegrade.synth import RubricModel, analyse, propose, sharpen_rubrics


def drafted(body: dict[str, Any]) -> str:
    """The fake model's answer: a criterion for every instruction it was sent."""
    question = orjson.loads(body["messages"][-1]["content"])
    return orjson.dumps({"rubrics": [
        {"instruction": text, "criteria": f"Pass when the reply honours {{{{it}}}}: {text[:20]}"}
        for text in question["instructions"]]}).decode()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")


def test_a_model_drafts_every_rubric_in_one_call_per_prompt() -> None:
    synthesis = propose(analyse(APP_SOURCE), judges=True)
    judges = [p for p in synthesis.proposals if p.judged]
    with running_fake(answer=drafted) as fake:
        problems = sharpen_rubrics(synthesis, RubricModel("judge-model", fake.base_url))
    assert problems == []
    (body,) = fake.bodies()
    assert body["model"] == "judge-model"
    assert body["response_format"]["json_schema"]["name"] == "rubrics"
    assert len(orjson.loads(body["messages"][-1]["content"])["instructions"]) == len(judges)
    for proposal in judges:
        rubric = proposal.params["rubric"]
        lines = rubric.splitlines()
        # The quote stays, the model's criteria replace the default rule (braces defused),
        # and the evidence the judge reads is unchanged.
        assert lines[0].startswith("The application's system prompt")
        assert lines[2].startswith("Pass when the reply honours ((it)):")
        assert rubric.rstrip().endswith("{{ span.output_text }}")
        compile_rubric(rubric)
        assert any("judge-model (--with-llm)" in note for note in proposal.notes)


def test_a_failing_model_keeps_the_default_rubrics() -> None:
    synthesis = propose(analyse(APP_SOURCE), judges=True)
    before = [p.params["rubric"] for p in synthesis.proposals if p.judged]
    with running_fake(answer=drafted) as fake:
        fake.script(ServerError(500))
        problems = sharpen_rubrics(synthesis, RubricModel("judge-model", fake.base_url))
    assert len(problems) == 1 and "kept the default rubrics" in problems[0]
    assert [p.params["rubric"] for p in synthesis.proposals if p.judged] == before


def test_init_with_llm_writes_the_drafted_rubrics_and_names_the_judge(workspace: Path) -> None:
    with running_fake(answer=drafted) as fake:
        result = CliRunner().invoke(cli, [
            "init", "--from-code", str(APP_SOURCE), "--with-llm", "--llm-model", "judge-model",
            "--llm-base-url", fake.base_url])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(Path("tracegrade.yaml").read_text(encoding="utf-8"))
    assert config["judges"] == {"default": {"provider": "openai", "base_url": fake.base_url,
                                            "model": "judge-model"}}
    rubrics = [g["rubric"] for g in config["graders"] if g["type"] == "llm_judge"]
    assert len(rubrics) == 5 and all("Pass when the reply honours" in r for r in rubrics)
