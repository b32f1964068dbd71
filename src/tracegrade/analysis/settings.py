"""The ``analysis:`` section of ``tracegrade.yaml``: releases, strata, slices, alerting.

```yaml
analysis:
  releases: span            # span: the field named by release_from; deploy_markers: by start time
  strata: [name]            # compare within these (Cochran-Mantel-Haenszel) against mix shift
  slices: [model, environment, attributes.route]   # each value tested on its own
  alpha: 0.05               # false discovery rate across graders and slices
  effect: 0.05              # the drop worth detecting; below it "unchanged" needs this power
  watch:
    every_minutes: 15
    webhook: ${SLACK_WEBHOOK_URL:-}
```

This module holds only the schema (no statistics), so loading a config stays cheap.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SPAN_DIMENSIONS = ("name", "kind", "model", "environment", "source")
"""Span fields a stratum or slice can be taken from (besides ``attributes.KEY``)."""

_ATTRIBUTE = re.compile(r"^attributes\.[^\s]+$")


def check_dimension(dimension: str) -> str:
    """Accept a span field name or ``attributes.KEY``.

    Raises:
        ValueError: anything else, naming what is allowed.
    """
    if dimension in SPAN_DIMENSIONS or _ATTRIBUTE.match(dimension):
        return dimension
    allowed = ", ".join(SPAN_DIMENSIONS)
    raise ValueError(f"{dimension!r} is not a span field ({allowed}) or attributes.KEY")


class WatchConfig(BaseModel):
    """``tracegrade watch``: how often it looks and where findings go."""

    model_config = ConfigDict(extra="forbid")

    every_minutes: float = Field(default=15.0, gt=0)
    webhook: str | None = None
    """A Slack-compatible incoming-webhook URL; keep it in the environment (``${VAR}``)."""
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    """The chance of any false alarm over the whole watch of one release (all graders)."""


class AnalysisConfig(BaseModel):
    """How releases are found and compared."""

    model_config = ConfigDict(extra="forbid")

    releases: Literal["span", "deploy_markers"] = "span"
    """``span``: a span's release is the field ``release_from`` names; ``deploy_markers``: the
    latest ``tracegrade deploy mark`` at or before the span's start (in its environment)."""
    strata: list[str] = Field(default_factory=lambda: ["name"])
    slices: list[str] = Field(default_factory=lambda: ["model", "environment"])
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    effect: float = Field(default=0.05, gt=0, le=1)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    min_decided: int = Field(default=20, ge=2)
    """Fewer decided verdicts than this on either side: insufficient data, not tested."""
    max_slice_values: int = Field(default=50, ge=1)
    """Per slice dimension, only the most frequent values are tested on their own."""
    watch: WatchConfig = Field(default_factory=WatchConfig)

    @field_validator("strata", "slices")
    @classmethod
    def _dimensions(cls, dimensions: list[str]) -> list[str]:
        return [check_dimension(d) for d in dimensions]
