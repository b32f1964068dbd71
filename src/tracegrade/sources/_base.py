"""What every source yields: spans, and problems found in its input."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IngestProblem:
    """A record that could not be read, with where it was and why. It is skipped and counted."""

    location: str
    """``FILE:LINE`` for line-based files, ``FILE@OFFSET`` (bytes) otherwise."""
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True)
class MappingOptions:
    """How raw spans become :class:`~tracegrade.spans.Span` records."""

    source: str = "import"
    """The ``source`` every produced span gets (its key is ``(source, span_id)``)."""
    release_from: str = "resource.service.version"
    """Where the release comes from: ``resource.KEY`` for a resource attribute, else a span
    attribute key."""
    environment_from: tuple[str, ...] = field(
        default=("resource.deployment.environment.name", "resource.deployment.environment")
    )
    """Where the environment comes from, first match wins (same syntax as ``release_from``)."""
