"""Deterministic hash-based Poisson sampling with recorded inclusion probabilities.

Each span gets a pseudo-random number ``u`` in [0, 1) from a hash of its key and a seed, so the
decision is the same on every run and every machine, and a span is included when ``u`` is below
its inclusion probability. Because the numbers are independent across spans this is Poisson
sampling: estimates weight each verdict by ``1 / inclusion_probability`` (Horvitz-Thompson).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
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
    grader_sizes: Mapping[str, Mapping[tuple[str | None, str | None], int]] = field(
        default_factory=dict)
    """Per grader name, the same counts over only the spans its ``applies_to`` kind and name
    select: its cap and floors are about the spans it can grade, not the whole release."""
    release_sizes: dict[str | None, int] = field(init=False)
    grader_release_sizes: dict[str, dict[str | None, int]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "release_sizes", _release_totals(self.group_sizes))
        object.__setattr__(self, "grader_release_sizes", {
            name: _release_totals(sizes) for name, sizes in self.grader_sizes.items()})

    def inclusion_probability(self, span: Span, grader_rate: float | None = None,
                              grader: str | None = None) -> float:
        """The probability with which ``span`` is in the sample (1.0 with ``--all``)."""
        if self.grade_all:
            return 1.0
        rate = grader_rate if grader_rate is not None else self.config.rate
        groups, releases = self.group_sizes, self.release_sizes
        if grader is not None and grader in self.grader_sizes:
            groups, releases = self.grader_sizes[grader], self.grader_release_sizes[grader]
        if self.config.stratify_by == "name":
            stratum = groups.get((span.release, span.name), 0)
            if stratum:
                rate = max(rate, min(1.0, self.config.min_per_stratum / stratum))
        if self.config.max_per_release is not None:
            release_size = releases.get(span.release, 0)
            if release_size:
                rate = min(rate, self.config.max_per_release / release_size)
        return min(1.0, rate)

    def include(self, span: Span, grader_rate: float | None = None,
                grader: str | None = None) -> float | None:
        """The inclusion probability if ``span`` is sampled, else None."""
        probability = self.inclusion_probability(span, grader_rate, grader)
        if probability >= 1.0:
            return 1.0
        u = uniform(self.config.seed, span.source, span.span_id)
        return probability if u < probability else None


def _release_totals(sizes: Mapping[tuple[str | None, str | None], int]) -> dict[str | None, int]:
    totals: dict[str | None, int] = {}
    for (release, _), count in sizes.items():
        totals[release] = totals.get(release, 0) + count
    return totals


def group_sizes_for(groups: Iterable[tuple[str | None, str, str, int]], by_name: bool,
                    kinds: Iterable[str] | None = None, name_glob: str | None = None
                    ) -> dict[tuple[str | None, str | None], int]:
    """Span counts per (release, name) — per (release, None) unless ``by_name`` — from the
    store's (release, name, kind, count) groups, keeping only ``kinds`` and names matching
    ``name_glob`` when given."""
    wanted = set(kinds) if kinds is not None else None
    sizes: dict[tuple[str | None, str | None], int] = {}
    for release, name, kind, count in groups:
        if wanted is not None and kind not in wanted:
            continue
        if name_glob is not None and not fnmatch.fnmatchcase(name, name_glob):
            continue
        key = (release, name if by_name else None)
        sizes[key] = sizes.get(key, 0) + count
    return sizes
