"""Deterministic hash-based Poisson sampling with recorded inclusion probabilities.

Each span gets a pseudo-random number ``u`` in [0, 1) from a hash of its key and a seed, so the
decision is the same on every run and every machine, and a span is included when ``u`` is below
its inclusion probability. Because the numbers are independent across spans this is Poisson
sampling: estimates weight each verdict by ``1 / inclusion_probability`` (Horvitz-Thompson).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from tracegrade.config import SamplingConfig
from tracegrade.spans import Span

_SCALE = float(1 << 64)


def uniform(seed: str, source: str, span_id: str, grader: str = "") -> float:
    """A deterministic number in [0, 1) for a span (and optionally a grader)."""
    digest = hashlib.blake2b(
        f"{seed}\x1f{source}\x1f{span_id}\x1f{grader}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class Sampler:
    """Decides which spans a grader looks at, and with which inclusion probability.

    ``group_sizes`` holds span counts per (release, name) when stratifying by name, else per
    (release, None); it sets the per-release cap and the per-stratum floor.
    """

    config: SamplingConfig
    group_sizes: Mapping[tuple[str | None, str | None], int]
    grade_all: bool = False
    release_sizes: dict[str | None, int] = field(init=False)

    def __post_init__(self) -> None:
        totals: dict[str | None, int] = {}
        for (release, _), count in self.group_sizes.items():
            totals[release] = totals.get(release, 0) + count
        object.__setattr__(self, "release_sizes", totals)

    def inclusion_probability(self, span: Span, grader_rate: float | None = None) -> float:
        """The probability with which ``span`` is in the sample (1.0 with ``--all``)."""
        if self.grade_all:
            return 1.0
        rate = grader_rate if grader_rate is not None else self.config.rate
        if self.config.stratify_by == "name":
            stratum = self.group_sizes.get((span.release, span.name), 0)
            if stratum:
                rate = max(rate, min(1.0, self.config.min_per_stratum / stratum))
        if self.config.max_per_release is not None:
            release_size = self.release_sizes.get(span.release, 0)
            if release_size:
                rate = min(rate, self.config.max_per_release / release_size)
        return min(1.0, rate)

    def include(self, span: Span, grader_rate: float | None = None) -> float | None:
        """The inclusion probability if ``span`` is sampled, else None."""
        probability = self.inclusion_probability(span, grader_rate)
        if probability >= 1.0:
            return 1.0
        u = uniform(self.config.seed, span.source, span.span_id)
        return probability if u < probability else None
