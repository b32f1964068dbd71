"""``tracegrade.yaml``: the schema, ``${ENV}`` interpolation, and one clear error per mistake."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from tracegrade._validation import describe_validation_error
from tracegrade.analysis.settings import AnalysisConfig
from tracegrade.graders._base import GraderConfig
from tracegrade.llm._config import JudgesField, judge_name_of
from tracegrade.sources._base import MappingOptions
from tracegrade.sources.braintrust import BraintrustSourceConfig
from tracegrade.sources.langfuse import LangfuseSourceConfig
from tracegrade.sources.receiver import OtlpReceiverConfig
from tracegrade.store import DEFAULT_URL

CONFIG_FILE = "tracegrade.yaml"


class ConfigError(Exception):
    """The config file is missing or wrong; the message names the key and what to fix."""


class SamplingConfig(BaseModel):
    """How spans are chosen for grading: hash-based Poisson sampling, optionally stratified."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=1.0, gt=0.0, le=1.0)
    max_per_release: int | None = Field(default=None, gt=0)
    stratify_by: Literal["name"] | None = None
    min_per_stratum: int = Field(default=50, ge=0)
    seed: str = "tracegrade"


class CalibrationConfig(BaseModel):
    """When ``tracegrade calibrate`` calls a grader trusted (its agreement with human labels)."""

    model_config = ConfigDict(extra="forbid")

    min_kappa: float = Field(default=0.6, ge=-1.0, le=1.0)
    min_tpr: float = Field(default=0.8, ge=0.0, le=1.0)
    min_tnr: float = Field(default=0.8, ge=0.0, le=1.0)
    min_labels: int = Field(default=20, ge=1)


class DatasetsConfig(BaseModel):
    """Golden datasets: when an item counts as stale (``tracegrade dataset stale``)."""

    model_config = ConfigDict(extra="forbid")

    max_age_days: int = Field(default=180, gt=0)
    time_sensitive_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions (case-insensitive) that mark an input as time-sensitive."""

    @field_validator("time_sensitive_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:  # a traceback from `dataset promote` before
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return patterns


class FileSourceConfig(BaseModel):
    """Trace files on disk: OTLP JSON / protobuf or tracegrade JSONL."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: Literal["otlp_file", "jsonl"]
    paths: list[str] = Field(min_length=1)


SourceConfig = Annotated[
    FileSourceConfig | LangfuseSourceConfig | BraintrustSourceConfig | OtlpReceiverConfig,
    Field(discriminator="type"),
]


class Config(BaseModel):
    """The whole ``tracegrade.yaml``."""

    model_config = ConfigDict(extra="forbid")

    store: str = DEFAULT_URL
    release_from: str = "resource.service.version"
    environment_from: list[str] = Field(
        default_factory=lambda: list(MappingOptions().environment_from)
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    graders: list[GraderConfig] = Field(default_factory=list)
    # After `graders`: validating the judges resolves each grader's `judge:` name.
    judges: JudgesField = Field(default_factory=dict, validate_default=True)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    datasets: DatasetsConfig = Field(default_factory=DatasetsConfig)

    @field_validator("graders")
    @classmethod
    def _unique_names(cls, graders: list[GraderConfig]) -> list[GraderConfig]:
        seen: set[str] = set()
        for grader in graders:
            if grader.name in seen:
                raise ValueError(f"grader name {grader.name!r} is used twice")
            seen.add(grader.name)
        return graders

    _unset: tuple[UnsetVariable, ...] = PrivateAttr(default=())
    _origin: str = PrivateAttr(default=CONFIG_FILE)

    def mapping(self, source: str) -> MappingOptions:
        """How spans from ``source`` are mapped, per this config."""
        return MappingOptions(source=source, release_from=self.release_from,
                              environment_from=tuple(self.environment_from))

    def require(self, *entries: tuple[str | int, ...],
                overridden: Iterable[str] = ()) -> None:
        """Fail if a value inside one of ``entries`` names an unset environment variable.

        An entry is a key path such as ``("store",)``, ``("sources", 0)`` or
        ``("judges", "claude")``. A variable that is unset under ``sources``, ``graders`` or
        ``judges`` is only an error for the commands that use that entry (see
        :data:`DEFERRED_SECTIONS`): a missing Anthropic key must not stop a report that calls
        no judge.

        ``overridden`` names keys of those entries the command line gives instead (``serve
        --token``): their variables are not needed.

        Raises:
            ConfigError: naming the first such key and its variable.
        """
        skipped = set(overridden)
        for unset in self._unset:
            for entry in entries:
                if unset.path[:len(entry)] != entry:
                    continue
                key = unset.path[len(entry)] if len(unset.path) > len(entry) else None
                if key not in skipped:
                    raise unset.error(self._origin)

    def require_sources(self, names: Iterable[str], overridden: Iterable[str] = ()) -> None:
        """:meth:`require` for the sources called ``names``."""
        wanted = set(names)
        self.require(*(("sources", index) for index, source in enumerate(self.sources)
                       if source.name in wanted), overridden=overridden)

    def require_graders(self, only: Iterable[str] | None = None) -> None:
        """:meth:`require` for the graders a command runs (all, or ``only``) and their judges."""
        wanted = set(only or ())
        entries: list[tuple[str | int, ...]] = []
        for index, grader in enumerate(self.graders):
            if wanted and grader.name not in wanted:
                continue
            entries.append(("graders", index))
            judge = judge_name_of(grader)
            if judge is not None:
                entries.append(("judges", judge))
        self.require(*entries)


_ENV_PATTERN = re.compile(r"(\$\$\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""``${NAME}`` or ``${NAME:-default}``; ``$${`` is the escape for a literal ``${``."""


DEFERRED_SECTIONS = ("sources", "graders", "judges")
"""Top-level keys whose unset variables fail only the commands that use the entry."""


@dataclass(frozen=True)
class UnsetVariable:
    """A ``${NAME}`` without a value or default, and the key it was found under."""

    where: str
    name: str
    path: tuple[str | int, ...] = ()
    """``where`` as keys and list indexes."""

    @property
    def deferred(self) -> bool:
        """Whether only the commands using its entry fail (see :data:`DEFERRED_SECTIONS`).

        A grader's ``judge:`` is bound to its judge when the config loads, so it cannot wait.
        """
        return (len(self.path) >= 2 and self.path[0] in DEFERRED_SECTIONS
                and not (self.path[0] == "graders" and self.path[2:3] == ("judge",)))

    def error(self, origin: str) -> ConfigError:
        """The one-line error naming the key and the variable."""
        return ConfigError(f"{origin}: {self.where}: environment variable {self.name} "
                           "is not set")


def interpolate(value: Any, where: str = "", unset: list[UnsetVariable] | None = None,
                path: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${NAME}`` (or ``${NAME:-default}``) in every string with the environment's value.

    ``$${`` stands for a literal ``${`` (say, in a rubric quoting a prompt's template).

    With ``unset``, a variable that is unset and has no default is left as written and recorded
    there; without it, it is an error.

    Raises:
        ConfigError: a variable is unset and has no default (and ``unset`` is None).
    """
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}" if where else str(k), unset, (*path, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]", unset, (*path, i))
                for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "${"
        name, default = match.group(2), match.group(3)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        if unset is None:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        unset.append(UnsetVariable(where, name, path))
        return match.group(0)

    return _ENV_PATTERN.sub(substitute, value)


def load_config(path: Path | None = None) -> Config:
    """Load and validate the config; without a file, the defaults (SQLite store, no graders).

    A relative SQLite path in the file's ``store:`` is relative to the file's directory, not to
    the current directory, so ``--config elsewhere/tracegrade.yaml`` finds that file's store.

    Raises:
        ConfigError: the file is unreadable, not YAML, or fails validation.
    """
    path = path or Path(CONFIG_FILE)
    if not path.exists():
        if path.name == CONFIG_FILE and path.parent == Path():
            return Config()
        raise ConfigError(f"{path}: no such config file (run `tracegrade init` to write one)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    config = parse_config(raw, str(path))
    if "store" in config.model_fields_set:
        config.store = store_relative_to(config.store, path.parent)
    return config


_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")


def store_relative_to(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file path taken as relative to ``base``.

    Absolute paths, ``~`` paths, in-memory and ``file:`` URI databases, and other databases
    are returned as they are.
    """
    match = _SQLITE_URL.match(url)
    if match is None or base == Path():
        return url
    prefix, database, query = match.group(1), match.group(2), match.group(3) or ""
    if (not database or database == ":memory:" or database.startswith(("/", "~", "file:"))
            or Path(database).is_absolute()):
        return url
    return f"{prefix}{(base / database).as_posix()}{query}"


def _yaml_problem(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def parse_config(raw: dict[str, Any], origin: str = CONFIG_FILE) -> Config:
    """Validate an already-parsed config mapping."""
    unset: list[UnsetVariable] = []
    values = interpolate(raw, unset=unset)
    # Unset variables outside the deferred sections fail every command, as does one whose
    # entry cannot even be validated with the variable left unresolved.
    for variable in unset:
        if not variable.deferred:
            raise variable.error(origin)
    try:
        config = Config.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            for variable in unset:
                # An error inside the entry (a source, grader or judge) holding the unset
                # value; pydantic may name a union member after the index, so the entry is
                # what is compared.
                if tuple(error["loc"][:2]) == variable.path[:2]:
                    raise variable.error(origin) from None
        raise ConfigError(f"{origin}: {describe_validation_error(exc, raw)}") from None
    config._unset = tuple(unset)
    config._origin = origin
    return config
