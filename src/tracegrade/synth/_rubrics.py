"""``--with-llm``: a model drafts sharper rubrics for the judge graders, from the prompts.

Without it every rubric is the instruction quoted verbatim plus a standard pass/fail rule, and
``init`` runs offline. With it, one call per system prompt (through the judge provider layer,
:mod:`tracegrade.llm`) asks the model to turn each instruction into concrete pass / fail
criteria. Any OpenAI-compatible endpoint works (``--llm-base-url``); the key comes from the
environment (``OPENAI_API_KEY``). A failed call keeps the default rubrics and says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from tracegrade.synth._propose import Proposal, Synthesis

_SYSTEM = (
    "You write grading rubrics for an LLM judge that checks production replies of an LLM "
    "application against its system prompt. For each instruction you are given, write concrete "
    "criteria: what a passing reply does, what a failing one does, and when the instruction "
    "does not apply (which passes). At most 80 words per rubric, plain text, no templates or "
    "braces. Quote each instruction verbatim in your answer."
)
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rubrics": {"type": "array", "items": {
        "type": "object",
        "properties": {"instruction": {"type": "string"}, "criteria": {"type": "string"}},
        "required": ["instruction", "criteria"], "additionalProperties": False}}},
    "required": ["rubrics"], "additionalProperties": False,
}


@dataclass(frozen=True)
class RubricModel:
    """The model that drafts rubrics, and the judge the written config names."""

    model: str = "gpt-4.1-mini"
    base_url: str | None = None
    provider: str = "openai"
    timeout_s: float = 60.0

    def judge_settings(self) -> dict[str, Any]:
        """The ``judges.default`` entry (no key: the provider SDK reads it from the environment)."""
        settings: dict[str, Any] = {"provider": self.provider}
        if self.provider == "openai":
            settings["base_url"] = self.base_url or "${OPENAI_BASE_URL:-}"
        elif self.base_url:
            settings["base_url"] = self.base_url
        settings["model"] = self.model
        return settings


def sharpen_rubrics(synthesis: Synthesis, model: RubricModel) -> list[str]:
    """Replace the judge graders' rubrics with model-drafted ones; returns what went wrong."""
    return asyncio.run(_sharpen(synthesis, model))


async def _sharpen(synthesis: Synthesis, model: RubricModel) -> list[str]:
    from tracegrade.llm import JudgeConfig, JudgeError, make_provider
    from tracegrade.llm._errors import ProviderError

    try:
        provider = make_provider(JudgeConfig(provider=model.provider, base_url=model.base_url,
                                             model=model.model, timeout_s=model.timeout_s,
                                             max_tokens=4096))
    except JudgeError as exc:
        return [f"--with-llm: {exc}; kept the default rubrics"]
    problems: list[str] = []
    try:
        for origin, proposals in _judges_by_prompt(synthesis).items():
            try:
                criteria = await _ask(provider, proposals)
            except (JudgeError, ProviderError, ValueError) as exc:
                problems.append(f"--with-llm: drafting rubrics for the prompt at {origin} "
                                f"failed ({exc}); kept the default rubrics")
                continue
            _apply(proposals, criteria, model.model)
    finally:
        await provider.aclose()
    return problems


def _apply(proposals: list[Proposal], criteria: dict[str, str], model: str) -> None:
    for proposal in proposals:
        drafted = criteria.get(_instruction(proposal))
        if drafted:
            proposal.params["rubric"] = _rubric(proposal, drafted)
            proposal.notes.append(f"Rubric drafted by {model} (--with-llm); review it.")


def _judges_by_prompt(synthesis: Synthesis) -> dict[str, list[Proposal]]:
    grouped: dict[str, list[Proposal]] = {}
    for proposal in synthesis.proposals:
        if proposal.judged:
            grouped.setdefault(str(proposal.origin), []).append(proposal)
    return grouped


async def _ask(provider: Any, proposals: list[Proposal]) -> dict[str, str]:
    from tracegrade.llm import JudgeRequest

    question = orjson.dumps({"instructions": [_instruction(p) for p in proposals]}).decode()
    request = JudgeRequest(_SYSTEM, (("user", question),), "rubrics", _SCHEMA)
    reply = await provider.send(provider.body(request))
    try:
        answer = orjson.loads(reply.text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the model's answer is not JSON: {reply.text[:80]!r}") from exc
    rubrics = answer.get("rubrics") if isinstance(answer, dict) else None
    if not isinstance(rubrics, list):
        raise ValueError("the model's answer has no rubrics list")
    return {str(r["instruction"]).strip().strip('"'): str(r["criteria"]) for r in rubrics
            if isinstance(r, dict) and r.get("instruction") and r.get("criteria")}


def _instruction(proposal: Proposal) -> str:
    """The instruction a judge proposal quotes (the second line of its default rubric)."""
    lines = str(proposal.params.get("rubric", "")).splitlines()
    return lines[1].strip().strip('"') if len(lines) > 1 else ""


def _rubric(proposal: Proposal, criteria: str) -> str:
    """The drafted criteria in place of the default rule, keeping the quote and the evidence."""
    safe = criteria.replace("{", "(").replace("}", ")").strip()
    default = str(proposal.params["rubric"])
    lines = default.splitlines()
    evidence = default[default.index("User message:"):]
    return "\n".join([*lines[:2], safe]) + "\n" + evidence
