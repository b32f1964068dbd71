"""Pulls under fire: after every fault the store holds exactly what the server has, each once.

Faults are injected by the fake servers on the page request *after* the first page was served:
rate limits, server errors, connection resets, a response slower than the timeout, a body cut
off mid-way; then the data-level ones: a row on two pages, a row updated or arriving late while
a pull runs, retries running out, and a pull killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes._server import Fault, Reset, Slow, Status, Truncate
from tests.fakes.braintrust import FakeBraintrust, log_row
from tests.fakes.fixtures import braintrust_source, config_of, langfuse_source, stored_ids
from tests.fakes.langfuse import SECRET_KEY, FakeLangfuse, observation
from tracegrade.config import Config
from tracegrade.sources.pull import load_cursor, pull_sources
from tracegrade.store import Store

NOW = datetime.now(tz=UTC)  # reset for each test by the wall_clock fixture
pytestmark = pytest.mark.usefixtures("wall_clock")
ROWS = 130  # three pages of 50


@dataclass
class Service:
    """One fake service, seeded, with the config pointing at it."""

    kind: str
    fake: FakeLangfuse | FakeBraintrust
    source: dict[str, Any]
    paging_path: str

    @property
    def name(self) -> str:
        return str(self.source["name"])

    def config(self, **http: Any) -> Config:
        return config_of({**self.source, "http": {**self.source["http"], **http}})

    def server_ids(self) -> list[str]:
        if isinstance(self.fake, FakeLangfuse):
            return sorted(self.fake.observations)
        return sorted(row["span_id"] for row in self.fake.latest().values())

    def after_first_page(self, action: Any) -> None:
        def hook(page: int) -> None:
            if page == 1:
                action()
        self.fake.on_page = hook


def make_service(kind: str, langfuse: FakeLangfuse, braintrust: FakeBraintrust) -> Service:
    # Recent rows, inside the 15-minute overlap: where late arrivals and updates happen.
    start = NOW - timedelta(minutes=8)
    if kind == "langfuse":
        langfuse.add(*[observation(i, start + timedelta(seconds=i)) for i in range(ROWS)])
        return Service(kind, langfuse, langfuse_source(langfuse), "/api/public/v2/observations")
    braintrust.insert(*[log_row(i, start + timedelta(seconds=i)) for i in range(ROWS)])
    return Service(kind, braintrust, braintrust_source(braintrust), "/btql")


@pytest.fixture(params=["langfuse", "braintrust"])
def service(request: pytest.FixtureRequest, fake_langfuse: FakeLangfuse,
            fake_braintrust: FakeBraintrust) -> Service:
    return make_service(request.param, fake_langfuse, fake_braintrust)


def assert_exact_and_stable(store: Store, service: Service, config: Config) -> None:
    """The store holds exactly the server's spans, and pulling again changes nothing."""
    assert stored_ids(store, service.name) == service.server_ids()
    again = pull_sources(store, config).sources[0]
    assert again.error is None
    assert (again.counts.inserted, again.counts.updated) == (0, 0)
    assert stored_ids(store, service.name) == service.server_ids()


FAULTS: dict[str, list[Fault]] = {
    "429 with Retry-After": [Status(429, {"Retry-After": "1"}, {"message": "slow down"})],
    "429 with X-RateLimit-Reset": [Status(429, {"X-RateLimit-Reset": "1"})],
    "500": [Status(500, body="internal error")],
    "502": [Status(502, body="bad gateway")],
    "503 twice": [Status(503, {"Retry-After": "0"}), Status(503)],
    "connection reset": [Reset()],
    "slower than the timeout": [Slow(1.5)],
    "truncated JSON body": [Truncate(0.6)],
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_transient_fault_mid_pull_is_retried_and_nothing_is_lost_or_doubled(
        store: Store, service: Service, fault: str) -> None:
    service.after_first_page(lambda: service.fake.server.faults.add(
        service.paging_path, *FAULTS[fault]))
    config = service.config(timeout_s=0.5) if fault == "slower than the timeout" \
        else service.config()

    result = pull_sources(store, config).sources[0]

    assert result.error is None
    assert service.fake.server.faults.fired, "the fault was never injected"
    assert service.fake.server.faults.pending == 0
    assert_exact_and_stable(store, service, config)


def test_when_retries_run_out_the_cursor_stays_and_the_next_pull_resumes(
        store: Store, service: Service) -> None:
    service.after_first_page(lambda: service.fake.server.faults.add(
        service.paging_path, *[Status(503)] * 5))  # max_retries 4: five attempts, all fail
    config = service.config()

    failed = pull_sources(store, config).sources[0]

    assert failed.error is not None and "after 5 attempt(s)" in failed.error
    checkpoint = load_cursor(store, service.name).checkpoint
    assert checkpoint is not None and checkpoint.resume is not None
    assert len(stored_ids(store, service.name)) == 50  # the first page, committed
    service.fake.on_page = None
    before = len(service.fake.server.requests_to(service.paging_path))

    resumed = pull_sources(store, config).sources[0]

    first_request = service.fake.server.requests_to(service.paging_path)[before]
    sent = first_request.param("cursor") or str((first_request.json() or {}).get("query"))
    assert "OFFSET" in sent or first_request.param("cursor")
    assert resumed.error is None and resumed.counts.inserted == ROWS - 50
    assert_exact_and_stable(store, service, config)


def test_the_same_backfill_run_again_after_a_failure_resumes_it(
        store: Store, service: Service) -> None:
    service.after_first_page(lambda: service.fake.server.faults.add(
        service.paging_path, *[Status(503)] * 5))
    config = service.config()
    since = NOW - timedelta(days=2)

    failed = pull_sources(store, config, since=since).sources[0]

    assert failed.error is not None and len(stored_ids(store, service.name)) == 50
    service.fake.on_page = None
    before = len(service.fake.server.requests_to(service.paging_path))

    resumed = pull_sources(store, config, since=since).sources[0]  # the same command again

    first_request = service.fake.server.requests_to(service.paging_path)[before]
    sent = first_request.param("cursor") or str((first_request.json() or {}).get("query"))
    assert "OFFSET" in sent or first_request.param("cursor")  # not page one again
    assert resumed.error is None and resumed.counts.inserted == ROWS - 50
    assert_exact_and_stable(store, service, config)


def test_an_until_in_the_future_stops_at_now(store: Store, service: Service) -> None:
    config = service.config()
    far = NOW + timedelta(days=400)  # a typo in the year

    pull_sources(store, config, since=NOW - timedelta(days=2), until=far)

    watermark = load_cursor(store, service.name).watermark
    assert watermark is not None and watermark <= datetime.now(tz=UTC)
    late = (observation(ROWS + 1, datetime.now(tz=UTC) - timedelta(seconds=5))
            if isinstance(service.fake, FakeLangfuse)
            else log_row(ROWS + 1, datetime.now(tz=UTC) - timedelta(seconds=5)))
    if isinstance(service.fake, FakeLangfuse):
        service.fake.add(late)
    else:
        service.fake.insert(late)
    assert pull_sources(store, config).sources[0].counts.inserted == 1  # later pulls still read


def test_the_same_row_on_two_pages_is_stored_once(store: Store,
                                                  fake_langfuse: FakeLangfuse) -> None:
    service = make_service("langfuse", fake_langfuse, FakeBraintrust(validate=False))
    fake_langfuse.repeat_boundary_row_once = True
    config = service.config()

    result = pull_sources(store, config).sources[0]

    assert result.rows == ROWS + 1 and result.spans_read == ROWS + 1
    assert result.counts.inserted == ROWS
    assert_exact_and_stable(store, service, config)


def test_a_row_updated_after_it_was_read_is_updated_by_the_next_pull(
        store: Store, service: Service) -> None:
    first_row = service.server_ids()[-1]  # newest first for Langfuse: on page 1
    if isinstance(service.fake, FakeBraintrust):
        first_row = service.server_ids()[0]  # oldest first for BTQL
    changed = {"output": '{"answer": "changed"}'} if service.kind == "langfuse" \
        else {"output": {"answer": "changed"}}
    row_id = first_row.replace("span-", "row-") if service.kind == "braintrust" else first_row
    service.after_first_page(lambda: service.fake.update(row_id, **changed))
    config = service.config()

    pull_sources(store, config)
    pull_sources(store, config)

    span = store.get_span(service.name, first_row)
    assert span is not None and span.output == {"answer": "changed"}
    assert_exact_and_stable(store, service, config)


def test_a_row_arriving_late_inside_the_overlap_is_pulled_next_time(
        store: Store, service: Service) -> None:
    late_start = NOW - timedelta(minutes=12)  # before the pull's window end, inside overlap

    def arrive_late() -> None:
        if isinstance(service.fake, FakeLangfuse):
            service.fake.add(observation(900, late_start))
        else:
            service.fake.insert(log_row(900, datetime.now(tz=UTC)))

    service.after_first_page(arrive_late)
    config = service.config()
    pull_sources(store, config)
    pull_sources(store, config)

    assert "obs-0000900" in service.server_ids() or "span-0000900" in service.server_ids()
    assert_exact_and_stable(store, service, config)


def test_a_pull_killed_mid_way_resumes_and_ends_exact(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse, workspace: Path) -> None:
    service = make_service("langfuse", fake_langfuse, FakeBraintrust(validate=False))
    release = threading.Event()
    third_page_asked = threading.Event()

    def hold_the_third_page(page: int) -> None:
        if page == 3:
            third_page_asked.set()
            release.wait(20)

    fake_langfuse.on_page = hold_the_third_page
    source = {**service.source, "secret_key": "${LANGFUSE_SECRET_KEY}"}
    Path("tracegrade.yaml").write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, "-m", "tracegrade", "--store", store_url, "pull"],
        cwd=workspace, env={**os.environ, "LANGFUSE_SECRET_KEY": SECRET_KEY},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert third_page_asked.wait(60), "the pull never reached its third page"
        # Kill once a page is committed *and* its cursor saved: between the two, the saved
        # cursor still says "start of the window", which resumes correctly but proves less.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                stored_ids(store, "prod") and _resume_saved(store, "prod")):
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(20)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert 0 < len(stored_ids(store, "prod")) < ROWS
    checkpoint = load_cursor(store, "prod").checkpoint
    assert checkpoint is not None and checkpoint.resume is not None
    fake_langfuse.on_page = None

    resumed = pull_sources(store, service.config()).sources[0]

    assert resumed.error is None and resumed.windows[0] == checkpoint.window
    assert_exact_and_stable(store, service, service.config())


def _resume_saved(store: Store, source: str) -> bool:
    checkpoint = load_cursor(store, source).checkpoint
    return checkpoint is not None and checkpoint.resume is not None
