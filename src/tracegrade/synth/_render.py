"""Writing a synthesis as a commented ``tracegrade.yaml``.

Each grader is preceded by comments saying what in the code it came from (file and line), how
it finds its spans, and a ``# synth: KEY DIGEST`` line that ``tracegrade init --check`` reads
back. Graders that cannot run here are written commented out, with the reason.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml

from tracegrade.synth._propose import Proposal, Synthesis

WIDTH = 98
MARKER = "synth:"
FROM_MARKER = "synth-from:"
SOURCE_MARKER = "synth-source:"
IGNORE_MARKER = "synth-ignore:"


@dataclass
class Settings:
    """The non-grader parts of the written config."""

    store: str = "sqlite:///.tracegrade/tracegrade.db"
    release_from: str = "resource.service.version"
    environment_from: list[str] = field(default_factory=lambda: [
        "resource.deployment.environment.name", "resource.deployment.environment"])
    sources: list[dict[str, Any]] = field(default_factory=list)
    sources_template: str | None = None
    """A commented example source block, for sources this tracegrade may not configure yet."""
    sampling: dict[str, Any] = field(default_factory=lambda: {"rate": 1.0})
    judges: dict[str, Any] | None = None


class _Flow(dict[str, Any]):
    """A mapping written in flow style: ``{kind: tool, name: lookup_order}``."""


class _FlowList(list[Any]):
    """A short list written in flow style: ``[Latin]``."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def dump_yaml(value: Any) -> str:
    """YAML for one value, multi-line strings as literal blocks."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, width=WIDTH, allow_unicode=True)


def render_config(synthesis: Synthesis, code_path: str, settings: Settings) -> str:
    """The whole commented ``tracegrade.yaml``."""
    parts = [_header(synthesis, code_path), _settings(settings), _graders(synthesis)]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


def _header(synthesis: Synthesis, code_path: str) -> str:
    facts = synthesis.facts
    files = len(facts.files)
    lines = [
        f"tracegrade.yaml — proposed by `tracegrade init --from-code {code_path}` from the "
        f"application's source ({files} file{'s' if files != 1 else ''} read as text; nothing "
        "was run).",
        "Each grader says which file and line it came from and which spans it reads. Span "
        f"names assume --source {synthesis.source}: "
        + ("; ".join(synthesis.integrations) or "no LLM calls were found") + ".",
        "The `# synth:` lines let `tracegrade init --check` report graders whose code changed "
        "or vanished, and code with no grader yet; keep them. A line such as "
        "`# synth-ignore: tool:lookup_order:latency` silences one proposal for good.",
    ]
    text = [_comment(line, "") for line in lines]
    text += [f"# {FROM_MARKER} {code_path}", f"# {SOURCE_MARKER} {synthesis.source}"]
    text += [_comment(f"Not analysed: {problem}", "") for problem in facts.problems]
    return "\n".join(text) + "\n"


def _settings(settings: Settings) -> str:
    blocks = [
        "# Where spans and verdicts live (SQLite here; postgresql+psycopg://… for a shared one).",
        dump_yaml({"store": settings.store}),
        "# Where a span's release and environment come from.",
        dump_yaml({"release_from": settings.release_from,
                   "environment_from": settings.environment_from}),
        "# Trace files or services `tracegrade init` samples to dry-run these graders.",
        _sources(settings),
        dump_yaml({"sampling": settings.sampling}),
    ]
    if settings.judges:
        blocks += ["# The model behind the llm_judge graders. Its key comes from the environment "
                   "(OPENAI_API_KEY).", dump_yaml({"judges": settings.judges})]
    return "\n".join(block.rstrip("\n") for block in blocks) + "\n"


def _sources(settings: Settings) -> str:
    if settings.sources:
        return dump_yaml({"sources": settings.sources})
    template = settings.sources_template or (
        "#  - name: exported\n#    type: otlp_file\n#    paths: [traces/*.jsonl]\n")
    return "sources: []\n" + template


def _graders(synthesis: Synthesis) -> str:
    active = synthesis.active()
    if not synthesis.proposals:
        return "graders: []  # the analysis found no LLM calls, tools or prompts to grade\n"
    head = "graders:" if active else "graders: []  # every proposal below is commented out"
    return head + "\n" + "\n".join(_grader_block(p) for p in synthesis.proposals)


def _grader_block(proposal: Proposal) -> str:
    comments = [proposal.reason, f"Matches {proposal.match.described}."]
    comments += proposal.notes
    if proposal.disabled:
        comments.append(f"Commented out: {proposal.disabled}.")
    lines = [_comment(text, "  ") for text in comments]
    lines.append(f"  # {MARKER} {proposal.key} {proposal.digest}")
    config = literal_env(proposal.config())
    config["applies_to"] = _Flow(config["applies_to"])
    for key in ("scripts", "flags", "values"):
        if isinstance(config.get(key), list) and len(str(config[key])) < 60:
            config[key] = _FlowList(config[key])
    body = dump_yaml([config]).rstrip("\n").splitlines()
    prefix = "  # " if proposal.disabled else "  "
    lines += [prefix + line for line in body]
    return "\n".join(lines) + "\n"


def literal_env(value: Any) -> Any:
    """``value`` with every ``${`` escaped as ``$${``, so loading the config reads it verbatim.

    A prompt's ``${name}`` template quoted in a rubric, or a schema pattern with ``${``, must not
    become an environment variable the config interpolates.
    """
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {key: literal_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [literal_env(item) for item in value]
    return value


def _comment(text: str, indent: str) -> str:
    wrapped = textwrap.wrap(text, width=WIDTH - len(indent) - 2, break_long_words=False,
                            break_on_hyphens=False)
    return "\n".join(f"{indent}# {line}" for line in wrapped or [""])
