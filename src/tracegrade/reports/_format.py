"""Number formatting every report shares, so a figure reads the same in each format."""

from __future__ import annotations

from tracegrade.analysis import Finding, FindingStatus, PassRate, RegressionReport


def percent(value: float | None, digits: int = 1) -> str:
    """``0.9312`` as ``93.1%``; ``None`` as an em dash."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def interval(low: float | None, high: float | None) -> str:
    """An interval in percent."""
    if low is None or high is None:
        return "—"
    return f"[{low * 100:.1f}, {high * 100:.1f}]"


def points(value: float | None, signed: bool = True) -> str:
    """A difference of rates in percentage points."""
    if value is None:
        return "—"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f} pts"


def points_interval(finding: Finding) -> str:
    """The difference's interval in points."""
    if finding.diff_low is None or finding.diff_high is None:
        return "—"
    return f"[{finding.diff_low * 100:+.1f}, {finding.diff_high * 100:+.1f}]"


def p_value(value: float | None) -> str:
    """A p- or q-value, floored for display."""
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def rate_cell(rate: PassRate) -> str:
    """``93.1% (n=1,500)`` or ``no data``."""
    if rate.rate is None:
        return "no data"
    return f"{percent(rate.rate)} (n={rate.decided:,})"


NO_RELEASE = "(none)"
"""How tables and charts show spans that carry no release (JSON keeps null)."""


def release_name(release: str | None) -> str:
    """A release as tables and charts show it."""
    return NO_RELEASE if release is None else release


def status_text(finding: Finding) -> str:
    """The status, with what is missing when the data cannot tell yet, and whether an LLM
    judge behind it was checked against human labels."""
    return _plain_status(finding) + _calibration_note(finding)


def _plain_status(finding: Finding) -> str:
    if finding.status is FindingStatus.REGRESSED:
        text = "regressed"
        if finding.own_status is not finding.status and finding.regressed_slices:
            text += f" in {', '.join(str(s.slice) for s in finding.regressed_slices)}"
        if finding.errors_rose:
            text += f" (errors {error_shares(finding)})"
        return text
    if finding.status is FindingStatus.INSUFFICIENT and finding.slice is None:
        missing = _ungraded_release(finding)
        if missing:
            return (f"insufficient data (no verdict of this grader version in the {missing}: "
                    f"`tracegrade grade` grades its spans there, if it has any)")
        erring = _only_errors(finding)
        if erring:
            return (f"insufficient data (every verdict in the {erring} is an error: more "
                    f"spans will not help; see the verdicts' reasons)")
    if finding.status is FindingStatus.INSUFFICIENT and finding.more_spans_needed:
        where = "in the candidate" if finding.more_spans_where == "candidate" \
            else "per release"
        return f"insufficient data (~{finding.more_spans_needed:,} more spans {where})"
    return finding.status.value


def _ungraded_release(finding: Finding) -> str | None:
    """Which release has no verdict at all of the finding's grader version (a config that
    changed after that release was graded, say), when one has none."""
    def graded(rate: PassRate) -> bool:
        return rate.passed + rate.failed + rate.errors + rate.skipped > 0

    if not graded(finding.baseline):
        return "baseline"
    if not graded(finding.candidate):
        return "candidate"
    return None


def _only_errors(finding: Finding) -> str | None:
    """Which release's verdicts of the grader are all errors (no pass or fail), if one's are."""
    for side, rate in (("baseline", finding.baseline), ("candidate", finding.candidate)):
        if rate.passed + rate.failed == 0 and rate.errors > 0:
            return side
    return None


def _calibration_note(finding: Finding) -> str:
    if finding.calibration is None or finding.calibration == "trusted":
        return ""
    return f" [judge {finding.calibration}]"


def order(finding: Finding) -> tuple[int, str]:
    """Regressed first, then improved, unchanged, insufficient; by grader name."""
    return list(FindingStatus).index(finding.status), finding.grader


def headline(report: RegressionReport) -> str:
    """One line saying what regressed."""
    regressed = report.regressed
    if not regressed:
        return f"No grader regressed in {report.candidate} against {report.baseline}."
    names = ", ".join(_regressed_name(f) for f in regressed)
    return f"REGRESSED in {report.candidate} against {report.baseline}: {names}"


def _regressed_name(finding: Finding) -> str:
    parts = []
    if finding.own_status is FindingStatus.REGRESSED:
        parts.append(points(finding.difference))
    elif finding.regressed_slices:
        parts.append("in " + ", ".join(f"{s.slice} {points(s.difference)}"
                                       for s in finding.regressed_slices))
    if finding.errors_rose:
        parts.append(f"errors {error_shares(finding)}")
    return f"{finding.grader} ({'; '.join(parts)})"


def error_shares(finding: Finding) -> str:
    """``1.0% → 48.0%``: the share of error verdicts in the baseline and the candidate."""
    b, c = finding.baseline.error_share or 0.0, finding.candidate.error_share or 0.0
    return f"{b * 100:.1f}% → {c * 100:.1f}%"


def counts_line(report: RegressionReport) -> str:
    """How many graders ended in each status."""
    counts = {status: 0 for status in FindingStatus}
    for finding in report.findings:
        counts[finding.status] += 1
    return " · ".join(f"{n} {status.value}" for status, n in counts.items())


def method_line(report: RegressionReport) -> str:
    """How the comparison was made, in a sentence."""
    s = report.settings
    strata = f"within strata ({', '.join(s.strata)})" if s.strata else "pooled"
    slices = f"; slices: {', '.join(s.slices)}" if s.slices else ""
    return (f"One-sided tests {strata}{slices}; Benjamini-Hochberg FDR {s.alpha:g} over "
            f"{report.tests} comparisons; MDE at {s.power:.0%} power; effect of interest "
            f"{s.effect * 100:g} pts.")


def notable_slices(report: RegressionReport) -> list[Finding]:
    """Slices that regressed or improved while their grader overall did not say so.

    (A grader that regressed overall regresses in most of its slices too; listing those adds
    nothing. They are all in the JSON report.)
    """
    changed = (FindingStatus.REGRESSED, FindingStatus.IMPROVED)
    found = [s for f in report.findings for s in f.slices
             if s.own_status in changed and s.own_status is not f.own_status]
    return sorted(found, key=lambda s: (s.own_status is not FindingStatus.REGRESSED, s.label()))
