"""``tracegrade watch``: pull, grade and look for regressions every few minutes.

Each tick pulls the configured sources (``tracegrade.sources.pull``), grades the new spans,
and checks the latest release against the one before with the anytime-valid e-process of
:mod:`tracegrade.analysis.sequential` — so looking after every batch does not inflate false
alarms. The pass rate of every grader and configured slice with enough baseline verdicts is
watched, and so is every grader's share of error verdicts (a grader whose target a deploy
broke errors on every span, which the pass rate leaves out); each check gets ``alpha / m`` of
the watch's false-alarm budget.

A finding is raised once: its key goes into the ``alerts`` table before it is announced, and a
finding already there is never announced again (a delivery that failed or was interrupted gives
the claim back so the next tick, or the next run, retries — the finding is still shown to the
caller then, so stdout says it twice in that case). Findings go to the caller (stdout) and, when
configured, to a Slack-compatible incoming webhook as ``{"text": ..., "blocks": [...]}``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade.analysis import sequential
from tracegrade.analysis._aggregate import tally_verdicts
from tracegrade.analysis.errors import NotEnoughReleases
from tracegrade.analysis.rates import PassRate, rates_in_order
from tracegrade.analysis.regressions import (
    MIN_ERROR_RISE,
    Comparison,
    RegressionSettings,
    build_comparisons,
    choose_releases,
    configured,
    replay_only_releases,
)
from tracegrade.config import Config
from tracegrade.graders import build_graders
from tracegrade.grading import GradeSummary, grade
from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

STATUS = "regressed"
ERRORS_STATUS = "errors_rose"
"""A finding's status: its pass rate fell, or its share of error verdicts rose (errors are
left out of the pass rate, so a grader whose target vanished in a deploy would otherwise look
unchanged)."""


@dataclass(frozen=True)
class WatchFinding:
    """A grader (or slice) that the e-process says fails (or errors) more in the candidate."""

    grader: str
    grader_version: str
    slice: str | None
    baseline_release: str
    release: str
    baseline: PassRate
    candidate: PassRate
    check: sequential.SequentialCheck
    status: str = STATUS

    @property
    def key(self) -> str:
        """What makes this finding the same finding on every tick (the ``alerts`` key)."""
        key = "|".join(("watch", self.grader, self.grader_version, self.baseline_release,
                        self.release, self.slice or "", self.status))
        if len(key) <= 300:
            return key
        return f"watch|{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}"

    @property
    def label(self) -> str:
        """``grader`` or ``grader [slice]``."""
        return self.grader if self.slice is None else f"{self.grader} [{self.slice}]"

    def text(self) -> str:
        """One line for people."""
        b, c = self.baseline, self.candidate
        evidence = f"e-value {self.check.e_value:.3g} ≥ {self.check.threshold:.3g}"
        if self.status == ERRORS_STATUS:
            return (f"{self.label} errors rose in {self.release} (vs {self.baseline_release}): "
                    f"{_pct(c.error_share)} of {c.decided + c.errors:,} verdicts were errors "
                    f"vs {_pct(b.error_share)} of {b.decided + b.errors:,}; {evidence}")
        drop = ((c.rate or 0.0) - (b.rate or 0.0)) * 100
        return (f"{self.label} regressed in {self.release} (vs {self.baseline_release}): "
                f"pass rate {_pct(c.rate)} of {c.decided:,} vs {_pct(b.rate)} of "
                f"{b.decided:,} ({drop:+.1f} pts); e-value {self.check.e_value:.3g} "
                f"≥ {self.check.threshold:.3g}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "key": self.key, "status": self.status, "grader": self.grader,
            "grader_version": self.grader_version, "slice": self.slice,
            "baseline_release": self.baseline_release, "release": self.release,
            "baseline": self.baseline.as_dict(), "candidate": self.candidate.as_dict(),
            **self.check.as_dict(),
        }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def slack_payload(finding: WatchFinding) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: a plain ``text`` fallback and Block Kit ``blocks``."""
    b, c = finding.baseline, finding.candidate
    fields = [
        ("Grader", f"`{finding.label}`"),
        ("Release", f"{finding.release} (vs {finding.baseline_release})"),
        ("Pass rate", f"{_pct(c.rate)} of {c.decided:,} (was {_pct(b.rate)} of {b.decided:,})"),
        ("Errors", f"{c.errors:,} (was {b.errors:,})"),
        ("Evidence", f"e-value {finding.check.e_value:.3g} ≥ {finding.check.threshold:.3g} "
                     "(anytime-valid)"),
    ]
    title = "Errors rose" if finding.status == ERRORS_STATUS else "Regression"
    return {
        "text": f"tracegrade: {finding.text()}",
        "blocks": [
            {"type": "header",
             "text": {"type": "plain_text", "text": f"{title}: {finding.label}"[:150]}},
            {"type": "section",
             "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                        for name, value in fields]},
        ],
    }


# -- detection ---------------------------------------------------------------------------------


@dataclass
class Detection:
    """One look at the latest release: every watched comparison's e-value, and the alarms."""

    baseline: str | None = None
    candidate: str | None = None
    watched: int = 0
    """Graders and slices whose pass rate is watched."""
    errors_watched: int = 0
    """Graders whose share of error verdicts is watched."""
    findings: list[WatchFinding] = field(default_factory=list)
    waiting: str | None = None
    """Why nothing could be checked yet (e.g. only one release has verdicts)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"baseline": self.baseline, "candidate": self.candidate,
                "watched": self.watched, "errors_watched": self.errors_watched,
                "findings": [f.as_dict() for f in self.findings],
                "waiting": self.waiting}


def detect(store: Store, settings: RegressionSettings, alpha: float) -> Detection:
    """Check every grader and slice of the latest release against the one before, and every
    grader's share of error verdicts.

    Args:
        store: the store.
        settings: which releases, strata and slices (the ``analysis:`` config).
        alpha: the chance of any false alarm over the whole watch of a release.
    """
    tallies = tally_verdicts(store, settings.releases, settings.slices, settings.environment)
    overall = tallies.overall()
    try:
        baseline, candidate = choose_releases(rates_in_order(overall), None, None,
                                              replay_only_releases(store, settings.releases))
    except NotEnoughReleases as exc:
        return Detection(waiting=str(exc))
    plain = replace(settings, strata=())  # the tallies hold slices only
    every = build_comparisons(tallies, overall, baseline, candidate, plain)
    comparisons = [c for c in every if c.baseline.decided >= settings.min_decided]
    # Which checks run depends on the baseline only, so the budget split stays the same look
    # after look.
    error_checks = [c for c in every if c.finding.slice is None
                    and c.baseline.decided + c.baseline.errors >= settings.min_decided]
    detection = Detection(baseline, candidate, len(comparisons), len(error_checks))
    each = alpha / max(len(comparisons) + len(error_checks), 1)
    for comparison in comparisons:
        found = _check(comparison, each, baseline, candidate)
        if found is not None:
            detection.findings.append(found)
    for comparison in error_checks:
        found = _check_errors(comparison, each, baseline, candidate)
        if found is not None:
            detection.findings.append(found)
    # A grader alarming overall alarms in most of its slices too; announce the grader alone.
    alarming = {(f.grader, f.grader_version) for f in detection.findings
                if f.slice is None and f.status == STATUS}
    detection.findings = [f for f in detection.findings
                          if f.slice is None or (f.grader, f.grader_version) not in alarming]
    return detection


def _check(comparison: Comparison, alpha: float, baseline: str, candidate: str
           ) -> WatchFinding | None:
    b, c = comparison.finding.baseline, comparison.finding.candidate
    if b.rate is None or c.rate is None or c.decided == 0:
        return None
    # The e-process bets on the verdicts as they arrive, so it takes their counts as sampled.
    # Weighted "effective" counts recomputed at every look are no stream of outcomes: with
    # unequal inclusion probabilities they broke the guarantee (a 12% false alarm rate at
    # alpha 5% in a simulation). With equal probabilities the two are the same numbers.
    result = sequential.check(b.failed, b.decided, c.failed, c.passed, alpha)
    if not result.alarm:
        return None
    f = comparison.finding
    return WatchFinding(f.grader, f.grader_version, None if f.slice is None else str(f.slice),
                        baseline, candidate, b, c, result)


def _check_errors(comparison: Comparison, alpha: float, baseline: str, candidate: str
                  ) -> WatchFinding | None:
    """The same e-process on the share of error verdicts among those not skipped."""
    b, c = comparison.finding.baseline, comparison.finding.candidate
    if c.errors == 0:
        return None
    result = sequential.check(b.errors, b.decided + b.errors, c.errors, c.decided, alpha)
    rise = (c.error_share or 0.0) - (b.error_share or 0.0)
    if not result.alarm or rise < MIN_ERROR_RISE:  # as `regressions` asks of an error rise
        return None
    f = comparison.finding
    return WatchFinding(f.grader, f.grader_version, None, baseline, candidate, b, c, result,
                        ERRORS_STATUS)


# -- alerts: each finding once ---------------------------------------------------------------------


def claim_alert(store: Store, finding: WatchFinding, delivered_to: list[str]) -> bool:
    """Record the finding in ``alerts``; False when it was already there (already announced)."""
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(t.alerts).values(
        key=finding.key, grader=finding.grader, grader_version=finding.grader_version,
        release=finding.release, status=STATUS, sent_at=utc_now(),
        payload={**finding.as_dict(), "delivered_to": delivered_to},
    ).on_conflict_do_nothing(index_elements=["key"]).returning(t.alerts.c.key)
    with store.engine.begin() as conn:
        return conn.execute(statement).first() is not None


def release_alert(store: Store, finding: WatchFinding) -> None:
    """Give a claim back (its delivery failed) so the next tick announces it again."""
    with store.engine.begin() as conn:
        conn.execute(delete(t.alerts).where(t.alerts.c.key == finding.key))


class WebhookError(Exception):
    """The webhook could not be reached or refused the message."""


def idempotency_key(finding: WatchFinding) -> str:
    """The ``Idempotency-Key`` header of a finding's every delivery attempt."""
    return hashlib.blake2b(finding.key.encode(), digest_size=16).hexdigest()


def post_webhook(url: str, payload: dict[str, Any],
                 sleep: Callable[[float], None] = time.sleep, *,
                 idempotency: str | None = None) -> None:
    """POST a JSON payload through tracegrade's shared HTTP policy (retries, backoff).

    Delivery is at least once: an attempt that timed out may have arrived, and is sent again.
    ``idempotency`` goes out as the ``Idempotency-Key`` header, the same on every attempt, so a
    receiver that honours it keeps one copy (Slack's incoming webhooks do not).

    Raises:
        WebhookError: the retries ran out or the endpoint refused; the message never contains
            the URL's secret path.
    """
    from tracegrade.sources._http import HttpClient, RemoteError, RetryPolicy

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WebhookError("the webhook must be an http(s) URL")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    policy = RetryPolicy(max_retries=3, timeout_s=10.0, backoff_max_s=10.0)
    with HttpClient(f"{parts.scheme}://{parts.netloc}", service="webhook", policy=policy,
                    secrets=[path, parts.path], sleep=sleep) as client:
        try:
            client.request("POST", path, json=payload,
                           headers={"Idempotency-Key": idempotency} if idempotency else None)
        except RemoteError as exc:
            raise WebhookError(str(exc)) from None


# -- the loop --------------------------------------------------------------------------------------


@dataclass
class Tick:
    """What one round of the watch did."""

    at: datetime
    pulled: dict[str, Any] | None = None
    graded: GradeSummary | None = None
    detection: Detection = field(default_factory=Detection)
    new_findings: list[WatchFinding] = field(default_factory=list)
    undelivered: list[WatchFinding] = field(default_factory=list)
    """New findings the webhook did not take: shown anyway, and sent again next round."""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "at": self.at.isoformat(), "pulled": self.pulled,
            "graded": self.graded.as_dict() if self.graded else None,
            "detection": self.detection.as_dict(),
            "new_findings": [f.as_dict() for f in self.new_findings],
            "undelivered_findings": [f.as_dict() for f in self.undelivered],
            "problems": self.problems,
        }


def watch_once(store: Store, config: Config, *, webhook: str | None = None,
               pull: bool = True, sleep: Callable[[float], None] = time.sleep) -> Tick:
    """One tick: pull (when sources are configured), grade, detect, announce new findings."""
    tick = Tick(at=utc_now())
    config.require_graders()  # before pulling: a tick that cannot grade should not pull either
    if pull and config.sources:
        from tracegrade.sources.pull import pull_sources

        tick.pulled = pull_sources(store, config).as_dict()
    graders = build_graders(config.graders)
    if graders:
        tick.graded = grade(store, graders, config.sampling)
    settings = RegressionSettings.from_config(config.analysis, **configured(config.graders))
    tick.detection = detect(store, settings, config.analysis.watch.alpha)
    for finding in tick.detection.findings:
        _announce(store, finding, webhook, tick, sleep)
    return tick


def _announce(store: Store, finding: WatchFinding, webhook: str | None, tick: Tick,
              sleep: Callable[[float], None]) -> None:
    if not claim_alert(store, finding, ["stdout", "webhook"] if webhook else ["stdout"]):
        return
    if webhook:
        try:
            post_webhook(webhook, slack_payload(finding), sleep=sleep,
                         idempotency=idempotency_key(finding))
        except WebhookError as exc:
            release_alert(store, finding)
            tick.problems.append(f"webhook: {exc}")
            tick.undelivered.append(finding)
            return
        except BaseException:
            # Ctrl-C (or any failure) mid-delivery: the alert was not sent, so give the claim
            # back for the next run to announce, then let the interruption go on.
            release_alert(store, finding)
            raise
    tick.new_findings.append(finding)


def run_watch(store: Store, config: Config, *, every_minutes: float,
              on_tick: Callable[[Tick], None], webhook: str | None = None,
              iterations: int | None = None,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Tick every ``every_minutes`` until interrupted (or ``iterations`` ticks)."""
    done = 0
    while iterations is None or done < iterations:
        started = time.monotonic()
        on_tick(watch_once(store, config, webhook=webhook, sleep=sleep))
        done += 1
        if iterations is not None and done >= iterations:
            return
        sleep(max(0.0, every_minutes * 60 - (time.monotonic() - started)))
