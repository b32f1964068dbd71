"""``tracegrade init --from-code`` and ``--check`` end to end: analyse, propose, write, dry-run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tracegrade.config import Config, ConfigError, parse_config
from tracegrade.graders import GraderConfigError, build_graders, registered_types
from tracegrade.llm import RubricError, compile_rubric
from tracegrade.sources.files import TraceFileFormat, detect_format
from tracegrade.synth._analyse import analyse
from tracegrade.synth._check import CheckReport, compare, read_markers
from tracegrade.synth._dryrun import DryRun, ProgressCallback, configured_sources, dry_run
from tracegrade.synth._propose import Synthesis, propose
from tracegrade.synth._render import Settings, render_config
from tracegrade.synth._rubrics import RubricModel, sharpen_rubrics

_CARRIED_KEYS = ("store", "release_from", "environment_from", "sources", "sampling", "judges")
_SOURCE_TEMPLATES = {
    "langfuse": "#  - name: langfuse\n#    type: langfuse\n"
                "#    host: ${LANGFUSE_HOST:-https://cloud.langfuse.com}\n"
                "#    public_key: ${LANGFUSE_PUBLIC_KEY}\n"
                "#    secret_key: ${LANGFUSE_SECRET_KEY}\n",
    "braintrust": "#  - name: braintrust\n#    type: braintrust\n"
                  "#    api_key: ${BRAINTRUST_API_KEY}\n#    project: my-project\n",
}


ProgressFactory = Callable[[str, int | None], AbstractContextManager[ProgressCallback]]
"""Makes a progress callback for a named step (``cli._common.progress_bar`` fits)."""


class SynthError(ValueError):
    """A user mistake in ``init --from-code`` / ``--check``; the message says what to fix."""


@dataclass
class InitOptions:
    """What ``init --from-code`` was asked to do."""

    code_path: Path
    config_path: Path
    source: str = "otlp"
    traces: list[Path] = field(default_factory=list)
    judges: bool = True
    force: bool = False
    rubric_model: RubricModel | None = None
    dry_run: bool = True
    sample_size: int = 2000


@dataclass
class InitResult:
    """What ``init --from-code`` did."""

    synthesis: Synthesis
    config_path: Path
    dry_run: DryRun | None
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {"config": str(self.config_path), **self.synthesis.as_dict(),
                "notes": self.notes,
                "dry_run": self.dry_run.as_dict() if self.dry_run else None}


def judges_available() -> bool:
    """Whether this tracegrade can run ``llm_judge`` graders (the type and ``judges:`` exist)."""
    return "llm_judge" in registered_types() and "judges" in Config.model_fields


def synthesize(code_path: Path, source: str = "otlp", *, judges: bool = True) -> Synthesis:
    """Analyse the code at ``code_path`` and propose graders for it.

    Raises:
        FileNotFoundError: ``code_path`` does not exist.
    """
    return propose(analyse(code_path), source, judges=judges and judges_available())


def init_from_code(options: InitOptions, progress: ProgressFactory | None = None
                   ) -> InitResult:
    """Write a config with graders proposed from the code, then dry-run it on its sources.

    Raises:
        SynthError: the config exists (without ``force``) or a traces file is missing.
        FileNotFoundError: the code path does not exist.
    """
    path = options.config_path
    if path.exists() and not options.force:
        raise SynthError(f"{path} already exists (use --force to overwrite it; its store and "
                         "sources are kept)")
    for trace_file in options.traces:
        if not trace_file.is_file():
            raise SynthError(f"{trace_file}: no such trace file")
    synthesis = synthesize(options.code_path, options.source, judges=options.judges)
    notes = _notes(synthesis)
    if options.rubric_model is not None and any(p.judged for p in synthesis.proposals):
        notes += sharpen_rubrics(synthesis, options.rubric_model)
    settings = _settings(options, synthesis)
    text = render_config(synthesis, _shown_path(options.code_path), settings)
    _check_loads(text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        backup = path.with_name(path.name + ".bak")
        backup.write_bytes(path.read_bytes())
        notes.append(f"the config it replaced is kept as {backup} (its hand-written graders "
                     "are not carried over)")
    path.write_text(text, encoding="utf-8")
    report = None
    if options.dry_run and configured_sources(path):
        with (progress or _no_progress)("Dry-running the graders", None) as advance:
            report = dry_run(path, synthesis.proposals, sample_size=options.sample_size,
                             progress=advance)
    return InitResult(synthesis, path, report, notes)


def _notes(synthesis: Synthesis) -> list[str]:
    """What the user should know about the proposals before running them."""
    notes = [f"not analysed: {problem}" for problem in synthesis.facts.problems]
    judged = sum(1 for p in synthesis.active() if p.judged)
    if judged and not os.environ.get("OPENAI_API_KEY"):
        notes.append(f"{judged} llm_judge graders need OPENAI_API_KEY to run `tracegrade "
                     "grade` (or re-run with --no-judges to write them commented out)")
    if not synthesis.facts.llm_calls:
        notes.append(f"no LLM call found under {synthesis.facts.root}: is it the application's "
                     "source (Python, TypeScript or JavaScript)?")
    return notes


@contextmanager
def _no_progress(_description: str, _total: int | None) -> Iterator[ProgressCallback]:
    yield lambda _n: None


def check_config(config_path: Path, code_path: Path | None = None,
                 source: str | None = None) -> CheckReport:
    """Compare a config written by ``init --from-code`` with a fresh analysis of the code.

    Raises:
        SynthError: no config, or no code path given and none recorded in the config.
    """
    if not config_path.is_file():
        raise SynthError(f"{config_path}: no such config file (write one with "
                         "`tracegrade init --from-code PATH`)")
    text = config_path.read_text(encoding="utf-8")
    markers = read_markers(text)
    if code_path is None:
        if markers.code_path is None:
            raise SynthError(f"{config_path} does not record which code it came from; "
                             "give --from-code PATH")
        code_path = Path(markers.code_path)
    synthesis = synthesize(code_path, source or markers.source or "otlp")
    return compare(config_path, text, synthesis, str(code_path))


def _check_loads(text: str, path: Path) -> None:
    """The config about to be written must load and build, as ``tracegrade grade`` will.

    Raises:
        SynthError: it does not (say, a setting carried over from the old config is wrong).
    """
    try:
        config = parse_config(yaml.safe_load(text), str(path))
    except ConfigError as exc:
        if "environment variable" in str(exc):
            return  # a ${VAR} carried over from the old config; the user's environment has it
        raise SynthError(f"the proposed config does not load: {exc}") from None
    judged = [g for g in config.graders if g.type == "llm_judge"]
    try:
        # Building a judge grader needs its API key; its rubric is what could be wrong here.
        build_graders([g for g in config.graders if g.type != "llm_judge"])
        for grader in judged:
            compile_rubric(str(grader.params().get("rubric", "")))
    except (GraderConfigError, RubricError) as exc:
        raise SynthError(f"a proposed grader does not build: {exc}") from None


def _settings(options: InitOptions, synthesis: Synthesis) -> Settings:
    settings = Settings()
    if options.force and options.config_path.is_file():
        _carry_over(settings, options.config_path)
    if options.traces:
        source = {"name": "traces", "type": _source_type(options.traces[0]),
                  "paths": [str(p) for p in options.traces]}
        settings.sources = [s for s in settings.sources if s.get("name") != "traces"] + [source]
    if not settings.sources:
        settings.sources_template = _SOURCE_TEMPLATES.get(options.source)
    if settings.judges is None and any(p.judged and p.active for p in synthesis.proposals):
        model = options.rubric_model or RubricModel()
        settings.judges = {"default": model.judge_settings()}
    return settings


def _carry_over(settings: Settings, path: Path) -> None:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return
    if not isinstance(raw, dict):
        return
    for key in _CARRIED_KEYS:
        if key in raw and raw[key] is not None:
            setattr(settings, key, raw[key])


def _source_type(path: Path) -> str:
    return "jsonl" if detect_format(path) is TraceFileFormat.SPANS_JSONL else "otlp_file"


def _shown_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return path.as_posix()
