"""``tracegrade init --check``: does the config still keep step with the code?

The graders ``init --from-code`` wrote carry ``# synth: KEY DIGEST`` lines. A fresh analysis of
the code gives fresh keys and digests; comparing the two finds graders whose source changed (same
key, new digest), graders whose source vanished (key gone), and code with no grader yet (a new
key, not silenced by ``# synth-ignore: KEY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracegrade.synth._propose import Proposal, Synthesis
from tracegrade.synth._render import FROM_MARKER, IGNORE_MARKER, MARKER, SOURCE_MARKER

_MARKER_LINE = re.compile(rf"^\s*#\s*{MARKER}\s+(?P<key>\S+)\s+(?P<digest>\S+)\s*$")
_GRADER_LINE = re.compile(r"^\s*(?P<off>#\s*)?-\s+name:\s*(?P<name>\S+)\s*$")
_IGNORE_LINE = re.compile(rf"^\s*#\s*{IGNORE_MARKER}\s*(?P<key>\S+)\s*$")
_FROM_LINE = re.compile(rf"^\s*#\s*{FROM_MARKER}\s*(?P<path>.+?)\s*$")
_SOURCE_LINE = re.compile(rf"^\s*#\s*{SOURCE_MARKER}\s*(?P<source>\S+)\s*$")


@dataclass(frozen=True)
class MarkedGrader:
    """A grader in the config that ``init --from-code`` wrote, as its marker line records it."""

    key: str
    digest: str
    name: str
    active: bool
    line: int


@dataclass
class ConfigMarkers:
    """What a config file says about its synthesis: marked graders, ignores, code path."""

    graders: list[MarkedGrader] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)
    code_path: str | None = None
    source: str | None = None


def read_markers(text: str) -> ConfigMarkers:
    """The ``# synth…`` lines of a config file's text."""
    markers = ConfigMarkers()
    pending: tuple[str, str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if found := _MARKER_LINE.match(line):
            pending = (found["key"], found["digest"], number)
            continue
        if pending is not None and (grader := _GRADER_LINE.match(line)):
            markers.graders.append(MarkedGrader(pending[0], pending[1], grader["name"],
                                                grader["off"] is None, pending[2]))
        pending = None
        if found := _IGNORE_LINE.match(line):
            markers.ignored.add(found["key"])
        elif (found := _FROM_LINE.match(line)) and markers.code_path is None:
            markers.code_path = found["path"]
        elif (found := _SOURCE_LINE.match(line)) and markers.source is None:
            markers.source = found["source"]
    return markers


@dataclass(frozen=True)
class Drift:
    """One way the config and the code disagree."""

    status: str
    """changed, vanished or uncovered."""
    key: str
    grader: str | None
    detail: str
    origin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {"status": self.status, "key": self.key, "grader": self.grader,
                "detail": self.detail, "origin": self.origin}


@dataclass
class CheckReport:
    """The result of ``init --check``."""

    config_path: str
    code_path: str
    drifts: list[Drift]
    graders_checked: int
    ignored: int

    @property
    def ok(self) -> bool:
        """True when the config and the code agree."""
        return not self.drifts

    def count(self, status: str) -> int:
        """How many drifts of one status."""
        return sum(1 for drift in self.drifts if drift.status == status)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {"config": self.config_path, "code": self.code_path, "ok": self.ok,
                "graders_checked": self.graders_checked, "ignored": self.ignored,
                "changed": self.count("changed"), "vanished": self.count("vanished"),
                "uncovered": self.count("uncovered"),
                "drifts": [drift.as_dict() for drift in self.drifts]}


def compare(config_path: Path, text: str, synthesis: Synthesis, code_path: str) -> CheckReport:
    """Compare a config file's markers with a fresh synthesis of the code."""
    markers = read_markers(text)
    fresh = {proposal.key: proposal for proposal in synthesis.proposals}
    written = {grader.key: grader for grader in markers.graders}
    drifts: list[Drift] = []
    for grader in markers.graders:
        proposal = fresh.get(grader.key)
        if proposal is None:
            drifts.append(Drift("vanished", grader.key, grader.name,
                                "the code this grader was proposed from is gone"))
        elif proposal.digest != grader.digest:
            drifts.append(_changed(grader, proposal))
    for key, proposal in fresh.items():
        if key not in written and key not in markers.ignored:
            drifts.append(Drift("uncovered", key, None,
                                f"no grader yet; proposed: {proposal.name} ({proposal.type}): "
                                f"{proposal.reason}", str(proposal.origin)))
    return CheckReport(str(config_path), code_path, drifts, len(markers.graders),
                       len(markers.ignored))


def _changed(grader: MarkedGrader, proposal: Proposal) -> Drift:
    return Drift("changed", grader.key, grader.name,
                 f"its source changed: {proposal.reason} Re-run `tracegrade init --from-code` "
                 f"or update {grader.name} (proposed now: {_summary(proposal)}), then set its "
                 f"synth digest to {proposal.digest}", str(proposal.origin))


def _summary(proposal: Proposal) -> str:
    config = proposal.config()
    for key in ("name", "applies_to", "rubric"):
        config.pop(key, None)
    shown = ", ".join(f"{k}={v}" for k, v in config.items() if k != "schema")
    if proposal.unless_output is not None:
        shown += f", applies_to.unless_output={proposal.unless_output}"
    return shown + (", schema updated" if "schema" in config else "")
