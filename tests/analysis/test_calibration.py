"""Calibration figures against scikit-learn and statsmodels, trust verdicts, stored history."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score, confusion_matrix, recall_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from tests.helpers_golden import GRADER, VERSION, add_labels, add_verdicts, spans
from tracegrade.analysis.calibration import (
    Agreement,
    CalibrationError,
    CalibrationSettings,
    calibrate,
    calibration_status,
    verdict_on_trust,
)
from tracegrade.cli import cli
from tracegrade.labels import Split, split_for
from tracegrade.store import Store

# A fixed label set: 60 spans, with the human label and the grader's verdict of each.
HUMAN = ["pass"] * 40 + ["fail"] * 20
GRADER_SAYS = ["pass"] * 35 + ["fail"] * 5 + ["pass"] * 4 + ["fail"] * 16


def test_agreement_matches_scikit_learn_and_statsmodels() -> None:
    agreement = Agreement.from_pairs(list(zip(HUMAN, GRADER_SAYS, strict=True)))
    expected = confusion_matrix(HUMAN, GRADER_SAYS, labels=["pass", "fail"])
    assert agreement.confusion.table() == expected.tolist()
    assert agreement.tpr is not None and agreement.tnr is not None
    assert agreement.tpr.value == pytest.approx(recall_score(HUMAN, GRADER_SAYS, pos_label="pass"))
    assert agreement.tnr.value == pytest.approx(recall_score(HUMAN, GRADER_SAYS, pos_label="fail"))
    assert (agreement.tpr.low, agreement.tpr.high) == pytest.approx(
        proportion_confint(35, 40, method="wilson"))
    kappa = cohens_kappa(expected)
    assert agreement.kappa is not None
    assert agreement.kappa.value == pytest.approx(cohen_kappa_score(HUMAN, GRADER_SAYS))
    assert (agreement.kappa.low, agreement.kappa.high) == pytest.approx(
        (kappa.kappa_low, kappa.kappa_upp))


def test_kappa_is_undefined_when_people_gave_one_answer() -> None:
    agreement = Agreement.from_pairs([("pass", "pass")] * 25 + [("pass", "fail")] * 5)
    assert agreement.kappa is None and agreement.tnr is None
    status, reasons = verdict_on_trust(agreement, CalibrationSettings())
    assert status == "insufficient labels" and "kappa is undefined" in reasons[0]


@pytest.mark.parametrize(("settings", "status"), [
    (CalibrationSettings(), "trusted"),
    (CalibrationSettings(min_tnr=0.85), "not trusted"),
    (CalibrationSettings(min_labels=61), "insufficient labels"),
])
def test_trust_thresholds_are_configurable(settings: CalibrationSettings, status: str) -> None:
    agreement = Agreement.from_pairs(list(zip(HUMAN, GRADER_SAYS, strict=True)))
    assert verdict_on_trust(agreement, settings)[0] == status  # TNR is 16/20 = 0.80


def labeled_store(store: Store, n: int = 400, seed: int = 3) -> tuple[list[str], list[str]]:
    """A grader with TPR ~0.9 and TNR ~0.85 on n spans, every span labeled."""
    rng = np.random.default_rng(seed)
    human = np.where(rng.random(n) < 0.7, "pass", "fail")
    wrong = rng.random(n) < np.where(human == "pass", 0.1, 0.15)
    judged = np.where(wrong, np.where(human == "pass", "fail", "pass"), human)
    made = spans(n)
    add_verdicts(store, made, judged.tolist())
    add_labels(store, made, human.tolist())
    return human.tolist(), judged.tolist()


def test_calibrate_uses_the_test_split_and_stores_the_result(store: Store) -> None:
    human, judged = labeled_store(store)
    calibration = calibrate(store, GRADER, resamples=300)
    test_pairs = [(h, j) for i, (h, j) in enumerate(zip(human, judged, strict=True))
                  if split_for("test", f"span-{i:06d}", GRADER) is Split.TEST]
    assert calibration.n == len(test_pairs) and 120 < calibration.n < 200
    assert calibration.agreement.kappa is not None
    assert calibration.agreement.kappa.value == pytest.approx(
        cohen_kappa_score(*zip(*test_pairs, strict=True)))
    assert calibration.grader_version == VERSION and calibration.release == "r1"
    rg, ppi = calibration.corrected
    assert rg.estimate is not None and ppi.estimate is not None
    assert rg.estimate == pytest.approx(ppi.estimate, abs=0.02)
    truth = human.count("pass") / len(human)
    assert rg.low is not None and rg.high is not None and rg.low < truth < rg.high
    status = calibration_status(store, GRADER, VERSION)
    assert status is not None and status.n == calibration.n
    assert status.trusted == calibration.trusted and status.status == calibration.status


def test_a_new_grader_version_is_uncalibrated_until_checked(store: Store) -> None:
    labeled_store(store, n=100)
    calibrate(store, GRADER, resamples=100)
    made = spans(100)
    add_verdicts(store, made, ["pass"] * 100, version="v2")
    assert calibration_status(store, GRADER, "v2") is None
    assert calibration_status(store, GRADER, VERSION) is not None


def test_calibrate_explains_missing_labels_and_verdicts(store: Store) -> None:
    add_verdicts(store, spans(5), ["pass"] * 5)
    with pytest.raises(CalibrationError, match="no human labels for 'reply_ok'"):
        calibrate(store, GRADER)
    with pytest.raises(CalibrationError, match="has no verdicts in the store"):
        calibrate(store, "unknown")


def test_calibrate_cli_shows_kappa_and_the_corrected_rate(store: Store, store_url: str) -> None:
    labeled_store(store, n=200)
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate", "--format", "json"])
    assert result.exit_code == 0, result.output
    (record,) = orjson.loads(result.stdout)
    assert record["grader"] == GRADER and record["kappa"]["ci_low"] < record["kappa"]["value"]
    assert [c["method"] for c in record["corrected_pass_rate"]] == ["rogan-gladen", "ppi"]
    table = CliRunner().invoke(cli, ["--store", store_url, "calibrate", GRADER])
    assert table.exit_code == 0, table.output
    assert "Rogan-Gladen" in table.stdout and "kappa" in table.stdout
