"""Errors the analysis raises that the command line reports (importable without scipy)."""

from __future__ import annotations


class NotEnoughReleases(ValueError):
    """Fewer than two releases hold verdicts, or a named release holds none."""
