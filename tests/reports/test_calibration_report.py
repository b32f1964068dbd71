"""The `calibrate` tables: every missing figure says why it is missing."""

from __future__ import annotations

import re

from rich.console import Console

from tracegrade.analysis.calibration import Agreement, Calibration, CalibrationSettings
from tracegrade.analysis.correction import CorrectedRate
from tracegrade.reports.calibration import calibration_table, correction_table


def calibration(grader: str, pairs: list[tuple[str, str]], corrected: list[CorrectedRate],
                observed: float | None, release: str | None = "r2") -> Calibration:
    return Calibration(grader, "v1", ("test",), Agreement.from_pairs(pairs), False,
                       "insufficient labels", [], CalibrationSettings(), release=release,
                       observed_pass_rate=observed, observed_n=0 if observed is None else 1500,
                       corrected=corrected)


def rendered(*tables: object) -> str:
    console = Console(width=300, record=True, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_every_dash_says_why() -> None:
    unanimous = [("pass", "pass")] * 30 + [("pass", "fail")] * 3
    single_fail = [CorrectedRate("rogan-gladen", 0.95, None, None,
                                 "no interval: 1 labeled span the grader judged fail; need 2"),
                   CorrectedRate("ppi", 0.95, None, None,
                                 "no interval: 1 labeled span the grader judged fail; need 2")]
    no_verdicts = [CorrectedRate(method, None, None, None, "no pass/fail verdicts of this "
                                 "grader version in the release") for method in ("rogan-gladen",
                                                                                 "ppi")]
    clipped = [CorrectedRate("rogan-gladen", 0.0, 0.0, 0.0, "clipped to a bound"),
               CorrectedRate("ppi", 0.08, 0.01, 0.33)]
    calibrations = [calibration("all_pass", unanimous, single_fail, 0.95),
                    calibration("unreleased", unanimous, no_verdicts, None, release=None),
                    calibration("failed_all", unanimous, clipped, 0.0)]
    text = rendered(calibration_table(calibrations), correction_table(calibrations))
    assert "— (no fail labels)" in text  # TNR, when people failed nothing
    assert "95.0% (no interval: 1 labeled span the grader judged fail; need 2)" in text
    assert "— (no pass/fail verdicts)" in text  # the observed rate
    assert "— (no pass/fail verdicts of this grader version in the release)" in text
    assert "0.0% [0.0, 0.0] (clipped to a bound)" in text
    assert "(none)" in text and "None" not in text
    assert not re.search(r"—(?! \()", text), text
