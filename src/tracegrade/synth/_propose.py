"""From code facts to proposed graders, each tied to the code it came from and the spans it reads.

Every proposal carries a stable ``key`` (what in the code it stands for) and a ``digest`` (of
the code content it depends on): ``tracegrade init --check`` compares both against a fresh
analysis to find graders whose source changed or vanished, and code without a grader.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracegrade.synth._facts import AgentSpan, CodeFacts, LLMCall, Origin, Prompt
from tracegrade.synth._instructions import Check, check_for, instructions
from tracegrade.synth._instructions import slug as check_slug
from tracegrade.synth._integrations import (
    INTEGRATION_TITLES,
    OutputLocation,
    SpanMatch,
    agent_match,
    integration,
    llm_match,
    reply_location,
    structured_location,
    tool_match,
)

JUDGE_NAME = "default"

TOOL_TURNS_NOTE = ("Turns that call tools instead of replying are skipped (applies_to."
                   "unless_output); a turn with no reply at all is an error, never a pass.")


@dataclass
class Proposal:
    """One proposed grader: its config, where it came from, and how it finds its spans."""

    name: str
    type: str
    match: SpanMatch
    origin: Origin
    reason: str
    key: str
    digest: str
    params: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    path: str | None = None
    disabled: str | None = None
    """Why the grader is written commented out (judges unavailable, a grader gap…)."""
    notes: list[str] = field(default_factory=list)
    unless_output: str | None = None
    """The ``applies_to.unless_output`` that leaves out some of the matched spans."""

    def __post_init__(self) -> None:
        # The spans a grader leaves out are part of what it checks: `init --check` then reports
        # a grader written before it left out turns that only call tools (the digest of a
        # grader without ``unless_output`` is unchanged).
        if self.unless_output is not None:
            self.digest = _digest([self.digest, self.unless_output])

    @property
    def judged(self) -> bool:
        """Whether the grader needs an LLM judge."""
        return self.type == "llm_judge"

    @property
    def active(self) -> bool:
        """Whether the grader is written as a live grader (not commented out)."""
        return self.disabled is None

    def config(self) -> dict[str, Any]:
        """The grader's entry in ``graders:``."""
        applies_to = self.match.applies_to()
        if self.unless_output is not None:
            applies_to["unless_output"] = self.unless_output
        config: dict[str, Any] = {"name": self.name, "type": self.type,
                                  "applies_to": applies_to}
        if self.target is not None:
            config["target"] = self.target
        if self.path is not None:
            config["path"] = self.path
        config.update(self.params)
        return config

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description for ``--format json``."""
        return {"name": self.name, "type": self.type, "config": self.config(),
                "origin": str(self.origin), "reason": self.reason,
                "matches": self.match.described, "key": self.key, "digest": self.digest,
                "active": self.active, "disabled": self.disabled, "notes": self.notes}


@dataclass
class Synthesis:
    """Everything ``init --from-code`` proposes for one application."""

    facts: CodeFacts
    source: str
    proposals: list[Proposal]
    integrations: list[str]
    judges_enabled: bool

    def active(self) -> list[Proposal]:
        """The proposals written as live graders."""
        return [p for p in self.proposals if p.active]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "root": self.facts.root, "source": self.source,
            "files": self.facts.files, "problems": self.facts.problems,
            "integrations": self.integrations,
            "llm_calls": [{"origin": str(c.origin), "sdk": c.sdk, "api": c.api,
                           "model": c.model, "tools": c.tools} for c in self.facts.llm_calls],
            "graders": [p.as_dict() for p in self.proposals],
        }


def propose(facts: CodeFacts, source: str = "otlp", *, judges: bool = True) -> Synthesis:
    """The graders the facts call for, under the tracing integration ``source`` implies.

    Args:
        facts: what the analysis found.
        source: ``otlp``, ``langfuse`` or ``braintrust``: decides span names and shapes.
        judges: write ``llm_judge`` graders live; when False they are written commented out.
    """
    builder = _Builder(facts, source)
    builder.tools()
    builder.llm_calls()
    builder.prompts()
    proposals = _unique_keys(_unique_names(_deduplicated(builder.proposals)))
    for proposal in proposals:
        if proposal.judged and not judges:
            proposal.disabled = "llm_judge graders are off (--no-judges, or this " \
                "tracegrade has no llm_judge type); uncomment to use it"
    kinds = sorted({integration(call, source) for call in facts.llm_calls})
    return Synthesis(facts, source, proposals, [INTEGRATION_TITLES[k] for k in kinds], judges)


class _Builder:
    def __init__(self, facts: CodeFacts, source: str) -> None:
        self.facts = facts
        self.source = source
        self.proposals: list[Proposal] = []
        self.groups = _llm_groups(facts.llm_calls, source)
        self.tool_names = sorted({tool.name for tool in facts.tools})

    def add(self, proposal: Proposal) -> None:
        self.proposals.append(proposal)

    def tool_turns(self, call: LLMCall) -> bool:
        """Whether the spans ``call`` produces can hold turns that call tools instead of
        replying: some call site producing them offers tools."""
        return any(any(other.tools for other in calls)
                   for calls in self.groups.values() if call in calls)

    # --- tools ----------------------------------------------------------------------------

    def tools(self) -> None:
        seen: set[str] = set()
        for tool in self.facts.tools:
            if tool.name in seen:
                continue
            seen.add(tool.name)
            match = tool_match(tool.name, self.facts.llm_calls, self.source)
            self.add(Proposal(
                f"{_snake(tool.name)}_args_valid", "tool_args_valid", match, tool.origin,
                f"Tool {tool.name} ({_style(tool.style)} at {tool.origin}): the model's "
                "arguments must fit the schema the trace declares for it.",
                f"tool:{tool.name}:args", tool.parameters_digest))
            self._returns(tool.name, match)
            self._tool_latency(tool.name, match)

    def _returns(self, tool: str, match: SpanMatch) -> None:
        for returned in self.facts.tool_returns:
            if returned.tool != tool:
                continue
            for name in returned.fields:
                self.add(Proposal(
                    f"{_snake(tool)}_returns_{_snake(name)}", "field_present", match,
                    returned.origin,
                    f"{tool} returns {name!r} ({returned.how} at {returned.origin}): a renamed "
                    "or dropped field fails here, before any reply looks wrong.",
                    f"tool:{tool}:returns:{name}", _digest(returned.how),
                    target="output", path=_json_path(name)))

    def _tool_latency(self, tool: str, match: SpanMatch) -> None:
        for timeout in self.facts.tool_timeouts:
            if timeout.tool == tool:
                self.add(Proposal(
                    f"{_snake(tool)}_latency_{_seconds_label(timeout.seconds)}",
                    "max_latency_ms", match, timeout.origin,
                    f"{tool} gives up after {timeout.seconds:g} s ({timeout.origin}): a slower "
                    "tool span means the timeout fired.", f"tool:{tool}:latency",
                    _digest(timeout.seconds), params={"max_ms": _ms(timeout.seconds)}))

    # --- LLM call sites ---------------------------------------------------------------------

    def llm_calls(self) -> None:
        for prefix, calls in self.groups.items():
            match = llm_match(calls[0], self.source)
            first = calls[0]
            sites = ", ".join(str(call.origin) for call in calls)
            self.add(Proposal(
                f"{prefix}_status_ok", "status_ok", match, first.origin,
                f"Model calls ({sites}) should succeed.", f"llm:{prefix}:status",
                _digest(match.applies_to())))
            self._llm_latency(prefix, calls, match)
            self._llm_tokens(prefix, calls, match)
            for call in calls:
                self._schema(prefix, call, match, len(calls), self.tool_turns(call))

    def _llm_latency(self, prefix: str, calls: list[LLMCall], match: SpanMatch) -> None:
        timed = [call for call in calls if call.timeout_s is not None]
        if not timed:
            return
        call = max(timed, key=lambda c: c.timeout_s or 0.0)
        seconds = call.timeout_s or 0.0
        self.add(Proposal(
            f"{prefix}_latency_{_seconds_label(seconds)}", "max_latency_ms", match,
            call.timeout_origin or call.origin,
            f"The client times out after {seconds:g} s ({call.timeout_origin}): a slower "
            "call hit the timeout (and was likely retried).", f"llm:{prefix}:latency",
            _digest(seconds), params={"max_ms": _ms(seconds)}))

    def _llm_tokens(self, prefix: str, calls: list[LLMCall], match: SpanMatch) -> None:
        limited = [call for call in calls if call.max_tokens]
        if not limited:
            return
        call = max(limited, key=lambda c: c.max_tokens or 0)
        limit = call.max_tokens or 0
        self.add(Proposal(
            f"{prefix}_output_under_{limit}_tokens", "max_tokens", match,
            call.max_tokens_origin or call.origin,
            f"max_tokens is {limit} ({call.max_tokens_origin}): a reply that used all "
            f"{limit} output tokens was cut off.", f"llm:{prefix}:max_tokens", _digest(limit),
            params={"max_output": max(limit - 1, 0)}))

    def _schema(self, prefix: str, call: LLMCall, match: SpanMatch, sharing: int,
                tool_turns: bool) -> None:
        schema = call.output_schema
        if schema is None:
            return
        location = structured_location(call, self.source, tool_turns=tool_turns)
        tools_note = TOOL_TURNS_NOTE if location.unless_output else None
        proposal = Proposal(
            f"{prefix}_{_snake(schema.name)}_schema", "json_schema", match, schema.origin,
            f"The call at {call.origin} asks for structured output {schema.name} "
            f"({schema.origin}): output that does not fit it fails.",
            f"llm:{call.origin.file}:{call.scope}:schema:{schema.name}", _digest(schema.schema),
            params={"schema": schema.schema}, target="output", path=location.path,
            unless_output=location.unless_output)
        others = [other for other in self.facts.llm_calls if other is not call
                  and llm_match(other, self.source) == match
                  and other.output_schema != schema]
        if others:
            sites = ", ".join(str(other.origin) for other in others)
            proposal.notes.append(f"The call sites at {sites} produce the same spans without "
                                  f"this output schema; their replies fail it (tell them apart "
                                  f"with span attributes, or narrow applies_to).")
        elif sharing > 1:
            proposal.notes.append(f"{sharing} call sites produce these spans; the others' "
                                  "outputs fail this schema unless they share it.")
        if tools_note:
            proposal.notes.append(tools_note)
        if location.encoded:
            # Recorded as JSON text: json_schema parses it; a separate grader says whether the
            # text was JSON at all, which tells a malformed reply from a wrong shape.
            json_valid = Proposal(
                f"{prefix}_{_snake(schema.name)}_json", "json_valid", match, schema.origin,
                f"The call at {call.origin} asks for structured output {schema.name} "
                f"({schema.origin}): its text must at least be JSON.",
                f"llm:{call.origin.file}:{call.scope}:json:{schema.name}", _digest("json"),
                target="output", path=location.path, unless_output=location.unless_output)
            if tools_note:
                json_valid.notes.append(tools_note)
            json_valid.notes.extend(note for note in proposal.notes if note != tools_note)
            self.add(json_valid)
        self.add(proposal)

    # --- instructions in system prompts -----------------------------------------------------

    def prompts(self) -> None:
        prompts = _distinct_prompts(self.facts.llm_calls)
        for prompt, call in prompts:
            owner = "reply" if len(prompts) == 1 else _prompt_owner(prompt, call)
            agent = _reply_span(self.facts.agent_spans, call)
            if agent is not None:
                match, location = agent_match(agent), OutputLocation(None, False)
                where = f"the reply, the output of the {agent.name} span"
            else:
                match = llm_match(call, self.source)
                location = reply_location(call, self.source, tool_turns=self.tool_turns(call))
                where = "the reply in the LLM span's output"
            note = None if agent is not None else self._shared_note(call, prompt)
            for instruction in instructions(prompt.text):
                check = check_for(instruction, self.tool_names)
                if agent is None and call.output_schema is not None and _reads_json_wrong(check):
                    # The reply is structured output: the check would read its JSON (the
                    # closing brace, the keys counted as words), not what the instruction means.
                    check = Check(instruction, "llm_judge", check_slug(instruction),
                                  mentions=check.mentions)
                proposal = self._instruction(owner, prompt, check, match, location, where)
                if note:
                    proposal.notes.append(note)
                if prompt.partial:
                    proposal.notes.append("The prompt is an f-string or template; only its "
                                          "constant parts were read.")
                self.add(proposal)

    def _shared_note(self, call: LLMCall, prompt: Prompt) -> str | None:
        """A warning when other call sites, with other prompts, produce the same spans."""
        match = llm_match(call, self.source)
        others = [other for other in self.facts.llm_calls
                  if llm_match(other, self.source) == match and other.system_prompt != prompt]
        if not others:
            return None
        sites = ", ".join(str(other.origin) for other in others)
        return (f"The call sites at {sites} produce the same spans with another prompt; "
                "their replies are graded too (tell them apart with span attributes).")

    def _instruction(self, owner: str, prompt: Prompt, check: Check, match: SpanMatch,
                     location: OutputLocation, where: str) -> Proposal:
        label = f"{prompt.name}, {prompt.origin}" if prompt.name else str(prompt.origin)
        said = f'The system prompt ({label}) says "{check.instruction}"'
        key = f"prompt:{owner}:{check.identity}"
        if not check.judged:
            proposal = Proposal(f"{owner}_{check.slug}", check.type, match, prompt.origin,
                                f"{said}: checked on {where}.", key, _digest(check.params),
                                params=dict(check.params), target="output", path=location.path,
                                unless_output=location.unless_output)
            if location.unless_output:
                proposal.notes.append(TOOL_TURNS_NOTE)
            return proposal
        params: dict[str, Any] = {"judge": JUDGE_NAME,
                                  "rubric": judge_rubric(check.instruction, label,
                                                         bool(check.mentions))}
        return Proposal(f"{owner}_{check.slug}", "llm_judge", match, prompt.origin,
                        f"{said}: no deterministic check fits, so a judge reads {where}.", key,
                        _digest(check.instruction), params=params)


def judge_rubric(instruction: str, label: str, whole_trace: bool) -> str:
    """The default rubric for an instruction: quote it, then show the judge what to read.

    A rubric that reads ``trace`` makes the judge load the span's whole trace; it does so only
    when the instruction names one of the application's tools.
    """
    evidence = "Tool results in this trace:\n{{ trace.tool_results }}\n" if whole_trace else ""
    return (
        f"The application's system prompt ({jinja_literal(label)}) instructs the assistant:\n"
        f'  "{jinja_literal(instruction)}"\n'
        "Pass if the reply follows this instruction, or if the instruction does not apply\n"
        "to this conversation. Fail if the reply breaks it.\n"
        f"User message:\n{{{{ span.user_message }}}}\n{evidence}"
        "Reply:\n{{ span.output_text }}\n"
    )


def jinja_literal(text: str) -> str:
    """``text`` as literal rubric text: a prompt's ``{{ customer }}`` is not a rubric variable."""
    if not any(opener in text for opener in ("{{", "{%", "{#")):
        return text
    if "endraw" in text:
        return text.replace("{", "(").replace("}", ")")
    return f"{{% raw %}}{text}{{% endraw %}}"


# --- grouping, naming, dedup -------------------------------------------------------------------


def _llm_groups(calls: list[LLMCall], source: str) -> dict[str, list[LLMCall]]:
    """Call sites grouped by the spans they produce, keyed by a grader-name prefix."""
    by_match: dict[tuple[Any, ...], list[LLMCall]] = {}
    for call in calls:
        match = llm_match(call, source)
        by_match.setdefault((match.kind, match.name), []).append(call)
    if len(by_match) == 1:
        return {"llm": next(iter(by_match.values()))}
    groups: dict[str, list[LLMCall]] = {}
    for (_, name), members in by_match.items():
        prefix = _group_prefix(members[0], name)
        while prefix in groups:
            prefix += "_2"
        groups[prefix] = members
    return groups


def _group_prefix(call: LLMCall, span_name: str | None) -> str:
    """A grader-name prefix for the call sites behind one span name."""
    if call.sdk == "vercel_ai":
        return _snake(call.api)
    return _snake((span_name or "llm").replace("*", "")) or "llm"


def _distinct_prompts(calls: list[LLMCall]) -> list[tuple[Prompt, LLMCall]]:
    seen: dict[str, tuple[Prompt, LLMCall]] = {}
    for call in calls:
        prompt = call.system_prompt
        if prompt is not None and prompt.text not in seen:
            seen[prompt.text] = (prompt, call)
    return list(seen.values())


def _reply_span(agents: list[AgentSpan], call: LLMCall) -> AgentSpan | None:
    """The span whose output is the reply of ``call``: an agent span opened in its file."""
    nearby = [agent for agent in agents if agent.origin.file == call.origin.file]
    own = [agent for agent in nearby if agent.kind == "agent"]
    return own[0] if own else (nearby[0] if nearby else None)


def _prompt_owner(prompt: Prompt, call: LLMCall) -> str:
    if prompt.name:
        name = re.sub(r"_?(system_)?(prompt|instructions|system)$", "", prompt.name.lower())
        if name:
            return _snake(name)
    return _snake(call.scope) or "reply"


def _deduplicated(proposals: list[Proposal]) -> list[Proposal]:
    """Drop a proposal whose grader config repeats an earlier one's (same spans, same check)."""
    seen: set[bytes] = set()
    kept: list[Proposal] = []
    for proposal in proposals:
        config = proposal.config()
        config.pop("name")
        fingerprint = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
        if fingerprint not in seen:
            seen.add(fingerprint)
            kept.append(proposal)
    return kept


def _unique_names(proposals: list[Proposal]) -> list[Proposal]:
    used: set[str] = set()
    for proposal in proposals:
        proposal.name = _first_free(proposal.name[:64].strip("_"), "_", used)
    return proposals


def _unique_keys(proposals: list[Proposal]) -> list[Proposal]:
    """Keys a ``# synth: KEY DIGEST`` line can hold: one word each, none repeated.

    Two rules of one kind in a prompt ("under 100 words" twice) would share a key; the later
    ones get ``#2``, ``#3`` in proposal order, which a fresh analysis of the same code repeats.
    """
    used: set[str] = set()
    for proposal in proposals:
        base = re.sub(r"[%\s]", lambda m: f"%{ord(m.group()):02X}", proposal.key)
        proposal.key = _first_free(base, "#", used)
    return proposals


def _first_free(base: str, separator: str, used: set[str]) -> str:
    """``base``, else ``base`` + separator + 2, 3, … — the first not in ``used`` (now added)."""
    value, index = base, 2
    while value in used:
        value, index = f"{base}{separator}{index}", index + 1
    used.add(value)
    return value


def _snake(text: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def _json_path(field_name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field_name):
        return f"$.{field_name}"
    return "$[" + orjson.dumps(field_name).decode().replace('"', "'") + "]"


def _style(style: str) -> str:
    return {"function_schema": "declared as a function-calling schema",
            "decorator": "declared by a decorator", "mcp": "an MCP tool",
            "vercel_tool": "an AI SDK tool()"}.get(style, style)


def _seconds_label(seconds: float) -> str:
    return f"{seconds:g}s".replace(".", "_")


def _ms(seconds: float) -> int | float:
    milliseconds = seconds * 1000.0
    return int(milliseconds) if milliseconds.is_integer() else milliseconds


def _digest(value: Any) -> str:
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=repr)
    return hashlib.sha256(raw).hexdigest()[:8]


def _reads_json_wrong(check: Check) -> bool:
    """Whether a deterministic reply check misreads a reply that is JSON text: a length counts
    its keys, a start or end anchor meets its braces, a non-Latin script its (Latin) keys.
    Phrases found in (or absent from) it, emojis, links and markdown read the same."""
    if check.judged:
        return False
    if check.type in ("length", "regex"):
        return True
    return check.type == "script_is" and "Latin" not in check.params.get("scripts", [])
