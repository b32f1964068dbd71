"""Eval pipeline synthesis: graders proposed from the application's own source code.

``tracegrade init --from-code PATH`` reads the code statically (Python with :mod:`ast`,
TypeScript / JavaScript with tree-sitter; nothing is imported or run), finds its LLM calls,
structured outputs, tools, the fields its tools return, the instructions in its system prompts,
its timeouts and token limits, and proposes a grader for each, tied to the file and line it came
from and to the spans the tracing integration in use produces.
"""

from tracegrade.synth._analyse import analyse
from tracegrade.synth._check import CheckReport, Drift, read_markers
from tracegrade.synth._dryrun import DryRun, Trial, dry_run
from tracegrade.synth._facts import (
    AgentSpan,
    CodeFacts,
    LLMCall,
    Origin,
    OutputSchema,
    Prompt,
    ToolDef,
    ToolReturn,
    ToolTimeout,
)
from tracegrade.synth._instructions import Check, check_for, instructions
from tracegrade.synth._integrations import SOURCES, SpanMatch
from tracegrade.synth._propose import Proposal, Synthesis, propose
from tracegrade.synth._render import Settings, render_config
from tracegrade.synth._rubrics import RubricModel, sharpen_rubrics
from tracegrade.synth._workflow import (
    InitOptions,
    InitResult,
    SynthError,
    check_config,
    init_from_code,
    judges_available,
    synthesize,
)

__all__ = [
    "SOURCES",
    "AgentSpan",
    "Check",
    "CheckReport",
    "CodeFacts",
    "Drift",
    "DryRun",
    "InitOptions",
    "InitResult",
    "LLMCall",
    "Origin",
    "OutputSchema",
    "Prompt",
    "Proposal",
    "RubricModel",
    "Settings",
    "SpanMatch",
    "SynthError",
    "Synthesis",
    "ToolDef",
    "ToolReturn",
    "ToolTimeout",
    "Trial",
    "analyse",
    "check_config",
    "check_for",
    "dry_run",
    "init_from_code",
    "instructions",
    "judges_available",
    "propose",
    "read_markers",
    "render_config",
    "sharpen_rubrics",
    "synthesize",
]
