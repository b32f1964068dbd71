"""Fixtures running the fake services, and config builders pointing tracegrade at them.

Test packages that use them import them in their ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.fakes.braintrust import API_KEY, PROJECT_ID, FakeBraintrust
from tests.fakes.langfuse import PUBLIC_KEY, SECRET_KEY, FakeLangfuse
from tracegrade.config import Config, parse_config
from tracegrade.store import Store
from tracegrade.store import _schema as t

FAST_HTTP: dict[str, Any] = {"timeout_s": 2.0, "max_retries": 4, "backoff_base_s": 0.001,
                             "backoff_max_s": 0.005, "retry_after_max_s": 0.01}
"""Retries with sleeps of milliseconds, so fault tests stay fast."""


@pytest.fixture
def fake_langfuse() -> Iterator[FakeLangfuse]:
    """A fake Langfuse on 127.0.0.1; the test fails if it sent anything off-spec."""
    fake = FakeLangfuse()
    fake.server.start()
    yield fake
    fake.server.stop()
    assert fake.server.crashes == [], "the fake Langfuse crashed"
    assert fake.violations == [], "the fake Langfuse drifted from the spec"


@pytest.fixture
def fake_braintrust() -> Iterator[FakeBraintrust]:
    """A fake Braintrust on 127.0.0.1; the test fails if it sent anything off-spec."""
    fake = FakeBraintrust()
    fake.server.start()
    yield fake
    fake.server.stop()
    assert fake.server.crashes == [], "the fake Braintrust crashed"
    assert fake.violations == [], "the fake Braintrust drifted from the spec"


def langfuse_source(fake: FakeLangfuse, name: str = "prod", **settings: Any) -> dict[str, Any]:
    """A ``langfuse`` source entry pointing at the fake."""
    return {"name": name, "type": "langfuse", "host": fake.server.url,
            "public_key": PUBLIC_KEY, "secret_key": SECRET_KEY, "page_size": 50,
            "http": dict(FAST_HTTP), **settings}


def braintrust_source(fake: FakeBraintrust, name: str = "bt", **settings: Any
                      ) -> dict[str, Any]:
    """A ``braintrust`` source entry pointing at the fake (by project id unless overridden)."""
    return {"name": name, "type": "braintrust", "api_url": fake.server.url,
            "api_key": API_KEY, "project_id": PROJECT_ID, "page_size": 50,
            "http": dict(FAST_HTTP), **settings}


def config_of(*sources: dict[str, Any], **settings: Any) -> Config:
    """A validated config holding these sources."""
    return parse_config({"sources": list(sources), **settings})


def stored_ids(store: Store, source: str) -> list[str]:
    """Every stored span id of a source, sorted (the store's key makes each appear once)."""
    query = select(t.spans.c.span_id).where(t.spans.c.source == source)
    with store.engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(query))
