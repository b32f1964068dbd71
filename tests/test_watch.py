"""``tracegrade watch``: pull, grade, detect; each finding announced once, to a real webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import BASE_TIME, make_span
from tracegrade.cli import cli
from tracegrade.config import parse_config
from tracegrade.store import Store, VerdictRow
from tracegrade.store import _schema as t
from tracegrade.watch import idempotency_key, run_watch, slack_payload, watch_once

SECRET_PATH = "/services/T000/B000/s3cr3tTokenXYZ"


class Webhook:
    """A Slack-like incoming webhook on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.idempotency_keys: list[str | None] = []  # of every attempt, failed ones too
        self.fail_next = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.idempotency_keys.append(self.headers.get("Idempotency-Key"))
                if hook.fail_next:
                    hook.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.received.append(json.loads(body))
                hook.paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def seed(store: Store, release: str, passed: int, failed: int, offset: int,
         environment: str = "prod", fail_probability: float = 1.0, errors: int = 0) -> None:
    spans, verdicts = [], []
    for n, outcome in enumerate(["pass"] * passed + ["fail"] * failed + ["error"] * errors):
        i = offset + n
        start = BASE_TIME + timedelta(days=7 if release == "r2" else 0, seconds=i)
        spans.append(make_span(i, release=release, start_time=start, environment=environment))
        verdicts.append(VerdictRow(source="test", span_id=f"span-{i:06d}", grader="g",
                                   grader_version="v", outcome=outcome, reason="",
                                   inclusion_probability=fail_probability
                                   if outcome == "fail" else 1.0, run_id="r"))
    store.upsert_spans(spans)
    store.insert_verdicts(verdicts)


def config(store_url: str, **analysis: Any) -> Any:
    return parse_config({"store": store_url, "analysis": {"slices": [], **analysis}})


def no_sleep(_: float) -> None:
    pass


def alert_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.alerts)).scalar_one())


def test_a_regression_is_announced_once(store: Store, store_url: str, webhook: Webhook) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    first = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert [f.grader for f in first.new_findings] == ["g"]
    assert first.detection.watched == 1 and first.problems == []
    second = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert second.detection.findings and not second.new_findings
    assert len(webhook.received) == 1 and webhook.paths == [SECRET_PATH]
    message = webhook.received[0]
    assert message["text"].startswith("tracegrade: g regressed in r2 (vs r1)")
    assert [block["type"] for block in message["blocks"]] == ["header", "section"]
    assert alert_rows(store) == 1


def test_no_change_raises_nothing(store: Store, store_url: str, webhook: Webhook) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 380, 20, 10_000)
    tick = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert tick.detection.watched == 1 and tick.detection.findings == []
    assert webhook.received == [] and alert_rows(store) == 0


def test_the_watch_bets_on_verdicts_as_sampled_not_on_reweighted_counts(
        store: Store, store_url: str, webhook: Webhook) -> None:
    # The same sampled verdicts in both releases; the candidate's failures were sampled at 1%
    # (a stratum floor), so reweighted they would read as an 84% failure rate. Recomputing
    # weighted counts at each look is no stream of outcomes and voids the anytime guarantee.
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 950, 50, 10_000, fail_probability=0.01)
    tick = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert tick.detection.watched == 1 and tick.detection.findings == []


def test_a_failed_delivery_is_retried_next_round(store: Store, store_url: str,
                                                 webhook: Webhook) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    webhook.fail_next = 10  # more than the retries of one round
    failed = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert failed.new_findings == [] and len(failed.problems) == 1
    assert [f.grader for f in failed.undelivered] == ["g"]  # still shown to the caller
    assert "s3cr3tTokenXYZ" not in failed.problems[0]  # the URL's secret is never printed
    assert alert_rows(store) == 0
    webhook.fail_next = 0
    retried = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert [f.grader for f in retried.new_findings] == ["g"]
    assert len(webhook.received) == 1
    # Every attempt of every round carries the finding's one idempotency key, so a receiver
    # that honours it drops a copy sent again after a timeout it had in fact received.
    assert len(webhook.idempotency_keys) == 5 and len(set(webhook.idempotency_keys)) == 1
    assert webhook.idempotency_keys[0] == idempotency_key(retried.new_findings[0])


def test_a_grader_that_starts_erroring_is_a_finding_though_its_pass_rate_holds(
        store: Store, store_url: str, webhook: Webhook) -> None:
    seed(store, "r1", 950, 50, 0, errors=2)
    seed(store, "r2", 95, 5, 10_000, errors=300)  # a deploy broke the grader's target
    tick = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert (tick.detection.watched, tick.detection.errors_watched) == (1, 1)
    [finding] = tick.new_findings
    assert (finding.grader, finding.status) == ("g", "errors_rose")
    assert finding.text().startswith("g errors rose in r2 (vs r1): 75.0% of 400 verdicts were "
                                     "errors vs 0.2% of 1,002")
    assert webhook.received[0]["blocks"][0]["text"]["text"] == "Errors rose: g"
    assert orjson.loads(orjson.dumps(tick.as_dict()))["new_findings"][0]["status"] == \
        "errors_rose"
    # The same error share in both releases is no finding.
    store_same = watch_once(store, config(store_url, min_decided=10), sleep=no_sleep)
    assert not store_same.new_findings  # already announced; and nothing else alarms
    assert [f.status for f in store_same.detection.findings] == ["errors_rose"]


def test_errors_as_common_as_before_raise_nothing(store: Store, store_url: str) -> None:
    seed(store, "r1", 900, 50, 0, errors=50)
    seed(store, "r2", 360, 20, 10_000, errors=20)
    tick = watch_once(store, config(store_url), sleep=no_sleep)
    assert tick.detection.errors_watched == 1 and tick.detection.findings == []


def test_a_delivery_interrupted_by_ctrl_c_is_announced_by_the_next_run(
        store: Store, store_url: str, webhook: Webhook) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    webhook.fail_next = 1

    def ctrl_c(_: float) -> None:  # pressed while backing off before the retry
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        watch_once(store, config(store_url), webhook=webhook.url, sleep=ctrl_c)
    assert webhook.received == [] and alert_rows(store) == 0
    again = watch_once(store, config(store_url), webhook=webhook.url, sleep=no_sleep)
    assert [f.grader for f in again.new_findings] == ["g"]
    assert len(webhook.received) == 1 and alert_rows(store) == 1


def test_a_small_slice_is_watched_on_its_own(store: Store, store_url: str) -> None:
    seed(store, "r1", 1950, 50, 0)
    seed(store, "r1", 50, 0, 5_000, environment="eu")
    seed(store, "r2", 1950, 50, 10_000)
    seed(store, "r2", 25, 25, 15_000, environment="eu")
    tick = watch_once(store, config(store_url, slices=["environment"]), sleep=no_sleep)
    assert tick.detection.watched == 3
    assert [f.label for f in tick.new_findings] == ["g [environment=eu]"]


def test_watch_pulls_file_sources_and_grades(store_url: str, workspace: Path) -> None:
    lines = []
    for i in range(300):
        release = "r1" if i < 200 else "r2"
        output = {"reply": "fine" if release == "r1" or i % 2 else "ERROR: upstream"}
        span = make_span(i, release=release, output=output,
                         start_time=BASE_TIME + timedelta(days=7 * (release == "r2"), seconds=i))
        lines.append(span.model_dump_json())
    (workspace / "spans.jsonl").write_text("\n".join(lines) + "\n")
    cfg = parse_config({
        "store": store_url, "analysis": {"slices": []},
        "sources": [{"name": "files", "type": "jsonl", "paths": [str(workspace / "*.jsonl")]}],
        "graders": [{"name": "no_error", "type": "not_contains", "applies_to": {"kind": "llm"},
                     "target": "output", "value": "ERROR"}],
    })
    ticks: list[Any] = []
    from tracegrade.store import open_store

    with open_store(store_url) as store:
        run_watch(store, cfg, every_minutes=0.01, on_tick=ticks.append, iterations=2,
                  sleep=no_sleep)
    assert ticks[0].pulled is not None and ticks[0].graded.verdicts_written == 300
    assert ticks[1].graded.verdicts_written == 0  # nothing new the second time
    assert [f.grader for f in ticks[0].new_findings] == ["no_error"]
    assert ticks[1].new_findings == []


def test_slack_payload_shape(store: Store, store_url: str) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    finding = watch_once(store, config(store_url), sleep=no_sleep).new_findings[0]
    payload = slack_payload(finding)
    assert set(payload) == {"text", "blocks"}
    header, section = payload["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "Regression: g"}
    assert any("70.0% of 400 (was 95.0% of 1,000)" in f["text"] for f in section["fields"])
    orjson.dumps(payload)


def test_watch_command_once(store: Store, store_url: str, webhook: Webhook,
                            workspace: Path) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    Path("tracegrade.yaml").write_text(f"store: '{store_url}'\nanalysis: {{slices: []}}\n")
    first = CliRunner().invoke(cli, ["watch", "--once", "--webhook", webhook.url])
    assert first.exit_code == 1, first.output
    assert first.stdout.startswith("REGRESSED g regressed in r2 (vs r1)")
    again = CliRunner().invoke(cli, ["watch", "--once", "--webhook", webhook.url,
                                     "--format", "json"])
    assert again.exit_code == 0, again.output
    assert orjson.loads(again.stdout)["new_findings"] == []
    assert len(webhook.received) == 1


def test_watch_once_shows_findings_the_webhook_did_not_take_and_exits_1(
        store: Store, store_url: str, workspace: Path) -> None:
    seed(store, "r1", 950, 50, 0)
    seed(store, "r2", 280, 120, 10_000)
    Path("tracegrade.yaml").write_text(f"store: '{store_url}'\nanalysis: {{slices: []}}\n")
    result = CliRunner().invoke(cli, ["watch", "--once", "--webhook",
                                      "http://127.0.0.1:9/hook"])  # nothing listens there
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("REGRESSED g regressed in r2 (vs r1)")
    assert "the webhook did not take it: sent again next round" in result.stdout
    assert "problem: webhook" in result.stderr and "1 alarming, 1 new" in result.stderr
    assert alert_rows(store) == 0  # so the next round sends it again


def test_watch_once_with_nothing_to_watch_is_a_usage_error(workspace: Path, store: Store,
                                                           store_url: str) -> None:
    missing = CliRunner().invoke(cli, ["watch", "--once"])  # no config, no store here
    assert missing.exit_code == 2, missing.output
    assert missing.stderr.startswith("Error: no store at ")
    assert not Path(".tracegrade").exists()  # and none was made
    Path("tracegrade.yaml").write_text(f"store: '{store_url}'\n")  # migrated, no verdicts
    empty = CliRunner().invoke(cli, ["watch", "--once"])
    assert empty.exit_code == 2, empty.output
    assert empty.stderr.startswith("Error: nothing to watch: no graders configured and no "
                                   "verdicts in the store")


def test_watch_with_a_judge_without_api_key_is_one_line(store: Store, store_url: str,
                                                        workspace: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seed(store, "r1", 10, 0, 0)
    Path("tracegrade.yaml").write_text(
        f"store: '{store_url}'\njudges:\n  default: {{model: gpt-4.1-mini}}\n"
        "graders:\n  - {name: answers, type: llm_judge, applies_to: {kind: llm}, "
        "rubric: 'Does it answer? {{ span.output_text }}'}\n")
    result = CliRunner().invoke(cli, ["watch", "--once"])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: LLM judge: judge model 'gpt-4.1-mini' has no API "
                                    "key: set api_key")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "code", "said"), [
    (["watch"], 0, "Stopped."),  # Ctrl-C is how a watch ends
    (["watch", "--once"], 130, "Error: interrupted"),  # an interrupted round, as any command
])
def test_ctrl_c_during_watch(store_url: str, workspace: Path, monkeypatch: pytest.MonkeyPatch,
                             args: list[str], code: int, said: str) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    import tracegrade.cli._watch as watch_cli

    monkeypatch.setattr(watch_cli, "run_watch", interrupted)
    Path("tracegrade.yaml").write_text(f"store: '{store_url}'\ngraders:\n"
                                       "  - {name: ok, type: status_ok}\n")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert result.stderr.strip() == said
