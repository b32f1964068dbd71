"""Terminal tables for ``tracegrade init --from-code`` and ``--check`` (rich)."""

from __future__ import annotations

from rich.table import Table

from tracegrade.synth._check import CheckReport
from tracegrade.synth._dryrun import DryRun
from tracegrade.synth._propose import Synthesis


def proposals_table(synthesis: Synthesis) -> Table:
    """One row per proposed grader: what it checks, which spans, where in the code."""
    table = Table(title="Proposed graders", title_justify="left")
    for column in ("grader", "type", "spans", "from"):
        table.add_column(column, overflow="fold")
    for proposal in synthesis.proposals:
        applies = proposal.match.applies_to()
        spans = " ".join(f"{k}={v}" for k, v in applies.items() if k != "attributes")
        for key, value in applies.get("attributes", {}).items():
            spans += f" {key}={value}"
        name = proposal.name if proposal.active else f"[dim]# {proposal.name} (off)[/dim]"
        table.add_row(name, proposal.type, spans, str(proposal.origin))
    return table


def dry_run_table(report: DryRun) -> Table:
    """One row per live grader on the sample: spans matched, verdicts, pass rate, flags."""
    table = Table(title=f"Dry run: {report.spans:,} spans from {', '.join(report.sources)}; "
                  f"each deterministic grader ran on about {report.sample_size:,} per release",
                  title_justify="left")
    for column in ("grader", "matched", "pass", "fail", "error", "pass rate", "by release",
                   "flag"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("matched", "pass", "fail", "error",
                                                       "pass rate") else "left")
    for trial in report.trials:
        rate = trial.pass_rate()
        shown = f"{rate:.1%}" if rate is not None else ("judge: not run" if not trial.ran
                                                          else "—")
        flag = f"[yellow]{trial.flag}[/yellow]" if trial.flag else ""
        releases = "  ".join(f"{release} {rate:.0%}" for release, (rate, _) in
                             sorted(trial.by_release.items()) if rate is not None)
        table.add_row(trial.name, str(trial.matched), str(trial.outcomes["pass"]),
                      str(trial.outcomes["fail"]), str(trial.outcomes["error"]), shown, releases,
                      flag)
    return table


def check_table(report: CheckReport) -> Table:
    """One row per drift between the config and the code."""
    table = Table(title=f"{report.config_path} against {report.code_path}",
                  title_justify="left")
    for column in ("status", "grader", "key", "detail"):
        table.add_column(column, overflow="fold")
    for drift in report.drifts:
        table.add_row(drift.status, drift.grader or "—", drift.key,
                      f"{drift.detail}" + (f" ({drift.origin})" if drift.origin else ""))
    return table
