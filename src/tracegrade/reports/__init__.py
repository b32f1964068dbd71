"""Reports for people and for CI: terminal tables, Markdown, JUnit XML, self-contained HTML."""

from tracegrade.reports.html import rates_html, regressions_html
from tracegrade.reports.junit import regressions_junit
from tracegrade.reports.markdown import rates_markdown, regressions_markdown

__all__ = ["rates_html", "rates_markdown", "regressions_html", "regressions_junit",
           "regressions_markdown"]
