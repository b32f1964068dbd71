"""How the tracing integration in use names and shapes the spans of each kind of call.

A grader proposed from code has to find the spans the code produces; their names and output
shapes depend on the tracing integration, not on the code. This module is the one table of
those assumptions, per ``--source``:

* ``otlp`` — OpenTelemetry with the OpenInference instrumentors (openai, anthropic, litellm,
  LangChain/LangGraph; OpenInference's Vercel span processor for the AI SDK) and pydantic-ai's own
  OpenTelemetry GenAI instrumentation.
* ``langfuse`` — Langfuse's native wrappers when the code imports them (``langfuse.openai``,
  ``@observe``), otherwise the same OpenTelemetry spans (Langfuse ingests OTLP).
* ``braintrust`` — Braintrust's ``wrap_openai`` / ``wrap_anthropic`` and ``@traced`` when the code
  uses them, otherwise the same OpenTelemetry spans.

The dry run (``tracegrade init`` with a source) checks these assumptions against real spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tracegrade.synth._facts import AgentSpan, LLMCall

SOURCES = ("otlp", "langfuse", "braintrust")


@dataclass(frozen=True)
class SpanMatch:
    """Which spans a grader applies to, and the words that explain it."""

    kind: str | None
    name: str | None
    described: str
    attributes: dict[str, str] = field(default_factory=dict)

    def applies_to(self) -> dict[str, Any]:
        """The ``applies_to`` mapping of a grader config."""
        mapping: dict[str, Any] = {}
        if self.kind:
            mapping["kind"] = self.kind
        if self.name:
            mapping["name"] = self.name
        if self.attributes:
            mapping["attributes"] = dict(self.attributes)
        return mapping


@dataclass(frozen=True)
class OutputLocation:
    """Where in an LLM span's output a value is, and whether it is JSON text or already parsed."""

    path: str | None
    encoded: bool
    unless_output: str | None = None
    """The ``applies_to.unless_output`` that leaves out turns calling tools instead of replying
    (see :func:`tool_call_path`)."""


def integration(call: LLMCall, source: str) -> str:
    """The tracing integration assumed for a call site under ``source``."""
    if source == "langfuse" and call.traced_by == "langfuse" and call.sdk == "openai":
        return "langfuse-openai"
    if source == "braintrust" and call.traced_by == "braintrust" \
            and call.sdk in ("openai", "anthropic"):
        return f"braintrust-{call.sdk}"
    if call.sdk == "pydantic_ai":
        return "pydantic-ai-otel"
    if call.sdk == "vercel_ai":
        return "openinference-vercel"
    return "openinference"


INTEGRATION_TITLES = {
    "openinference": "OpenInference instrumentors over OpenTelemetry",
    "openinference-vercel": "the Vercel AI SDK's telemetry through OpenInference's span processor",
    "pydantic-ai-otel": "pydantic-ai's OpenTelemetry GenAI instrumentation",
    "langfuse-openai": "Langfuse's openai wrapper (langfuse.openai)",
    "braintrust-openai": "Braintrust's wrap_openai",
    "braintrust-anthropic": "Braintrust's wrap_anthropic",
}


def llm_match(call: LLMCall, source: str) -> SpanMatch:
    """The LLM spans a call site produces."""
    kind = integration(call, source)
    name = _llm_span_name(call, kind)
    title = INTEGRATION_TITLES[kind]
    return SpanMatch("llm", name, f"LLM spans named {name} ({title})")


def _llm_span_name(call: LLMCall, kind: str) -> str:
    if kind == "langfuse-openai":
        return "OpenAI-generation"
    if kind == "braintrust-openai":
        return "Chat Completion"
    if kind == "braintrust-anthropic":
        return "anthropic.messages.create"
    if kind == "pydantic-ai-otel":
        return "chat *"
    if kind == "openinference-vercel":
        stream = call.api.startswith("stream")
        return f"ai.{call.api}.{'doStream' if stream else 'doGenerate'}"
    provider_api = _provider_api(call)
    if provider_api == "langchain":
        return call.api
    if provider_api == "litellm":
        return call.api
    if provider_api.startswith("anthropic"):
        return "*Messages"  # Messages, or AsyncMessages for the async client
    if provider_api == "openai-responses":
        return "Response"
    return "ChatCompletion"


def _provider_api(call: LLMCall) -> str:
    if call.sdk == "langchain":
        return "langchain"
    if call.sdk == "litellm":
        return "litellm"
    if call.sdk == "anthropic" or (call.sdk == "instructor" and call.provider == "anthropic"):
        return "anthropic"
    if call.api.startswith("responses"):
        return "openai-responses"
    return "openai-chat"


def tool_match(tool: str, calls: list[LLMCall], source: str) -> SpanMatch:
    """The spans of calls to one tool."""
    kinds = {integration(call, source) for call in calls if tool in call.tools}
    if "openinference-vercel" in kinds:
        return SpanMatch("tool", "ai.toolCall", f"tool spans ai.toolCall with tool.name {tool} "
                         "(OpenInference's Vercel span processor)", {"tool.name": tool})
    how = "OpenTelemetry GenAI execute_tool spans, named by gen_ai.tool.name" \
        if "pydantic-ai-otel" in kinds else "a tool span per call, named after the tool"
    return SpanMatch("tool", tool, f"tool spans named {tool} ({how})")


def agent_match(agent: AgentSpan) -> SpanMatch:
    """The spans of an agent turn the application (or its framework) opens."""
    if agent.kind == "chain":
        return SpanMatch("chain", agent.name, f"the {agent.name} root span of each run "
                         "(OpenInference's LangChain instrumentation), whose output holds the "
                         "final messages")
    return SpanMatch("agent", agent.name, f"agent spans named {agent.name}, opened by the "
                     f"application at {agent.origin}; their output is the reply")


def reply_location(call: LLMCall, source: str, *, tool_turns: bool = False) -> OutputLocation:
    """Where the reply text is in the call's LLM span output.

    Args:
        call: the call site whose reply is read.
        source: the ``--source`` in use.
        tool_turns: whether these spans can hold turns that call tools instead of replying;
            then the location says how to leave those turns out.
    """
    return _leaving_out_tool_turns(_reply_location(call, source), call, source, tool_turns)


def _reply_location(call: LLMCall, source: str) -> OutputLocation:
    kind = integration(call, source)
    if kind == "langfuse-openai":
        return OutputLocation("$.content", True)
    if kind == "braintrust-openai":
        return OutputLocation("$[0].message.content", True)
    if kind in ("pydantic-ai-otel", "openinference-vercel", "braintrust-anthropic"):
        return OutputLocation(None, False)
    provider_api = _provider_api(call)
    if provider_api == "langchain":
        return OutputLocation("$.generations[0][0].text", True)
    if provider_api == "anthropic":
        return OutputLocation("$.content[0].text", True)
    if provider_api == "openai-responses":
        return OutputLocation("$.output[?@.type == 'message'].content[0].text", True)
    return OutputLocation("$.choices[0].message.content", True)


def structured_location(call: LLMCall, source: str, *, tool_turns: bool = False
                        ) -> OutputLocation:
    """Where the structured output is in the call's LLM span output.

    Args:
        call: the call site that asks for structured output.
        source: the ``--source`` in use.
        tool_turns: whether these spans can hold turns that call tools instead of replying;
            then the location says how to leave those turns out.
    """
    kind = integration(call, source)
    if kind == "openinference-vercel":
        return OutputLocation(None, False)  # the object is the span's output
    if kind == "pydantic-ai-otel":
        return OutputLocation("$..tool_calls[?@.name == 'final_result'].arguments", False)
    if call.structured_via == "tool":
        provider_api = _provider_api(call)
        if provider_api == "anthropic":
            return OutputLocation("$.content[?@.type == 'tool_use'].input", False)
        if provider_api == "langchain":
            return OutputLocation("$..tool_calls[0].args", False)
        return OutputLocation("$.choices[0].message.tool_calls[0].function.arguments", True)
    return _leaving_out_tool_turns(_structured_reply_location(call, source), call, source,
                                   tool_turns)


def _leaving_out_tool_turns(location: OutputLocation, call: LLMCall, source: str,
                            tool_turns: bool) -> OutputLocation:
    """``location``, leaving out the turns that call tools when the spans can hold some."""
    if tool_turns and location.path is not None:
        return replace(location, unless_output=tool_call_path(call, source))
    return location


def _structured_reply_location(call: LLMCall, source: str) -> OutputLocation:
    """Where the reply is, as a path that finds nothing when a chat message's content is null.

    No reply is neither a pass nor a fail: json_valid passes the JSON ``null`` and json_schema
    fails it, while a path that finds nothing makes either grader's verdict an ``error``.
    """
    kind = integration(call, source)
    if kind == "langfuse-openai":
        # The output is the message: RFC 9535 cannot filter on a member by name, so the content
        # is picked among the message's members by value.
        return OutputLocation("$[?@ == $.content && @ != null]", True)
    if kind == "braintrust-openai":
        return OutputLocation("$[?@.message.content != null].message.content", True)
    if kind == "openinference" and _provider_api(call) in ("openai-chat", "litellm"):
        return OutputLocation("$.choices[?@.message.content != null].message.content", True)
    return _reply_location(call, source)


def tool_call_path(call: LLMCall, source: str) -> str | None:
    """A JSONPath that finds a tool call in the call's LLM span output, when the turn made one.

    A turn that calls tools holds no reply (its content is null, empty or left out) or one that
    is not the final answer; as ``applies_to.unless_output`` the path leaves such turns out of
    the reply's graders. It reads the output alone: Langfuse keeps OpenInference's whole
    completion as the output and records no ``tool_calls`` attribute beside it.
    """
    kind = integration(call, source)
    if kind == "langfuse-openai":
        return "$.tool_calls[0]"  # the output is the message itself
    if kind == "braintrust-openai":
        return "$[*].message.tool_calls[0]"  # the output is the completion's choices
    if kind in ("pydantic-ai-otel", "openinference-vercel", "braintrust-anthropic"):
        return None  # their reply is not read from a path (see reply_location)
    provider_api = _provider_api(call)
    if provider_api == "langchain":
        # In the serialized message's kwargs, or in its additional_kwargs.
        return "$.generations[0][*].message..tool_calls[0]"
    if provider_api == "anthropic":
        return "$.content[?@.type == 'tool_use']"
    if provider_api == "openai-responses":
        return "$.output[?@.type == 'function_call']"
    return "$.choices[*].message.tool_calls[0]"
