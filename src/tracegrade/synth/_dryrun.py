"""The dry run: proposed graders against a first sample of real spans, in a throwaway store.

Spans come from the config's sources — trace files are imported with
:func:`tracegrade.ingest.import_files`; Langfuse / Braintrust sources are pulled with
``tracegrade.sources.pull.pull_sources`` (imported lazily) — into a temporary SQLite store that
is deleted afterwards, so the user's store never sees the sample or its verdicts. Deterministic
graders are run on up to ``sample_size`` spans per release; ``llm_judge`` graders are only
matched, never called. A grader that matches no span usually means the span-name mapping
assumed for the tracing integration is wrong, and is flagged.
"""

from __future__ import annotations

import glob
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from tracegrade.analysis import pass_rates, wilson_interval
from tracegrade.config import ConfigError, SamplingConfig, load_config
from tracegrade.graders import GraderConfig, GraderConfigError, build_graders
from tracegrade.grading import grade
from tracegrade.ingest import import_files
from tracegrade.sources._base import MappingOptions
from tracegrade.spans import utc_now
from tracegrade.store import Store, open_store
from tracegrade.synth._propose import Proposal

FILE_SOURCE_TYPES = ("otlp_file", "jsonl")
PULL_WINDOW = timedelta(days=1)
"""How far back a remote source is pulled for the first sample."""

ProgressCallback = Callable[[int], None]


@dataclass
class Trial:
    """One proposed grader on the sample."""

    name: str
    type: str
    matched: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    ran: bool = True
    flag: str | None = None
    by_release: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    """Per release: the pass rate (inverse-probability weighted) and decided verdicts."""

    @property
    def decided(self) -> int:
        """Verdicts that count towards the pass rate (pass + fail)."""
        return self.outcomes["pass"] + self.outcomes["fail"]

    def pass_rate(self) -> float | None:
        """The share of decided verdicts that passed."""
        return self.outcomes["pass"] / self.decided if self.decided else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description, with a 95% Wilson interval on the pass rate."""
        rate = self.pass_rate()
        interval = wilson_interval(self.outcomes["pass"], self.decided) if self.decided else None
        return {"name": self.name, "type": self.type, "matched_spans": self.matched,
                "ran": self.ran, "outcomes": dict(self.outcomes), "pass_rate": rate,
                "interval": list(interval) if interval else None, "flag": self.flag,
                "by_release": {release: {"pass_rate": rate, "decided": decided}
                               for release, (rate, decided) in self.by_release.items()}}


@dataclass
class DryRun:
    """What the dry run found."""

    sources: list[str]
    sample_size: int = 0
    """Deterministic graders ran on at most this many spans per release."""
    spans: int = 0
    trials: list[Trial] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    span_names: dict[str, Counter[str]] = field(default_factory=dict)
    """Span names seen in the sample, by kind (to fix a wrong name mapping)."""

    @property
    def unmatched(self) -> list[Trial]:
        """Graders that matched no span of the sample."""
        return [trial for trial in self.trials if trial.matched == 0]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {"sources": self.sources, "spans": self.spans,
                "sample_size": self.sample_size, "problems": self.problems,
                "graders": [trial.as_dict() for trial in self.trials],
                "unmatched": [trial.name for trial in self.unmatched],
                "span_names": {kind: dict(names.most_common(10))
                               for kind, names in self.span_names.items()}}


def configured_sources(config_path: Path) -> list[dict[str, Any]]:
    """The ``sources`` entries of a config file (empty when there are none)."""
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    sources = raw.get("sources") if isinstance(raw, dict) else None
    return [s for s in sources or [] if isinstance(s, dict) and s.get("name")]


def dry_run(config_path: Path, proposals: list[Proposal], *, sample_size: int = 2000,
            progress: ProgressCallback | None = None) -> DryRun:
    """Sample the config's sources into a temporary store and try the proposed graders there.

    Args:
        config_path: the written config (its ``sources``, ``release_from`` and
            ``environment_from`` are used).
        proposals: the proposed graders; commented-out ones are left out.
        sample_size: deterministic graders run on at most this many spans per release.
        progress: advanced with the number of spans graded.
    """
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    sources = configured_sources(config_path)
    result = DryRun([str(source["name"]) for source in sources], sample_size)
    with tempfile.TemporaryDirectory(prefix="tracegrade-dryrun-") as workdir:
        store = open_store(f"sqlite:///{Path(workdir) / 'sample.db'}")
        try:
            _load_sample(store, config_path, raw, sources, result)
            result.spans = store.count_spans()
            _try_graders(store, proposals, sample_size, result, progress)
        finally:
            store.close()
    return result


def _load_sample(store: Store, config_path: Path, raw: dict[str, Any],
                 sources: list[dict[str, Any]], result: DryRun) -> None:
    remote = [s for s in sources if s.get("type") not in FILE_SOURCE_TYPES]
    for source in sources:
        if source.get("type") in FILE_SOURCE_TYPES:
            _import_source(store, config_path, raw, source, result)
    if remote:
        _pull(store, config_path, [str(s["name"]) for s in remote], result)


def _import_source(store: Store, config_path: Path, raw: dict[str, Any],
                   source: dict[str, Any], result: DryRun) -> None:
    paths = _expand(source.get("paths") or [], config_path.parent)
    name = str(source["name"])
    if not paths:
        result.problems.append(f"source {name}: no file matches {source.get('paths')}")
        return
    options = MappingOptions(
        source=name, release_from=str(raw.get("release_from", "resource.service.version")),
        environment_from=tuple(raw.get("environment_from") or MappingOptions().environment_from))
    summary = import_files(store, paths, options)
    if summary.problem_count:
        result.problems.append(f"source {name}: {summary.problem_count} malformed records "
                               "skipped")


def _expand(patterns: list[Any], base: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in map(str, patterns):
        matches = sorted(glob.glob(pattern)) or sorted(glob.glob(str(base / pattern)))
        found += [Path(match) for match in matches if Path(match).is_file()]
    return list(dict.fromkeys(found))


def _pull(store: Store, config_path: Path, names: list[str], result: DryRun) -> None:
    """Pull the last day of each remote source (imported only when one is configured)."""
    from tracegrade.sources.pull import pull_sources

    try:
        summary = pull_sources(store, load_config(config_path), names=names,
                               since=utc_now() - PULL_WINDOW)
    except (ConfigError, OSError) as exc:
        result.problems.append(f"pulling {', '.join(names)} failed: {exc}")
        return
    for pulled in summary.sources:
        if pulled.error:
            result.problems.append(f"pulling {pulled.source} failed: {pulled.error}")
        elif pulled.spans_read == 0:
            result.problems.append(f"source {pulled.source}: no spans in the last "
                                   f"{PULL_WINDOW.days} day")


def _try_graders(store: Store, proposals: list[Proposal], sample_size: int, result: DryRun,
                 progress: ProgressCallback | None) -> None:
    live = [p for p in proposals if p.active]
    configs = {p.name: GraderConfig.model_validate(p.config()) for p in live}
    result.trials = [Trial(p.name, p.type, ran=not p.judged) for p in live]
    by_name = {trial.name: trial for trial in result.trials}
    for stored in store.iter_spans():
        span = stored.span
        result.span_names.setdefault(str(span.kind), Counter())[span.name] += 1
        for name, config in configs.items():
            # Whether the span-name mapping found the grader's spans, even ones that
            # `unless_output` leaves out (a sample of tool-calling turns only).
            if config.applies_to.selects(span):
                by_name[name].matched += 1
    runnable = [configs[p.name] for p in live if not p.judged]
    try:
        graders = build_graders(runnable)
    except GraderConfigError as exc:
        result.problems.append(f"a proposed grader does not build: {exc}")
        return
    sampling = SamplingConfig(rate=1.0, max_per_release=sample_size)
    summary = grade(store, graders, sampling, progress=progress)
    for name, outcomes in summary.outcomes.items():
        by_name[name].outcomes.update(outcomes)
    for rate in pass_rates(store):
        if rate.grader in by_name:
            by_name[rate.grader].by_release[rate.release or "?"] = (rate.rate, rate.decided)
    for trial in result.trials:
        trial.flag = _flag(trial)


def _flag(trial: Trial) -> str | None:
    if trial.matched == 0:
        return "matched no span: the span name or kind this grader expects is not in the " \
            "sample (see the span names seen)"
    if trial.ran and trial.outcomes["error"] and trial.outcomes["error"] >= trial.decided:
        return "mostly errors: its target or path is missing from these spans"
    if trial.ran and trial.decided and trial.outcomes["pass"] == 0:
        return "failed every span: check the mapping before trusting it"
    return None
