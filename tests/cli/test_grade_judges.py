"""`tracegrade grade` with LLM judges (--budget, --no-cache, costs) and `tracegrade rubrics`."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml
from click.testing import CliRunner, Result

from tests.conftest import make_span
from tests.fakes.openai_server import FakeJudge, ServerError
from tests.llm.helpers import judge_settings, llm_judge
from tracegrade.cli import cli
from tracegrade.store import open_store


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def configure(workspace: Path, fake: FakeJudge, spans: int = 6, **judge: object) -> None:
    url = f"sqlite:///{workspace / 'store.db'}"
    with open_store(url) as store:
        store.upsert_spans(make_span(i) for i in range(spans))
    (workspace / "tracegrade.yaml").write_text(yaml.safe_dump({
        "store": url, "judges": {"default": judge_settings(fake, **judge)},
        "graders": [llm_judge(), {"name": "says_answer", "type": "contains",
                                  "applies_to": {"kind": "llm"}, "value": "answer"}]}))


def test_grade_prints_the_judge_cost_per_grader_and_for_the_run(workspace: Path,
                                                                fake: FakeJudge) -> None:
    configure(workspace, fake)
    result = run("grade")
    assert result.exit_code == 0, result.output
    assert "answers: $0.0" in result.stdout and "0 answers from the judge cache" in result.stdout
    assert "Judge cost this run: $0.0" in result.stdout
    assert fake.requests == 6


def test_grade_budget_in_json(workspace: Path, fake: FakeJudge) -> None:
    configure(workspace, fake, spans=20, prices={"input": 100.0, "output": 100.0}, max_tokens=20)
    result = run("grade", "--budget", "0.15", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["budget_exhausted"] is True
    assert 0 < summary["outcomes"]["answers"]["pass"] < 20
    assert summary["outcomes"]["says_answer"] == {"pass": 20}, "free graders still finish"
    assert 0 < summary["cost"]["total"] <= 0.15
    assert "Budget reached" in run("grade", "--budget", "0").stdout


def test_no_cache_asks_the_judge_again(workspace: Path, fake: FakeJudge) -> None:
    configure(workspace, fake)
    assert run("grade").exit_code == 0
    config = yaml.safe_load((workspace / "tracegrade.yaml").read_text())
    for name_glob in ("Chat*", "ChatCompletion"):  # a new version each time, same questions
        config["graders"][0]["applies_to"]["name"] = name_glob
        (workspace / "tracegrade.yaml").write_text(yaml.safe_dump(config))
        args = ["grade", "--format", "json"] + (["--no-cache"] if name_glob == "Chat*" else [])
        summary = orjson.loads(run(*args).stdout)
        assert summary["outcomes"]["answers"] == {"pass": 6}
    assert fake.requests == 12, "six first asked, six asked again with --no-cache, none cached"
    assert summary["cached"] == {"answers": 6}


def test_a_judge_refusing_every_call_is_a_one_line_error(workspace: Path,
                                                        fake: FakeJudge) -> None:
    configure(workspace, fake)
    fake.script(ServerError(401))
    result = run("grade")
    assert result.exit_code == 2
    message = result.stderr.strip()  # the progress bar leaves a blank line behind
    assert message.startswith("Error: LLM judge: ") and "answered 401" in message
    assert "\n" not in message and "test-key" not in message


def test_rubrics_lists_and_prints_the_shipped_templates() -> None:
    listing = run("rubrics", "--format", "json")
    names = [entry["name"] for entry in orjson.loads(listing.stdout)]
    assert names == ["answers_question", "follows_system_prompt", "grounded",
                     "refuses_appropriately"]
    grounded = run("rubrics", "grounded")
    assert grounded.exit_code == 0 and "{{ span.output_text }}" in grounded.stdout
    unknown = run("rubrics", "groundd")
    assert unknown.exit_code == 2 and "no rubric named 'groundd'" in unknown.stderr


def test_grade_says_which_spans_a_failing_judge_left_for_the_next_run(workspace: Path,
                                                                     fake: FakeJudge) -> None:
    configure(workspace, fake, spans=2, max_concurrency=1)
    fake.script(*[ServerError(503)] * 8)  # both spans, every attempt
    result = run("grade")
    assert result.exit_code == 0, result.output
    assert "2 spans got no verdict from their judge" in result.stderr
    assert "answered 503" in result.stderr and "the next run asks again" in result.stderr
    as_json = orjson.loads(run("grade", "--format", "json").stdout)
    assert as_json["outcomes"]["answers"] == {"pass": 2} and as_json["deferred"] == {}
