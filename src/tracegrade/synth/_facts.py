"""What static analysis finds in an application's source: the facts graders are proposed from.

The analysers (:mod:`._python`, :mod:`._typescript`) only record what the code says; deciding
which graders follow, and how they match spans, is :mod:`._propose`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Where something is in the analysed code: a path relative to the analysed root, and a line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Prompt:
    """A system prompt's text as far as it is known statically.

    ``partial`` marks an f-string or template whose holes were left out: only its constant parts
    are in ``text``.
    """

    text: str
    origin: Origin
    name: str | None = None
    """The constant it came from (``SYSTEM_PROMPT``), when it came from one."""
    partial: bool = False


@dataclass(frozen=True)
class OutputSchema:
    """A structured-output schema an LLM call asks for, converted to JSON Schema."""

    name: str
    schema: dict[str, Any]
    origin: Origin


@dataclass
class LLMCall:
    """One place the application calls a model."""

    origin: Origin
    sdk: str
    """openai, anthropic, litellm, langchain, pydantic_ai, instructor or vercel_ai."""
    api: str
    """The method called: ``chat.completions.create``, ``messages.create``, ``generateText``…"""
    scope: str
    """The enclosing function (or assigned variable) that names the call site."""
    model: str | None = None
    provider: str | None = None
    """The model provider under a framework (openai, anthropic…), when it can be told."""
    system_prompt: Prompt | None = None
    max_tokens: int | None = None
    max_tokens_origin: Origin | None = None
    timeout_s: float | None = None
    timeout_origin: Origin | None = None
    tools: list[str] = field(default_factory=list)
    output_schema: OutputSchema | None = None
    structured_via: str = "json"
    """How the structured output comes back: ``json`` text, a ``tool`` call, or an ``object``."""
    traced_by: str | None = None
    """A tracing wrapper seen on the client (langfuse, braintrust), else None."""


@dataclass
class ToolDef:
    """A tool the model may call, and what the code tells about its implementation."""

    name: str
    origin: Origin
    style: str
    """function_schema, decorator, mcp, or vercel_tool."""
    parameters_digest: str
    """A digest of how the parameters are declared, so ``--check`` notices a changed signature."""
    implementation: str | None = None
    """The function that runs the tool, when the code names one."""


@dataclass(frozen=True)
class ToolReturn:
    """The fields a tool's implementation always returns."""

    tool: str
    fields: tuple[str, ...]
    origin: Origin
    how: str
    """A dict literal, or the pydantic / TypedDict model returned."""


@dataclass(frozen=True)
class ToolTimeout:
    """A timeout inside a tool's implementation (an HTTP call, say): the tool's latency budget."""

    tool: str
    seconds: float
    origin: Origin


@dataclass(frozen=True)
class AgentSpan:
    """A span the application opens itself for a whole agent turn, whose output is the reply."""

    name: str
    origin: Origin
    kind: str = "agent"


@dataclass
class CodeFacts:
    """Everything the analysis found in one application."""

    root: str
    files: list[str] = field(default_factory=list)
    llm_calls: list[LLMCall] = field(default_factory=list)
    tools: list[ToolDef] = field(default_factory=list)
    tool_returns: list[ToolReturn] = field(default_factory=list)
    tool_timeouts: list[ToolTimeout] = field(default_factory=list)
    agent_spans: list[AgentSpan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Files that could not be parsed, each as ``FILE: reason``."""

    def merge(self, other: CodeFacts) -> None:
        """Add another file's facts to these."""
        self.files += other.files
        self.llm_calls += other.llm_calls
        self.tools += other.tools
        self.tool_returns += other.tool_returns
        self.tool_timeouts += other.tool_timeouts
        self.agent_spans += other.agent_spans
        self.problems += other.problems
