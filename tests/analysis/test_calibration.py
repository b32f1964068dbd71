"""Calibration figures against scikit-learn and statsmodels, trust verdicts, stored history."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score, confusion_matrix, recall_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from tests.conftest import make_span
from tests.helpers_golden import GRADER, VERSION, add_labels, add_verdicts, spans
from tracegrade.analysis.calibration import (
    Agreement,
    CalibrationError,
    CalibrationSettings,
    calibrate,
    calibration_status,
    latest_grader_version,
    verdict_on_trust,
)
from tracegrade.analysis.correction import (
    LabeledSample,
    ProductionSample,
    error_rates,
    prediction_powered,
)
from tracegrade.cli import cli
from tracegrade.labels import Split, split_for
from tracegrade.store import Store
from tracegrade.store import _schema as t

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


def test_labels_that_all_agree_leave_kappa_uncertain() -> None:
    # statsmodels' asymptotic standard error is 0 when every pair agrees: kappa was [1, 1] on
    # 29 labels, narrower than with one disagreement more.
    perfect = Agreement.from_pairs([("pass", "pass")] * 15 + [("fail", "fail")] * 14)
    one_off = Agreement.from_pairs([("pass", "pass")] * 15 + [("fail", "fail")] * 14 +
                                   [("pass", "fail")])
    assert perfect.kappa is not None and one_off.kappa is not None
    assert perfect.kappa.value == 1 and perfect.kappa.high == 1
    assert 0.5 < perfect.kappa.low < one_off.kappa.low < 0.9
    assert perfect.tpr is not None and perfect.tnr is not None
    assert perfect.tpr.low < 1 and perfect.tnr.low < 1  # Wilson's never collapsed


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
    # Random labels: the raw figures are scikit-learn's, the population's (what the verdict
    # rests on) nearly the same.
    assert calibration.unweighted is not None and calibration.unweighted.kappa is not None
    kappa = cohen_kappa_score(*zip(*test_pairs, strict=True))
    assert calibration.unweighted.kappa.value == pytest.approx(kappa)
    assert calibration.agreement.kappa is not None
    assert calibration.agreement.kappa.value == pytest.approx(kappa, abs=0.02)
    assert calibration.grader_version == VERSION and calibration.release == "r1"
    rg, ppi = calibration.corrected
    assert rg.estimate is not None and ppi.estimate is not None
    assert rg.estimate == pytest.approx(ppi.estimate, abs=0.02)
    truth = human.count("pass") / len(human)
    assert rg.low is not None and rg.high is not None and rg.low < truth < rg.high
    status = calibration_status(store, GRADER, VERSION)
    assert status is not None and status.n == calibration.n
    assert status.trusted == calibration.trusted and status.status == calibration.status


def test_a_release_without_verdicts_says_why_it_has_no_corrected_rate(store: Store) -> None:
    labeled_store(store, n=100)
    calibration = calibrate(store, GRADER, release="r9", save=False)
    assert calibration.observed_pass_rate is None
    assert [(rate.method, rate.estimate, rate.note) for rate in calibration.corrected] == [
        (method, None, "no pass/fail verdicts of this grader version in the release")
        for method in ("rogan-gladen", "ppi")]


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


def test_the_latest_grader_version_is_the_one_with_the_newest_verdict(store: Store) -> None:
    # v1, then v2, then the config reverted to v1 and graded new spans: v1 is what ran last,
    # although the registry (insert-once) says v2 was registered last.
    for start, version, day in ((0, "v1", 1), (5, "v2", 2), (10, "v1", 3)):
        made = spans(5, start=start)
        add_verdicts(store, made, ["pass"] * 5, version=version)
        when = datetime(2026, 11, day, tzinfo=UTC)
        with store.engine.begin() as conn:
            conn.execute(t.verdicts.update().where(t.verdicts.c.span_id.in_(
                [span.span_id for span in made])).values(created_at=when))
            if version == "v2" or day == 1:  # the registry keeps v1's first registration
                conn.execute(t.graders.update().where(t.graders.c.version == version)
                             .values(created_at=when))
    assert latest_grader_version(store, GRADER) == "v1"
    # Without verdicts, the most recently registered version.
    for version, day in (("b", 5), ("a", 4)):
        store.register_grader("fresh", version, "regex", {})
        with store.engine.begin() as conn:
            conn.execute(t.graders.update().where(t.graders.c.name == "fresh",
                                                  t.graders.c.version == version)
                         .values(created_at=datetime(2026, 11, day, tzinfo=UTC)))
    assert latest_grader_version(store, "fresh") == "b"


def test_calibrate_grader_version_without_a_grader_is_a_usage_error(store: Store,
                                                                    store_url: str) -> None:
    labeled_store(store, n=100)
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate", "--grader-version",
                                      "v9"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --grader-version needs a GRADER")
    assert len(result.stderr.strip().splitlines()) == 1


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


def test_population_figures_match_the_raw_ones_for_random_labels() -> None:
    # Labels drawn at random: weighting each judge verdict to its production share changes
    # next to nothing.
    rng = np.random.default_rng(8)
    human = rng.random(20_000) < 0.8
    judge = np.where(human, rng.random(human.size) < 0.9, rng.random(human.size) >= 0.85)
    chosen = rng.choice(human.size, 400, replace=False)
    production = ProductionSample.unweighted(judge)
    labeled = LabeledSample(human[chosen], judge[chosen], production.pass_share)
    weighted = Agreement.from_labels(labeled, production.pass_share_variance)
    raw = Agreement.from_pairs([("pass" if h else "fail", "pass" if j else "fail")
                                for h, j in zip(human[chosen], judge[chosen], strict=True)])
    assert weighted.weighted and not raw.weighted and weighted.confusion == raw.confusion
    for name in ("tpr", "tnr", "kappa"):
        # (The population's TPR interval is narrower: production, not the labels, gives the
        # judge's pass share.)
        ours, theirs = getattr(weighted, name), getattr(raw, name)
        assert ours.value == pytest.approx(theirs.value, abs=0.03), name
        assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=0.05), name
    assert weighted.tpr is not None and weighted.tnr is not None
    assert (weighted.tpr.value, weighted.tnr.value) == pytest.approx(error_rates(labeled))


def queue_store(store: Store, seed: int = 4, n: int = 4000, per_verdict: int = 120
                ) -> tuple[float, float]:
    """n spans, all graded, people pass 90%; the judge's TPR is 0.97 and TNR 0.6. Labels on
    test-split spans as `labels queue` picks them: as many judge-fails as judge-passes.
    Returns the population's TPR and TNR."""
    rng = np.random.default_rng(seed)
    human = rng.random(n) < 0.9
    judge = np.where(human, rng.random(n) < 0.97, rng.random(n) >= 0.6)
    made = spans(n)
    add_verdicts(store, made, ["pass" if j else "fail" for j in judge])
    test = np.array([split_for(s.source, s.span_id, GRADER) is Split.TEST for s in made])
    chosen = np.concatenate([rng.choice(np.flatnonzero(test & verdict), per_verdict,
                                        replace=False) for verdict in (judge, ~judge)])
    add_labels(store, [made[i] for i in chosen],
               ["pass" if human[i] else "fail" for i in chosen])
    return float(np.mean(judge[human])), float(np.mean(~judge[~human]))


def test_trust_rests_on_the_population_rates_not_the_queue_mix(store: Store) -> None:
    # Half the labels are judge-fails, though the judge fails 9% of spans: counted raw, the
    # labels put TPR at ~0.76 and TNR at ~0.94 and blame TPR; the population's are 0.97 / 0.6.
    tpr, tnr = queue_store(store)
    calibration = calibrate(store, GRADER, resamples=200)
    agreement = calibration.agreement
    assert agreement.tpr is not None and agreement.tnr is not None
    assert agreement.tpr.value == pytest.approx(tpr, abs=0.02)
    assert agreement.tpr.low < tpr < agreement.tpr.high
    assert agreement.tnr.low < tnr < agreement.tnr.high and agreement.tnr.value < 0.8
    assert calibration.status == "not trusted"
    assert any(r.startswith("TNR") for r in calibration.reasons)
    assert not any(r.startswith("TPR") for r in calibration.reasons)
    assert (calibration.population_tpr, calibration.population_tnr) == pytest.approx(
        (agreement.tpr.value, agreement.tnr.value))
    # The raw figures are kept, and so are the raw counts.
    raw = calibration.unweighted
    assert agreement.weighted and raw is not None and calibration.n == 240
    assert raw.tpr is not None and raw.tpr.value < 0.8 and "TPR" in " ".join(
        verdict_on_trust(raw, CalibrationSettings())[1])
    record = calibration.as_dict()
    assert record["weighted"] and record["unweighted"]["tpr"]["value"] == raw.tpr.value
    assert record["confusion"]["human_pass"]["grader_pass"] == raw.confusion.both_pass
    status = calibration_status(store, GRADER, VERSION)
    assert status is not None and status.tpr == pytest.approx(agreement.tpr.value)


def test_calibrate_weights_labels_by_their_inclusion_probability(store: Store) -> None:
    # Spans 0-599 were graded at π = 0.1 (each stands for 10), 600-999 at π = 1; people pass
    # 90% of the first and 50% of the second, and every span is labeled.
    rng = np.random.default_rng(6)
    rare = np.arange(1000) >= 600
    human = rng.random(1000) < np.where(rare, 0.5, 0.9)
    judge = np.where(human, rng.random(1000) < 0.9, rng.random(1000) >= 0.85)
    made = spans(1000)
    for chosen, pi in ((~rare, 0.1), (rare, 1.0)):
        add_verdicts(store, [made[i] for i in np.flatnonzero(chosen)],
                     ["pass" if j else "fail" for j in judge[chosen]], inclusion_probability=pi)
    add_labels(store, made, ["pass" if h else "fail" for h in human])
    calibration = calibrate(store, GRADER, resamples=200)
    weight = np.where(rare, 1.0, 10.0)
    truth = float(np.average(human, weights=weight))
    for rate in calibration.corrected:
        assert rate.estimate == pytest.approx(truth, abs=0.03), rate.method
        assert rate.low is not None and rate.high is not None and rate.low < truth < rate.high
    test = np.array([split_for(s.source, s.span_id, GRADER) is Split.TEST for s in made])
    assert abs(float(np.mean(human[test])) - truth) > 0.05  # unweighted labels would be off
    production = ProductionSample(judge, weight)
    labeled = LabeledSample(human[test], judge[test], production.pass_share, weight[test])
    assert (calibration.population_tpr, calibration.population_tnr) == pytest.approx(
        error_rates(labeled))
    ppi = next(rate for rate in calibration.corrected if rate.method == "ppi")
    expected = prediction_powered(labeled, production)
    assert (ppi.estimate, ppi.low, ppi.high) == pytest.approx(
        (expected.estimate, expected.low, expected.high))


def test_calibrate_completes_with_a_single_labeled_judge_fail(store: Store,
                                                              store_url: str) -> None:
    # A near-perfect judge and random labels: 39 labeled judge-passes, 1 judge-fail. The
    # corrected rates have no interval, but calibration completes and is stored.
    made = [span for span in spans(400)
            if split_for(span.source, span.span_id, GRADER) is Split.TEST][:40]
    add_verdicts(store, made, ["pass"] * 39 + ["fail"])
    add_labels(store, made, ["pass"] * 36 + ["fail"] * 4)
    calibration = calibrate(store, GRADER, resamples=200)
    assert [rate.method for rate in calibration.corrected] == ["rogan-gladen", "ppi"]
    for rate in calibration.corrected:
        assert rate.estimate is not None and rate.low is None
        assert rate.note is not None and "1 labeled span the grader judged fail" in rate.note
    assert calibration_status(store, GRADER, VERSION) is not None
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate", "--format", "json"])
    assert result.exit_code == 0, result.output
    (record,) = orjson.loads(result.stdout)
    assert all(c["ci_low"] is None and c["note"] for c in record["corrected_pass_rate"])
    table = CliRunner().invoke(cli, ["--store", store_url, "calibrate", GRADER])
    assert table.exit_code == 0, table.output


def judge_right_on_train_only(store: Store) -> None:
    """A coin-flip judge by the test split's labels that agrees with every train label."""
    rng = np.random.default_rng(5)
    made = spans(400)
    judged = np.where(rng.random(len(made)) < 0.7, "pass", "fail").tolist()
    add_verdicts(store, made, judged)
    human = [verdict if split_for(span.source, span.span_id, GRADER) is Split.TRAIN
             else str(rng.choice(["pass", "fail"])) for span, verdict in zip(made, judged,
                                                                           strict=True)]
    add_labels(store, made, human)


def stored_calibrations(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(t.calibrations.select()).all())


def test_a_one_off_calibration_is_reported_but_never_becomes_the_stored_trust(
        store: Store, store_url: str) -> None:
    judge_right_on_train_only(store)
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate"])
    assert result.exit_code == 0, result.output
    assert "(test split; 95% intervals)" in result.stdout and "Not stored" not in result.stderr
    status = calibration_status(store, GRADER, VERSION)
    assert status is not None and status.status == "not trusted"
    one_offs = (["--split", "train"], ["--split", "train", "--split", "test"],
                ["--min-kappa", "-1", "--min-tpr", "0", "--min-tnr", "0"])
    for options in one_offs:
        result = CliRunner().invoke(cli, ["--store", store_url, "calibrate", *options])
        assert result.exit_code == 0, result.output
        assert calibration_status(store, GRADER, VERSION) == status
        assert result.stderr.startswith("Not stored: this run ")
    # What those runs reported: trusted, on the train split (kappa 1) or at no thresholds.
    train = CliRunner().invoke(cli, ["--store", store_url, "calibrate", "--split", "train"])
    assert "(train split; 95% intervals)" in train.stdout
    assert "trusted" in train.stdout and "not trusted" not in train.stdout
    # The library stores a calibration only when it rests on the test split alone.
    calibrate(store, GRADER, settings=CalibrationSettings(splits=("train",)), resamples=100)
    assert stored_calibrations(store) == 1
    # The configured thresholds named again, on the test split named again: stored.
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate", "--split", "test",
                                      "--min-kappa", "0.6", "--format", "json"])
    assert result.exit_code == 0 and "Not stored" not in result.stderr
    assert stored_calibrations(store) == 2


def test_the_default_release_is_the_latest_production_release_not_a_replay(
        store: Store) -> None:
    labeled_store(store, n=200)
    replayed = [make_span(1000 + i, source="replay", release="rc2") for i in range(30)]
    add_verdicts(store, replayed, ["pass"] * 30)
    calibration = calibrate(store, GRADER, resamples=100, save=False)
    assert calibration.release == "r1" and calibration.observed_n == 200
    assert calibrate(store, GRADER, release="rc2", resamples=100, save=False).release == "rc2"


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_calibrate_fails_when_every_labeled_criterion_is_skipped(
        store: Store, store_url: str, output_format: str) -> None:
    made = spans(30)
    add_verdicts(store, made, ["pass"] * 30)
    add_labels(store, made, ["pass"] * 30, criterion="no_such_grader")
    result = CliRunner().invoke(cli, ["--store", store_url, "calibrate",
                                      "--format", output_format])
    assert result.exit_code == 2, result.output
    assert "skipped grader 'no_such_grader' has no verdicts" in result.stderr
    assert "Error: no labeled criterion could be calibrated" in result.stderr
    assert result.stdout == ""
