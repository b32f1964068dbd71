"""JUnit XML for CI systems: one test case per grader; a regression is a failure.

The shape is the one Jenkins, GitLab, GitHub test reporters and Azure DevOps read (the
Ant / Jenkins ``junit-10.xsd`` schema): ``<testsuites>`` holding one ``<testsuite>`` whose
``<testcase>`` elements carry ``<failure>`` for a regressed grader and ``<skipped>`` for one
whose data cannot tell yet (a ``<failure>`` too with ``strict``, matching ``--strict``).
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

from tracegrade.analysis import Finding, FindingStatus, RegressionReport
from tracegrade.reports._format import (
    headline,
    method_line,
    p_value,
    percent,
    points,
    points_interval,
    status_text,
)
from tracegrade.spans import utc_now

CLASSNAME = "tracegrade.regressions"


def regressions_junit(report: RegressionReport, strict: bool = False) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration)."""
    cases = [_case(f, report, strict) for f in report.findings]
    failures = sum(1 for case in cases if case.find("failure") is not None)
    skipped = sum(1 for case in cases if case.find("skipped") is not None)
    name = f"tracegrade: {report.candidate} vs {report.baseline}"
    suites = ET.Element("testsuites", name="tracegrade regressions", tests=str(len(cases)),
                        failures=str(failures), errors="0", time="0")
    suite = ET.SubElement(suites, "testsuite", name=name, tests=str(len(cases)),
                          failures=str(failures), errors="0", skipped=str(skipped), time="0",
                          timestamp=utc_now().replace(microsecond=0).isoformat(),
                          hostname=socket.gethostname())
    properties = ET.SubElement(suite, "properties")
    for key, value in (("baseline", report.baseline), ("candidate", report.candidate),
                       ("alpha", report.settings.alpha), ("effect", report.settings.effect),
                       ("comparisons", report.tests)):
        ET.SubElement(properties, "property", name=key, value=str(value))
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = f"{headline(report)}\n{method_line(report)}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _case(finding: Finding, report: RegressionReport, strict: bool) -> ET.Element:
    case = ET.Element("testcase", name=finding.grader, classname=CLASSNAME, time="0")
    summary = _summary(finding)
    if finding.status is FindingStatus.REGRESSED:
        failure = ET.SubElement(case, "failure", type="regression", message=summary)
        failure.text = _details(finding, report)
    elif finding.status is FindingStatus.INSUFFICIENT:
        if strict:
            failure = ET.SubElement(case, "failure", type="insufficient-data", message=summary)
            failure.text = _details(finding, report)
        else:
            ET.SubElement(case, "skipped", message=summary)
    ET.SubElement(case, "system-out").text = _details(finding, report)
    return case


def _summary(finding: Finding) -> str:
    b, c = finding.baseline, finding.candidate
    return (f"{status_text(finding)}: pass rate {percent(c.rate)} (n={c.decided}) vs "
            f"{percent(b.rate)} (n={b.decided}), {points(finding.difference)}, "
            f"q={p_value(finding.q_worse)}")


def _details(finding: Finding, report: RegressionReport) -> str:
    lines = [
        f"grader {finding.grader} (version {finding.grader_version})",
        f"{report.baseline}: {percent(finding.baseline.rate)} of {finding.baseline.decided} "
        f"decided, {finding.baseline.errors} errors, {finding.baseline.skipped} skipped",
        f"{report.candidate}: {percent(finding.candidate.rate)} of {finding.candidate.decided} "
        f"decided, {finding.candidate.errors} errors, {finding.candidate.skipped} skipped",
        f"change {points(finding.difference)} 95% CI {points_interval(finding)}; "
        f"p={p_value(finding.p_worse)} q={p_value(finding.q_worse)} ({finding.test or 'untested'})"
        f"; MDE {points(finding.mde, signed=False)}",
    ]
    for s in finding.slices:
        if s.own_status in (FindingStatus.REGRESSED, FindingStatus.IMPROVED):
            lines.append(f"slice {s.slice}: {s.own_status.value}, {percent(s.candidate.rate)} "
                         f"vs {percent(s.baseline.rate)} ({points(s.difference)}), "
                         f"q={p_value(s.q_worse)}")
    return "\n".join(lines)
