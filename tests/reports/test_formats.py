"""Markdown, JUnit XML (validated against the JUnit schema) and HTML (escaped, offline)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from click.testing import CliRunner

from tests.reports.conftest import HOSTILE_OUTPUT
from tracegrade.analysis import RegressionReport
from tracegrade.analysis.examples import FailingSpan
from tracegrade.cli import cli
from tracegrade.reports import (
    rates_html,
    rates_markdown,
    regressions_html,
    regressions_junit,
    regressions_markdown,
)

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("junit.xsd"))


def test_report_holds_every_kind_of_finding(report: RegressionReport) -> None:
    statuses = {f.grader: (f.status.value, f.own_status.value) for f in report.findings}
    assert statuses == {
        "tool_ok": ("regressed", "regressed"),
        "reply_ok": ("regressed", "unchanged"),  # only its eu slice regressed
        "steady": ("unchanged", "unchanged"),
        "rare": ("insufficient data", "insufficient data"),
    }


# --- markdown -----------------------------------------------------------------------------------


def test_markdown_fits_a_pull_request_comment(report: RegressionReport) -> None:
    text = regressions_markdown(report)
    assert text.startswith("### tracegrade: `r2` vs `r1`")
    assert "**REGRESSED in r2 against r1: reply_ok (in environment=eu -30.0 pts), " \
           "tool_ok (-25.0 pts)**" in text
    rows = [line for line in text.splitlines() if line.startswith("| 🔴") or
            line.startswith("| ⚪") or line.startswith("| 🟡")]
    assert len(rows) == 5  # four graders and the eu slice
    # Every table row has the header's number of cells: nothing broke the table.
    header = next(line for line in text.splitlines() if line.startswith("| | grader | r1"))
    for row in rows[:4]:
        assert row.count(" | ") == header.count(" | ")
    assert "insufficient data (~" in text and "more spans per release)" in text
    assert len(text) < 65_536


def test_markdown_rates_table() -> None:
    from tracegrade.analysis import PassRate

    rate = PassRate("r|1", "g", "v", 9, 1, 2, 0, 0.9, 0.6, 0.98, 10.0)
    text = rates_markdown([rate])
    assert "| r\\|1 | `g` | v | 90.0% | [60.0, 98.0] | 9 | 1 | 2 | 0 |" in text


def test_markdown_shows_html_in_trace_names_as_text() -> None:
    """Release and grader names come from traces: a PR comment must not render their HTML."""
    from tracegrade.analysis import PassRate

    rate = PassRate("v1<b>x</b>", "g`<i>", "v", 9, 1, 2, 0, 0.9, 0.6, 0.98, 10.0)
    text = rates_markdown([rate])
    assert "| v1&lt;b&gt;x&lt;/b&gt; | `` g`<i> `` |" in text
    assert "<b>" not in text


# --- JUnit ---------------------------------------------------------------------------------------


def test_junit_validates_and_has_one_case_per_grader(report: RegressionReport) -> None:
    xml = regressions_junit(report)
    SCHEMA.validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"tool_ok", "reply_ok", "steady", "rare"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    failure = cases["reply_ok"].find("failure")
    assert failure is not None and failure.get("type") == "regression"
    assert "environment=eu" in (failure.get("message") or "")
    assert cases["rare"].find("skipped") is not None
    assert cases["steady"].find("failure") is None and cases["steady"].find("skipped") is None


def test_strict_junit_fails_insufficient_data(report: RegressionReport) -> None:
    xml = regressions_junit(report, strict=True)
    SCHEMA.validate(xml)
    case = next(c for c in ET.fromstring(xml).iter("testcase") if c.get("name") == "rare")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "insufficient-data"


def test_the_schema_rejects_what_jenkins_would(report: RegressionReport) -> None:
    """The schema check has teeth: a suite without its counts is refused."""
    broken = re.sub(r' failures="\d+" errors="0" skipped', " skipped", regressions_junit(report),
                    count=2)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate(broken)


# --- HTML ----------------------------------------------------------------------------------------


def test_html_escapes_trace_data(report: RegressionReport,
                                 examples: dict[str, list[FailingSpan]]) -> None:
    page = regressions_html(report, examples)
    assert "<script" not in page.lower() and "onerror=alert" not in page.replace(
        "onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page
    assert "tool_ok said &lt;no&gt; &amp; stop" in page
    assert set(examples) == {"tool_ok", "reply_ok [environment=eu]"}
    assert all(span.output == HOSTILE_OUTPUT for spans in examples.values() for span in spans)


def test_html_needs_nothing_from_the_network(report: RegressionReport,
                                             examples: dict[str, list[FailingSpan]]) -> None:
    page = regressions_html(report, examples)
    assert "default-src 'none'" in page
    references = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert references == []
    assert page.count("<svg") == 5  # one chart per grader, one for the eu slice
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_rates_html_charts_every_grader(report: RegressionReport) -> None:
    page = rates_html(report.rates)
    assert page.count("<svg") == 4 and "tool_ok" in page


# --- through the CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "marker"), [
    ("markdown", "### tracegrade"), ("junit", "<testsuites"), ("html", "<!DOCTYPE html>"),
    ("json", '"findings"'), ("table", "REGRESSED in r2")])
def test_regressions_command_formats(report_db: Path, workspace: Path, fmt: str,
                                     marker: str) -> None:
    Path("tracegrade.yaml").write_text(
        f"store: sqlite:///{report_db}\nanalysis:\n  slices: [environment]\n")
    result = CliRunner().invoke(cli, ["regressions", "--format", fmt])
    assert result.exit_code == 1, result.output
    assert marker in result.stdout
    written = workspace / "out" / f"report.{fmt}"
    to_file = CliRunner().invoke(cli, ["regressions", "--format", fmt, "-o", str(written)])
    assert to_file.exit_code == 1
    assert marker in written.read_text(encoding="utf-8")


def test_strict_exits_3_on_insufficient_data_unless_something_regressed(report_db: Path) -> None:
    Path("tracegrade.yaml").write_text(f"store: sqlite:///{report_db}\n")
    assert CliRunner().invoke(cli, ["regressions", "--strict"]).exit_code == 1  # regressed wins
    # r0 only has tool_ok (unchanged in r1); the other graders have no baseline data there.
    older = ["regressions", "--baseline", "r0", "--candidate", "r1"]
    assert CliRunner().invoke(cli, older).exit_code == 0
    strict = CliRunner().invoke(cli, [*older, "--strict"])
    assert strict.exit_code == 3, strict.output
    assert "insufficient data" in strict.stdout
    report = CliRunner().invoke(cli, ["report", "--format", "markdown"])
    assert report.exit_code == 0 and "| r2 | `tool_ok` |" in report.stdout


def test_a_grader_version_the_baseline_was_never_graded_with_says_how_to_fix_it() -> None:
    from tracegrade.analysis import Finding, PassRate
    from tracegrade.reports._format import status_text

    empty = PassRate("r1", "g", "v2", 0, 0, 0, 0, None, None, None, 0.0)
    graded = PassRate("r2", "g", "v2", 90, 10, 0, 0, 0.9, 0.83, 0.94, 100.0)
    text = status_text(Finding("g", "v2", empty, graded))
    assert text == ("insufficient data (no verdict of this grader version in the baseline: "
                    "`tracegrade grade` grades its spans there, if it has any)")
    erring = PassRate("r1", "g", "v2", 0, 0, 100, 0, None, None, None, 0.0)
    assert status_text(Finding("g", "v2", erring, graded, more_spans_needed=686,
                               more_spans_where="both")) == (
        "insufficient data (every verdict in the baseline is an error: more spans will not "
        "help; see the verdicts' reasons)")
    few = PassRate("r1", "g", "v2", 3, 0, 0, 0, 1.0, 0.44, 1.0, 3.0)
    still = Finding("g", "v2", few, graded, more_spans_needed=40, more_spans_where="both")
    assert status_text(still) == "insufficient data (~40 more spans per release)"
