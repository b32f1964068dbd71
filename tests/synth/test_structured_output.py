"""Structured output from a call that may also call tools: only replies are held to the schema,
and a turn that only calls tools is skipped."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from tracegrade.cli import cli
from tracegrade.config import load_config
from tracegrade.graders import Grader, GraderConfig, Outcome, build_graders
from tracegrade.graders._targets import EMPTY_CONTEXT
from tracegrade.grading import grade_one
from tracegrade.sources.langfuse import observation_to_span
from tracegrade.spans import Span, SpanKind, utc_now
from tracegrade.synth import analyse, dry_run, propose
from tracegrade.synth._propose import TOOL_TURNS_NOTE
from tracegrade.synth._propose import _digest as proposal_digest
from tracegrade.synth._python import analyse_python

APP = Path(__file__).parent / "fixtures" / "structured_tools_app"

VALID = '{"status": "resolved", "answer": "It shipped."}'
INVALID = '{"status": "maybe", "answer": "It shipped."}'
ARGUMENTS = '{"order_id": "A-17"}'
CHAT_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "lookup_order", "arguments": ARGUMENTS}}


def completion(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    """A chat completion as OpenInference records it in ``output.value``."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def langfuse_span(index: int, output: dict[str, Any] | None) -> Span:
    """An OpenInference ChatCompletion span as Langfuse stores it and tracegrade pulls it."""
    observation = {
        "id": f"obs-{index}", "traceId": f"trace-{index}", "type": "GENERATION",
        "name": "ChatCompletion", "startTime": "2026-03-02T10:00:00Z",
        "endTime": "2026-03-02T10:00:01Z", "level": "DEFAULT",
        "input": orjson.dumps({"messages": [{"role": "user", "content": "Where is A-17?"}]
                               }).decode(),
        "output": None if output is None else orjson.dumps(output).decode(),
        "metadata": {"attributes": {"openinference.span.kind": "LLM"}},
    }
    return observation_to_span(observation, "langfuse")


def verdict(grader: Grader, span: Span) -> Outcome:
    """What grading stores for the span: ``skip`` when the grader does not apply to it."""
    if not grader.applies_to(span):
        return Outcome.SKIP
    return grade_one(grader, span, EMPTY_CONTEXT).outcome


def test_schema_graders_fail_bad_replies_and_skip_turns_that_only_call_tools(
        workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "--from-code", str(APP), "--source", "langfuse",
                                      "--no-judges", "--no-dry-run"])
    assert result.exit_code == 0, result.output
    graders = {grader.name: grader for grader in build_graders(load_config().graders)}
    schema, is_json = graders["llm_resolution_schema"], graders["llm_resolution_json"]
    written = (workspace / "tracegrade.yaml").read_text(encoding="utf-8")
    assert "unless_output: '$.choices[*].message.tool_calls[0]'" in written
    assert "Turns that call tools instead of replying are skipped" in written

    valid = langfuse_span(1, completion({"role": "assistant", "content": VALID}))
    invalid = langfuse_span(2, completion({"role": "assistant", "content": INVALID}))
    tool_turn = langfuse_span(3, completion(
        {"role": "assistant", "content": None, "tool_calls": [CHAT_CALL]}, "tool_calls"))
    no_reply = langfuse_span(4, completion({"role": "assistant", "content": None}))
    no_output = langfuse_span(5, None)
    # Langfuse keeps OpenInference's whole completion as the output: no tool_calls attribute
    # tells this turn apart, only the message inside the output does.
    assert "tool_calls" not in tool_turn.attributes

    assert verdict(schema, valid) == Outcome.PASS
    assert verdict(schema, invalid) == Outcome.FAIL
    assert verdict(is_json, valid) == verdict(is_json, invalid) == Outcome.PASS
    # A turn that only calls a tool has no reply to hold to the schema: not graded at all.
    assert verdict(schema, tool_turn) == verdict(is_json, tool_turn) == Outcome.SKIP
    # No reply without a tool call, or no output at all, is still an error, never a pass.
    for span in (no_reply, no_output):
        assert verdict(schema, span) == verdict(is_json, span) == Outcome.ERROR


MODELS = """
from pydantic import BaseModel

class Resolution(BaseModel):
    status: Literal["resolved", "escalated"]
    answer: str

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}}}}]
"""


def chat_reply(content: str | None, **extra: Any) -> dict[str, Any]:
    return completion({"role": "assistant", "content": content, **extra})


def anthropic_reply(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "content": list(blocks)}


def response_reply(*items: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "output": list(items)}


def langchain_reply(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    kwargs = {"content": text, "type": "ai", "tool_calls": calls, "invalid_tool_calls": [],
              "additional_kwargs": {"tool_calls": [CHAT_CALL]} if calls else {}}
    message = {"lc": 1, "type": "constructor", "kwargs": kwargs,
               "id": ["langchain", "schema", "messages", "AIMessage"]}
    return {"generations": [[{"text": text, "type": "ChatGeneration", "message": message}]],
            "llm_output": {"model_name": "gpt-4o-mini"}}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def message_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text}]}


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup_order",
            "input": {"order_id": "A-17"}}
FUNCTION_CALL = {"type": "function_call", "call_id": "call_1", "name": "lookup_order",
                 "arguments": ARGUMENTS}
LC_CALL = {"name": "lookup_order", "args": {"order_id": "A-17"}, "id": "call_1",
           "type": "tool_call"}

Integration = tuple[str, str, Any, list[Any], list[Any]]
"""source, the call, how a text reply is recorded, the turns that call tools as recorded, and
the turns with no reply (and no tool call) as recorded."""

INTEGRATIONS: dict[str, Integration] = {
    "openinference-chat": (
        "otlp", """
            from openai import OpenAI
            client = OpenAI()
            def answer(messages):
                return client.chat.completions.parse(
                    model="gpt-4.1", messages=messages, tools=TOOLS, response_format=Resolution)
        """, chat_reply,
        [chat_reply(None, tool_calls=[CHAT_CALL]), chat_reply("", tool_calls=[CHAT_CALL]),
         completion({"role": "assistant", "tool_calls": [CHAT_CALL]})],
        [chat_reply(None), chat_reply(None, tool_calls=[]), chat_reply(None, tool_calls=None),
         completion({"role": "assistant"})]),
    "langfuse-openai": (
        "langfuse", """
            from langfuse.openai import OpenAI
            client = OpenAI()
            def answer(messages):
                return client.chat.completions.parse(
                    model="gpt-4.1", messages=messages, tools=TOOLS, response_format=Resolution)
        """, lambda text: {"role": "assistant", "content": text},
        # Langfuse's wrapper: content null beside the calls, or no content key when streamed.
        [{"role": "assistant", "tool_calls": [CHAT_CALL], "content": None},
         {"role": "assistant", "tool_calls": [{"function": CHAT_CALL["function"]}]}],
        [{"role": "assistant", "content": None}, {"role": "assistant", "content": None,
                                                  "tool_calls": None},
         {"role": "assistant"}]),
    "braintrust-openai": (
        "braintrust", """
            from braintrust import wrap_openai
            from openai import OpenAI
            client = wrap_openai(OpenAI())
            def answer(messages):
                return client.chat.completions.parse(
                    model="gpt-4.1", messages=messages, tools=TOOLS, response_format=Resolution)
        """, lambda text: chat_reply(text, tool_calls=None)["choices"],
        [chat_reply(None, tool_calls=[CHAT_CALL])["choices"]],
        [chat_reply(None, tool_calls=None)["choices"], chat_reply(None)["choices"]]),
    "anthropic": (
        "otlp", """
            import anthropic
            client = anthropic.Anthropic()
            def answer(messages):
                return client.messages.parse(model="claude-sonnet-4-5", max_tokens=500,
                                             messages=messages, tools=TOOLS,
                                             output_format=Resolution)
        """, lambda text: anthropic_reply(text_block(text)),
        [anthropic_reply(TOOL_USE), anthropic_reply(text_block("Let me look."), TOOL_USE)],
        [anthropic_reply()]),
    "openai-responses": (
        "otlp", """
            from openai import OpenAI
            client = OpenAI()
            def answer(text):
                return client.responses.parse(model="gpt-4.1", input=text, tools=TOOLS,
                                              text_format=Resolution)
        """, lambda text: response_reply(message_item(text)),
        [response_reply(FUNCTION_CALL),
         response_reply(message_item("Let me look."), FUNCTION_CALL)],
        [response_reply()]),
    "langchain": (
        "otlp", """
            from langchain_openai import ChatOpenAI
            llm = ChatOpenAI(model="gpt-4o-mini")
            agent_llm = llm.bind_tools(TOOLS)
            structured = llm.with_structured_output(Resolution)
        """, lambda text: langchain_reply(text, []), [langchain_reply("", [LC_CALL])],
        [{"generations": [[]], "llm_output": {"model_name": "gpt-4o-mini"}}]),
}


@pytest.mark.parametrize("name", sorted(INTEGRATIONS))
def test_each_integration_grades_replies_and_skips_turns_that_call_tools(name: str) -> None:
    source, code, reply, tool_turns, no_replies = INTEGRATIONS[name]
    app = "from typing import Literal\n" + MODELS + textwrap.dedent(code)
    synthesis = propose(analyse_python({"app.py": app}), source, judges=False)
    configs = [GraderConfig.model_validate(p.config()) for p in synthesis.proposals
               if p.type in ("json_schema", "json_valid")]
    by_type = {grader.config.type: grader for grader in build_graders(configs)}
    schema, is_json = by_type["json_schema"], by_type["json_valid"]
    assert schema.config.applies_to.unless_output is not None

    def span(output: Any) -> Span:
        return Span(source="s", span_id="1", trace_id="t", start_time=utc_now(),
                    kind=SpanKind.LLM, name=str(schema.config.applies_to.name).strip("*"),
                    output=output)

    assert verdict(schema, span(reply(VALID))) == Outcome.PASS
    assert verdict(is_json, span(reply(VALID))) == Outcome.PASS
    assert verdict(schema, span(reply(INVALID))) == Outcome.FAIL
    assert verdict(is_json, span(reply("It shipped."))) == Outcome.FAIL
    for turn in tool_turns:
        assert verdict(schema, span(turn)) == verdict(is_json, span(turn)) == Outcome.SKIP
    for turn in no_replies:
        assert verdict(schema, span(turn)) == verdict(is_json, span(turn)) == Outcome.ERROR
    assert verdict(schema, span(None)) == verdict(is_json, span(None)) == Outcome.ERROR


def test_only_the_reply_graders_skip_turns_that_call_tools() -> None:
    source, code, _, tool_turns, _ = INTEGRATIONS["openinference-chat"]
    app = "from typing import Literal\n" + MODELS + textwrap.dedent(code)
    synthesis = propose(analyse_python({"app.py": app}), source, judges=False)
    graders = build_graders([GraderConfig.model_validate(p.config())
                             for p in synthesis.proposals if p.match.kind == "llm"])
    turn = Span(source="s", span_id="1", trace_id="t", start_time=utc_now(), kind=SpanKind.LLM,
                name="ChatCompletion", output=tool_turns[0])
    applying = {grader.config.type for grader in graders if grader.applies_to(turn)}
    assert applying == {grader.config.type for grader in graders} - {"json_schema", "json_valid"}
    assert "status_ok" in applying


def test_dry_run_counts_skipped_tool_turns_as_matched_not_as_errors(workspace: Path) -> None:
    turns = [completion({"role": "assistant", "content": None, "tool_calls": [CHAT_CALL]},
                        "tool_calls")] * 4 + [completion({"role": "assistant", "content": VALID})]
    lines = [orjson.dumps({"span_id": f"s{index}", "trace_id": f"t{index}", "kind": "llm",
                           "name": "ChatCompletion", "start_time": "2026-03-02T10:00:00Z",
                           "release": "1.0", "output": output}).decode()
             for index, output in enumerate(turns)]
    Path("spans.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = Path("tracegrade.yaml")
    config.write_text("sources:\n  - {name: file, type: jsonl, paths: [spans.jsonl]}\n",
                      encoding="utf-8")
    synthesis = propose(analyse(APP), "otlp", judges=False)
    report = dry_run(config, synthesis.proposals, sample_size=100)
    assert report.problems == []
    trial = next(trial for trial in report.trials if trial.name == "llm_resolution_schema")
    # The span names were right: all five spans are this grader's, four of them skipped.
    assert trial.matched == 5 and trial.flag is None
    assert dict(trial.outcomes) == {"pass": 1}


DESK_WITH_TOOLS = """
from langfuse.openai import OpenAI

client = OpenAI()
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}}}}]
SYSTEM = ("You are Brightline's order desk. Keep every reply under 12 words. "
          "End every reply with 'The Brightline team'.")

def answer(messages):
    return client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "system", "content": SYSTEM}, *messages],
        tools=TOOLS)
"""


def langfuse_openai_span(index: int, message: dict[str, Any]) -> Span:
    """A langfuse.openai generation as tracegrade pulls it: its output is the message."""
    observation = {
        "id": f"gen-{index}", "traceId": f"trace-{index}", "type": "GENERATION",
        "name": "OpenAI-generation", "startTime": "2026-03-02T10:00:00Z",
        "endTime": "2026-03-02T10:00:01Z", "level": "DEFAULT", "model": "gpt-4.1",
        "input": [{"role": "user", "content": "Where is A-17?"}], "output": message,
    }
    return observation_to_span(observation, "langfuse")


def test_reply_text_graders_skip_turns_that_only_call_tools() -> None:
    synthesis = propose(analyse_python({"app.py": DESK_WITH_TOOLS}), "langfuse", judges=False)
    proposals = {p.name: p for p in synthesis.proposals}
    texts = [proposals["reply_under_12_words"], proposals["reply_ends_with_brightline_team"]]
    for proposal in texts:
        assert proposal.config()["applies_to"]["unless_output"] == "$.tool_calls[0]"
        assert TOOL_TURNS_NOTE in proposal.notes
    # Graders on tool spans are left alone.
    assert "unless_output" not in proposals["lookup_order_args_valid"].config()["applies_to"]
    length, regex = build_graders([GraderConfig.model_validate(p.config()) for p in texts])

    good = langfuse_openai_span(1, {"role": "assistant",
                                    "content": "It shipped today. The Brightline team"})
    bad = langfuse_openai_span(2, {"role": "assistant", "content": " ".join(["word"] * 20)})
    tool_turn = langfuse_openai_span(3, {"role": "assistant", "content": None,
                                         "tool_calls": [CHAT_CALL]})
    no_reply = langfuse_openai_span(4, {"role": "assistant", "content": None})
    assert good.kind == SpanKind.LLM and good.name == "OpenAI-generation"

    assert verdict(length, good) == verdict(regex, good) == Outcome.PASS
    assert verdict(length, bad) == verdict(regex, bad) == Outcome.FAIL
    # A turn that only calls a tool has no reply to read: not graded, rather than an error.
    assert verdict(length, tool_turn) == verdict(regex, tool_turn) == Outcome.SKIP
    # No reply and no tool call is still an error, never a pass.
    assert verdict(length, no_reply) == verdict(regex, no_reply) == Outcome.ERROR


def test_reply_text_graders_without_tools_grade_every_turn() -> None:
    app = DESK_WITH_TOOLS.replace(",\n        tools=TOOLS)", ")")
    synthesis = propose(analyse_python({"app.py": app}), "langfuse", judges=False)
    proposals = {p.name: p for p in synthesis.proposals}
    proposal = proposals["reply_under_12_words"]
    assert "unless_output" not in proposal.config()["applies_to"]
    assert TOOL_TURNS_NOTE not in proposal.notes


def test_init_check_reports_a_schema_grader_written_before_it_skipped_tool_turns(
        workspace: Path) -> None:
    assert CliRunner().invoke(cli, ["init", "--from-code", str(APP), "--source", "langfuse",
                                    "--no-judges", "--no-dry-run"]).exit_code == 0
    assert CliRunner().invoke(cli, ["init", "--check"]).exit_code == 0
    # The config as an earlier tracegrade wrote it: no unless_output, the schema's own digest.
    config = workspace / "tracegrade.yaml"
    text = config.read_text(encoding="utf-8")
    [written] = [g for g in yaml.safe_load(text)["graders"] if g["name"] == "llm_resolution_schema"]
    key = "llm:desk.py:answer:schema:Resolution"
    [marker] = [line for line in text.splitlines() if f"synth: {key} " in line]
    old_marker = marker.rsplit(" ", 1)[0] + " " + proposal_digest(written["schema"])
    text = text.replace(marker, old_marker).replace(
        ", unless_output: '$.choices[*].message.tool_calls[0]'", "")
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["init", "--check", "--format", "json"])
    assert result.exit_code == 1, result.output
    drifts = {drift["key"]: drift for drift in orjson.loads(result.stdout)["drifts"]}
    assert drifts[key]["status"] == "changed"
    assert "applies_to.unless_output=$.choices[*].message.tool_calls[0]" in \
        drifts[key]["detail"]


STRUCTURED_AND_PLAIN = '''
from typing import Literal
from openai import OpenAI
from pydantic import BaseModel

client = OpenAI()

class Ticket(BaseModel):
    category: Literal["billing", "shipping"]
    answer: str

TRIAGE = """You triage support tickets.
- Keep replies under 60 words.
- End every reply with "Anything else?"
- Never use emojis.
"""

def triage(text):
    return client.beta.chat.completions.parse(
        model="gpt-4o-mini", response_format=Ticket,
        messages=[{"role": "system", "content": TRIAGE}, {"role": "user", "content": text}])

def chat(text):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
'''


def test_text_rules_of_a_structured_reply_go_to_a_judge_and_shared_spans_are_flagged() -> None:
    synthesis = propose(analyse_python({"app.py": STRUCTURED_AND_PLAIN}), "otlp", judges=True)
    by_type: dict[str, list[Any]] = {}
    for proposal in synthesis.proposals:
        by_type.setdefault(proposal.type, []).append(proposal)
    # A length or an "ends with" check would read the JSON (keys as words, the closing brace).
    assert "length" not in by_type and "regex" not in by_type
    judged = [p.params["rubric"] for p in by_type["llm_judge"]]
    assert any("Anything else?" in rubric for rubric in judged)
    assert any("60 words" in rubric for rubric in judged)
    assert [p.params["pattern"] for p in by_type["not_regex"]] == [r"\p{Extended_Pictographic}"]
    # chat() produces the same spans without the schema: both JSON graders say so.
    for proposal in by_type["json_schema"] + by_type["json_valid"]:
        assert any("without this output schema" in note for note in proposal.notes), \
            proposal.notes
