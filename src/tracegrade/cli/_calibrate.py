"""``tracegrade calibrate``."""

from __future__ import annotations

from dataclasses import replace

import click

from tracegrade.analysis.calibration import (
    TRUST_SPLITS,
    Calibration,
    CalibrationError,
    CalibrationSettings,
    calibrate,
    labeled_criteria,
)
from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    require_release,
)
from tracegrade.reports.calibration import calibration_table, correction_table


@click.command("calibrate")
@click.argument("grader", required=False)
@click.option("--grader-version", help="Grader version to check. [default: the latest graded]")
@click.option("--release", help="Release whose pass rate is corrected. "
                               "[default: the latest production release]")
@click.option("--split", "splits", type=click.Choice(["test", "dev", "train"]), multiple=True,
              help="Label split(s) to check on (repeatable; a run on another split than test "
                   "is reported, not stored).  [default: test]")
@click.option("--min-kappa", type=click.FloatRange(-1, 1),
              help="Override calibration.min_kappa for this run (reported, not stored).")
@click.option("--min-tpr", type=click.FloatRange(0, 1),
              help="Override calibration.min_tpr for this run (reported, not stored).")
@click.option("--min-tnr", type=click.FloatRange(0, 1),
              help="Override calibration.min_tnr for this run (reported, not stored).")
@format_option
@pass_app
def calibrate_command(app: AppContext, grader: str | None, grader_version: str | None,
                      release: str | None, splits: tuple[str, ...], min_kappa: float | None,
                      min_tpr: float | None, min_tnr: float | None, output_format: str) -> None:
    """Check graders against human labels: kappa, TPR, TNR, and corrected pass rates.

    For GRADER (default: every grader with labels), on the test split: the
    confusion matrix, TPR, TNR and Cohen's kappa for production (labels weighted
    by how the grader's verdicts split there, so a balanced labeling queue does
    not skew them) with their intervals, and a verdict — trusted when kappa >= 0.6
    and TPR, TNR >= 0.8
    (`calibration:` in tracegrade.yaml). The release's pass rate is corrected
    for the grader's errors (Rogan-Gladen and prediction-powered inference,
    with simulated 95% intervals). Results are stored per grader version (a
    changed grader is uncalibrated until checked again), and `regressions`
    reads trust from them: a run on another split or with overridden
    thresholds is only reported.
    """
    if grader_version is not None and grader is None:
        fail("--grader-version needs a GRADER (versions belong to one grader)")
    config = app.config()
    thresholds = config.calibration
    configured = CalibrationSettings(
        min_kappa=thresholds.min_kappa, min_tpr=thresholds.min_tpr, min_tnr=thresholds.min_tnr,
        min_labels=thresholds.min_labels)
    settings = replace(
        configured, splits=tuple(dict.fromkeys(splits)) or configured.splits,
        min_kappa=configured.min_kappa if min_kappa is None else min_kappa,
        min_tpr=configured.min_tpr if min_tpr is None else min_tpr,
        min_tnr=configured.min_tnr if min_tnr is None else min_tnr)
    # The stored calibration is what `regressions` trusts: a one-off run is only reported.
    save = settings == configured
    results: list[Calibration] = []
    with app.open_store(config, existing=True) as store:
        require_release(store, release)
        graders = [grader] if grader else labeled_criteria(store)
        if not graders:
            fail("no human labels in the store (import some with `tracegrade labels import`)")
        for name in graders:
            try:
                results.append(calibrate(store, name, grader_version,
                                         settings=settings, release=release, save=save))
            except CalibrationError as exc:
                if grader:
                    fail(str(exc))
                app.err_console.print(f"[yellow]skipped[/] {exc}", highlight=False, soft_wrap=True)
    if not results:
        fail("no labeled criterion could be calibrated (each was skipped, as said above)")
    if not save:
        app.err_console.print(_not_stored(settings), highlight=False, soft_wrap=True)
    if output_format == "json":
        print_json([result.as_dict() for result in results])
        return
    app.console.print(calibration_table(results))
    app.console.print(correction_table(results))


def _not_stored(settings: CalibrationSettings) -> str:
    """Why this run's results were not stored as the graders' calibration."""
    why = f"used the {'/'.join(settings.splits)} split" if settings.splits != TRUST_SPLITS \
        else "overrode the thresholds"
    return (f"Not stored: this run {why}, and `tracegrade regressions` trusts calibrations on "
            "the test split with the configured thresholds (the stored ones are unchanged).")
