"""``tracegrade watch``."""

from __future__ import annotations

import sys

import click

from tracegrade.cli._common import EXIT_FINDINGS, AppContext, fail, pass_app, print_json
from tracegrade.llm import JudgeError
from tracegrade.watch import Tick, run_watch


@click.command("watch")
@click.option("--every", "every_minutes", type=click.FloatRange(min=0.1),
              help="Minutes between rounds. [default: analysis.watch.every_minutes, 15]")
@click.option("--once", is_flag=True,
              help="One round, then exit (for cron); exit 1 if it raised a new finding "
                   "(delivered or not).")
@click.option("--webhook", envvar="TRACEGRADE_WEBHOOK",
              help="Slack-compatible webhook URL for findings. [default: "
                   "analysis.watch.webhook; env TRACEGRADE_WEBHOOK]")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json: one document per round.")
@pass_app
def watch_command(app: AppContext, every_minutes: float | None, once: bool,
                  webhook: str | None, output_format: str) -> None:
    """Pull, grade and look for regressions every few minutes, alerting once per finding.

    Each round pulls the configured sources, grades new spans, and checks the
    latest release against the one before with an anytime-valid sequential
    test (a beta-binomial mixture e-process), so looking after every batch
    does not inflate false alarms. Pass rates are watched per grader and
    slice, and so is each grader's share of error verdicts. New findings go
    to stdout and to the webhook; a finding is never announced twice, except
    that one the webhook did not take is shown and sent again next round.
    """
    config = app.config()
    watch = config.analysis.watch
    found = False

    def on_tick(tick: Tick) -> None:
        nonlocal found
        found = found or bool(tick.new_findings) or bool(tick.undelivered)
        if output_format == "json":
            print_json(tick.as_dict())
        else:
            _print_tick(app, tick)
        sys.stdout.flush()

    # Without graders the watch can only follow verdicts something else writes: the store must
    # exist and hold some, else this is a wrong directory or config, not a quiet success.
    with app.open_store(config, existing=not config.graders) as store:
        if not config.graders and not store.count_verdicts():
            fail("nothing to watch: no graders configured and no verdicts in the store; add "
                 "graders under `graders:` in tracegrade.yaml (`tracegrade init` writes a "
                 "starter) or pass --config/--store to use yours")
        try:
            run_watch(store, config, every_minutes=every_minutes or watch.every_minutes,
                      on_tick=on_tick, webhook=webhook or watch.webhook or None,
                      iterations=1 if once else None)
        except JudgeError as exc:
            fail(f"LLM judge: {exc} (verdicts graded so far are kept)")
        except KeyboardInterrupt:
            if once:
                raise  # an interrupted round: exit 130, as any interrupted command
            app.err_console.print("Stopped.")  # Ctrl-C is how a watch ends
    if once and found:
        sys.exit(EXIT_FINDINGS)


def _print_tick(app: AppContext, tick: Tick) -> None:
    for finding in tick.new_findings:
        app.console.print(f"REGRESSED {finding.text()}", markup=False, highlight=False,
                          soft_wrap=True)
    for finding in tick.undelivered:
        app.console.print(f"REGRESSED {finding.text()} (the webhook did not take it: sent "
                          "again next round)", markup=False, highlight=False, soft_wrap=True)
    for problem in tick.problems:
        app.err_console.print(f"problem: {problem}", markup=False, highlight=False)
    app.err_console.print(_summary(tick), markup=False, highlight=False, soft_wrap=True)


def _summary(tick: Tick) -> str:
    parts = [tick.at.strftime("%Y-%m-%d %H:%M:%S")]
    if tick.pulled is not None:
        parts.append("pulled sources")
    if tick.graded is not None:
        parts.append(f"graded {tick.graded.verdicts_written:,} new verdicts")
    detection = tick.detection
    if detection.waiting:
        parts.append(f"waiting: {detection.waiting}")
    else:
        parts.append(f"watching {detection.watched} graders and slices (and "
                     f"{detection.errors_watched} error shares) of "
                     f"{detection.candidate} vs {detection.baseline}: "
                     f"{len(detection.findings)} alarming, "
                     f"{len(tick.new_findings) + len(tick.undelivered)} new")
    return "; ".join(parts)
