"""How well a golden dataset still covers production traffic, and what to add to it.

Golden and production inputs are embedded together (see :mod:`tracegrade.analysis.embedding`).
Then:

- production inputs are clustered (``MiniBatchKMeans``) and golden items assigned to the nearest
  cluster; each cluster gets its share of production and of the golden set, a name (its most
  distinctive terms), example inputs, its coverage (below), and a two-sided binomial test of the
  golden count against the production share (Benjamini-Hochberg across clusters). A cluster
  holding at least ``min_share`` of production is **missing** from the golden set when most of
  its inputs are uncovered, or when it has no golden item where the test says it should;
- a classifier two-sample test: a logistic regression tells golden from production inputs, and
  its cross-validated ROC AUC (0.5 = indistinguishable) comes with a Mann-Whitney p-value;
- nearest-neighbour coverage: a production input is covered when its nearest golden item is no
  farther than 95% of golden items are from their own nearest other golden item (and never
  less than the median distance to the nearest *different* golden item), but never farther
  than ``max_coverage_radius`` (cosine distance 0.5): a few golden items far apart from each
  other must not make everything count as covered;
- suggestions: production spans chosen greedily so each newly covers as much uncovered
  production traffic as possible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binomtest, false_discovery_control, mannwhitneyu
from sklearn.cluster import MiniBatchKMeans  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import (  # type: ignore[import-untyped]
    StratifiedGroupKFold,
    cross_val_predict,
)

from tracegrade.analysis.embedding import Embedder, Matrix, Terms, TfidfSvdEmbedder, fit_terms
from tracegrade.analysis.inputs import (
    SpanFilter,
    golden_texts,
    infer_filter,
    latest_release,
    production_inputs,
)
from tracegrade.store import Store

SpanKey = tuple[str, str]


@dataclass(frozen=True)
class DriftSettings:
    """Knobs of the drift analysis."""

    clusters: int | None = None
    """Production clusters; by default one per 30 production inputs, between 2 and 30."""
    min_share: float = 0.01
    """Clusters with less of production than this are never called missing."""
    alpha: float = 0.05
    examples: int = 3
    min_coverage: float = 0.5
    """A cluster most of whose inputs have no golden item within the radius is missing."""
    coverage_quantile: float = 0.95
    max_coverage_radius: float = 0.5
    """The coverage radius never exceeds this cosine distance (similarity 0.5). Without it, a
    small or scattered golden set, whose items are far from one another, would have a radius
    so wide that unrelated production inputs count as covered, and one off-topic golden item
    could widen it a lot."""
    max_classifier_rows: int = 10_000
    """Production inputs used by the two-sample classifier (a seeded subsample beyond this)."""
    suggest: int = 0
    seed: int = 0


@dataclass
class ClusterReport:
    """One production cluster against the golden set."""

    cluster: int
    name: str
    production_count: int
    production_share: float
    golden_count: int
    golden_share: float
    coverage: float | None
    p_value: float
    q_value: float = 1.0
    uncovered_share: float = 0.0
    """Share of all production that is in this cluster and has no golden item nearby."""
    status: str = "covered"
    """``missing``, ``under-represented``, ``over-represented``, ``covered``, or ``rare``: mostly
    uncovered, but below ``min_share`` of production."""
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"cluster": self.cluster, "name": self.name, "status": self.status,
                "production_count": self.production_count,
                "production_share": self.production_share, "golden_count": self.golden_count,
                "golden_share": self.golden_share, "coverage": self.coverage,
                "uncovered_share": self.uncovered_share,
                "p_value": self.p_value, "q_value": self.q_value, "examples": self.examples}


@dataclass(frozen=True)
class Suggestion:
    """A production span whose promotion would cover more of production."""

    source: str
    span_id: str
    input: str
    cluster: int
    cluster_name: str
    gain: float
    """Estimated share of production it newly covers."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"source": self.source, "span_id": self.span_id, "input": self.input,
                "cluster": self.cluster, "cluster_name": self.cluster_name, "gain": self.gain}


@dataclass
class DriftReport:
    """Golden set against production: clusters, two-sample AUC, coverage, suggestions."""

    embedding: str
    production_n: int
    golden_n: int
    clusters: list[ClusterReport]
    auc: float | None
    auc_p_value: float | None
    coverage: float | None
    radius: float | None
    suggestions: list[Suggestion] = field(default_factory=list)
    dataset: str | None = None
    release: str | None = None
    span_filter: dict[str, Any] = field(default_factory=dict)
    empty_production: int = 0
    """Production spans left out because they recorded no input."""

    @property
    def missing(self) -> list[ClusterReport]:
        """The clusters the golden set misses."""
        return [c for c in self.clusters if c.status == "missing"]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"dataset": self.dataset, "release": self.release, "spans": self.span_filter,
                "embedding": self.embedding, "production_n": self.production_n,
                "golden_n": self.golden_n, "empty_production": self.empty_production,
                "auc": self.auc, "auc_p_value": self.auc_p_value,
                "coverage": self.coverage, "coverage_radius": self.radius,
                "missing": [c.name for c in self.missing],
                "clusters": [c.as_dict() for c in self.clusters],
                "suggestions": [s.as_dict() for s in self.suggestions]}


class DriftError(ValueError):
    """Too little data to compare (no golden items, no production inputs)."""


def analyze_drift(golden: Sequence[str], production: Sequence[str],
                  production_keys: Sequence[SpanKey] | None = None,
                  settings: DriftSettings | None = None,
                  embedder: Embedder | None = None) -> DriftReport:
    """Compare golden inputs with production inputs (texts).

    Args:
        golden: the golden items' inputs as text.
        production: production inputs as text.
        production_keys: the (source, span_id) of each production input, for suggestions.
        settings: knobs; ``settings.suggest`` > 0 asks for that many suggestions.
        embedder: how texts become vectors (TF-IDF + SVD by default).

    Raises:
        DriftError: fewer than two golden items or production inputs, or no text in any.
    """
    settings = settings or DriftSettings()
    # Spans with no recorded input are no topic: kept in, they formed a "missing" cluster no
    # golden item could ever cover (two empty inputs are as far apart as any two texts).
    with_text = [i for i, text in enumerate(production) if text.strip()]
    empty = len(production) - len(with_text)
    if empty and with_text:
        production = [production[i] for i in with_text]
        if production_keys is not None:
            production_keys = [production_keys[i] for i in with_text]
    if any(text.strip() for text in golden):
        golden = [text for text in golden if text.strip()]
    if len(golden) < 2 or len(production) < 2:
        raise DriftError(f"need at least two golden items and two production inputs; have "
                         f"{len(golden)} and {len(production)}")
    if not any(text.strip() for text in (*golden, *production)):
        raise DriftError("no golden or production input has any text to compare (are the "
                         "inputs empty, or are the spans' inputs not recorded?)")
    embedder = embedder or TfidfSvdEmbedder(seed=settings.seed)
    # Fitted on production and the golden items not copied verbatim from it (as `dataset
    # promote` copies them): a copy would double its one-off words (an order id) into the
    # vocabulary and stand apart from the traffic it was promoted to cover.
    in_production = set(production)
    order = sorted(range(len(golden)), key=lambda i: golden[i] in in_production)
    fit_on = len(production) + sum(text not in in_production for text in golden)
    vectors = embedder.embed(list(production) + [golden[i] for i in order], fit_on=fit_on)
    prod_vectors = vectors[:len(production)]
    golden_vectors = vectors[len(production):][np.argsort(order)]
    labels, golden_labels = _cluster(prod_vectors, golden_vectors, settings)
    terms = _production_terms(embedder, len(production)) or fit_terms(list(production))
    names = cluster_names(terms, labels)
    radius, prod_distance = _coverage(prod_vectors, golden_vectors, settings)
    # A golden item covers its own text whatever the vectors say: one made only of words the
    # embedding leaves out ("What is it?") is a zero vector, at distance 1 from everything.
    golden_texts = {_same_text(text) for text in golden}
    prod_distance[[_same_text(text) in golden_texts for text in production]] = 0.0
    clusters = _cluster_reports(labels, golden_labels, names, prod_distance, radius,
                                prod_vectors, list(production), settings, terms)
    auc, auc_p = two_sample_auc(golden_vectors, prod_vectors, settings)
    report = DriftReport(
        embedding=embedder.name, production_n=len(production), golden_n=len(golden),
        clusters=clusters, auc=auc, auc_p_value=auc_p,
        coverage=float(np.mean(prod_distance <= radius)) if radius is not None else None,
        radius=radius, empty_production=empty)
    if settings.suggest and production_keys is not None and radius is not None:
        report.suggestions = suggest(prod_vectors, prod_distance, radius, labels, names,
                                     production, production_keys, settings)
    return report


def _cluster(prod: Matrix, golden: Matrix, settings: DriftSettings
             ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    count = settings.clusters or default_cluster_count(prod.shape[0])
    count = min(count, prod.shape[0])
    model = MiniBatchKMeans(n_clusters=count, random_state=settings.seed, n_init=3,
                            batch_size=4096)
    labels = model.fit_predict(prod)
    return labels.astype(np.intp), model.predict(golden).astype(np.intp)


def _production_terms(embedder: Embedder, production_n: int) -> Terms | None:
    """The embedder's own TF-IDF rows of the production texts, when it kept them."""
    terms = getattr(embedder, "terms", None)
    if not isinstance(terms, Terms):
        return None
    return Terms(terms.matrix[:production_n], terms.vocabulary)


def cluster_names(terms: Terms, labels: NDArray[np.intp], count: int = 3) -> dict[int, str]:
    """Each cluster's most distinctive terms (mean TF-IDF above the overall mean)."""
    matrix, vocabulary = terms.matrix, terms.vocabulary
    overall = np.asarray(matrix.mean(axis=0)).ravel()
    names = {}
    for cluster in np.unique(labels):
        inside = np.asarray(matrix[labels == cluster].mean(axis=0)).ravel()
        lift = inside - overall
        top = [str(vocabulary[i]) for i in np.argsort(-lift)[: count * 3] if lift[i] > 0]
        names[int(cluster)] = ", ".join(_distinct_terms(top, count)) or f"cluster {cluster}"
    return names


def _distinct_terms(ranked: list[str], count: int) -> list[str]:
    """Top terms without repeating a word already shown (``refund`` and ``refund order``)."""
    chosen: list[str] = []
    for term in ranked:
        words = set(term.split())
        if any(words & set(other.split()) for other in chosen):
            continue
        chosen.append(term)
        if len(chosen) == count:
            break
    return chosen


def _coverage(prod: Matrix, golden: Matrix, settings: DriftSettings
              ) -> tuple[float | None, NDArray[np.float32]]:
    """The coverage radius and each production input's distance to its nearest golden item."""
    prod_distance = nearest_distance(prod, golden)
    nearest, distinct = _nearest_other(golden)
    radius = float(np.quantile(nearest, settings.coverage_quantile))
    # A golden set full of repeated questions would shrink that to nothing; never go below
    # the median distance from a golden item to its nearest *different* golden item.
    distinct = distinct[np.isfinite(distinct)]
    if distinct.size:
        radius = max(radius, float(np.median(distinct)))
    return max(min(radius, settings.max_coverage_radius), _SAME), prod_distance


_SAME = 1e-4
"""Cosine distance below which two inputs count as the same text."""
_BLOCK_CELLS = 1 << 22
"""Distances computed at once (16 MB of float32) when comparing many vectors with many."""


def _same_text(text: str) -> str:
    """``text`` as compared for a verbatim match: case and runs of white space aside."""
    return " ".join(text.casefold().split())


def _nearest_other(golden: Matrix, cells: int = _BLOCK_CELLS
                   ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Each golden item's distance to its nearest other item, and to its nearest item that is
    not the same text (inf when there is none), a block of rows at a time: the whole
    golden-by-golden matrix took 2.1 GB for 15,000 items."""
    n = golden.shape[0]
    nearest = np.empty(n, dtype=np.float32)
    distinct = np.empty(n, dtype=np.float32)
    step = max(1, cells // max(n, 1))
    for start in range(0, n, step):
        block = 1.0 - golden[start:start + step] @ golden.T
        rows = np.arange(block.shape[0])
        block[rows, rows + start] = np.inf
        nearest[start:start + step] = block.min(axis=1)
        block[block <= _SAME] = np.inf
        distinct[start:start + step] = block.min(axis=1)
    return nearest, distinct


def nearest_distance(points: Matrix, references: Matrix, cells: int = _BLOCK_CELLS
                     ) -> NDArray[np.float32]:
    """Cosine distance from each point to its nearest reference (unit vectors), a block of
    rows at a time (a block holds about ``cells`` distances)."""
    out = np.empty(points.shape[0], dtype=np.float32)
    chunk = max(1, cells // max(references.shape[0], 1))
    for start in range(0, points.shape[0], chunk):
        similarity = points[start:start + chunk] @ references.T
        out[start:start + chunk] = 1.0 - similarity.max(axis=1)
    return out


def _cluster_reports(labels: NDArray[np.intp], golden_labels: NDArray[np.intp],
                     names: dict[int, str], prod_distance: NDArray[np.float32],
                     radius: float | None, prod: Matrix, texts: list[str],
                     settings: DriftSettings, terms: Terms) -> list[ClusterReport]:
    n_prod, n_golden = labels.size, golden_labels.size
    reports = []
    for cluster in np.unique(labels):
        inside = labels == cluster
        prod_count, golden_count = int(inside.sum()), int((golden_labels == cluster).sum())
        share = prod_count / n_prod
        reports.append(ClusterReport(
            cluster=int(cluster), name=names[int(cluster)], production_count=prod_count,
            production_share=share, golden_count=golden_count,
            golden_share=golden_count / n_golden,
            coverage=float(np.mean(prod_distance[inside] <= radius)) if radius else None,
            uncovered_share=float(np.sum(prod_distance[inside] > radius)) / n_prod
            if radius else 0.0,
            p_value=float(binomtest(golden_count, n_golden, share).pvalue),
            examples=_examples(prod[inside], [t for t, i in zip(texts, inside, strict=True)
                                              if i], settings.examples)))
    q_values = false_discovery_control([r.p_value for r in reports], method="bh")
    for report, q in zip(reports, q_values, strict=True):
        report.q_value = float(q)
        report.status = _status(report, settings)
    if radius is not None:
        _describe_gaps(reports, labels, prod_distance > radius, prod, texts, settings, terms)
    return sorted(reports, key=lambda r: (_STATUS_ORDER[r.status],
                                          -(r.production_share - r.golden_share)))


def _describe_gaps(reports: list[ClusterReport], labels: NDArray[np.intp],
                   uncovered: NDArray[np.bool_], prod: Matrix, texts: list[str],
                   settings: DriftSettings, terms: Terms) -> None:
    """Name a missing cluster, and show its examples, from its *uncovered* inputs only.

    A cluster can mix a covered topic with an uncovered one; what the golden set lacks is
    the uncovered part, so that is what the name and the examples describe.
    """
    gaps = [r for r in reports if r.status == "missing"]
    if not gaps:
        return
    gap_labels = np.where(uncovered, labels, -1)
    names = cluster_names(terms, gap_labels)
    for report in gaps:
        inside = gap_labels == report.cluster
        if inside.any():
            report.name = names[report.cluster]
            report.examples = _examples(prod[inside], [t for t, i in zip(texts, inside,
                                                                         strict=True) if i],
                                        settings.examples)


_STATUS_ORDER = {"missing": 0, "under-represented": 1, "over-represented": 2, "rare": 3,
                 "covered": 4}


def _status(report: ClusterReport, settings: DriftSettings) -> str:
    big_enough = report.production_share >= settings.min_share
    uncovered = report.coverage is not None and report.coverage < settings.min_coverage
    if uncovered:
        return "missing" if big_enough else "rare"
    if report.q_value >= settings.alpha:
        return "covered"
    if report.golden_share > report.production_share:
        return "over-represented"
    if report.golden_count == 0 and big_enough:
        return "missing"
    return "under-represented"


def _examples(vectors: Matrix, texts: list[str], count: int) -> list[str]:
    """The distinct inputs nearest the cluster's centre."""
    centre = vectors.mean(axis=0)
    chosen: list[str] = []
    for index in np.argsort(-(vectors @ centre)):
        text = texts[int(index)]
        if text not in chosen:
            chosen.append(text)
        if len(chosen) == count:
            break
    return chosen


def two_sample_auc(golden: Matrix, prod: Matrix, settings: DriftSettings
                   ) -> tuple[float | None, float | None]:
    """Cross-validated ROC AUC of a classifier telling golden from production, with a p-value.

    0.5 means the two are indistinguishable; near 1 that the golden set looks unlike production.
    The p-value is the one-sided Mann-Whitney test of the out-of-fold scores (AUC = U / n1 n2)
    that golden items score higher. Identical vectors (a golden item promoted from a production
    span) stay in one fold: split apart, each copy taught the classifier the opposite label of
    the other and the AUC fell far below 0.5 ("p = 1e-45" for a golden set equal to production).
    """
    folds = min(5, golden.shape[0], prod.shape[0])
    if folds < 2:
        return None, None
    rng = np.random.default_rng(settings.seed)
    if prod.shape[0] > settings.max_classifier_rows:
        prod = prod[rng.choice(prod.shape[0], settings.max_classifier_rows, replace=False)]
    features = np.vstack([golden, prod])
    is_golden = np.concatenate([np.ones(golden.shape[0], bool), np.zeros(prod.shape[0], bool)])
    _, groups = np.unique(features, axis=0, return_inverse=True)
    if len(np.unique(groups[is_golden])) < folds or len(np.unique(groups[~is_golden])) < folds:
        return None, None
    classifier = LogisticRegression(max_iter=300, tol=1e-3, class_weight="balanced")
    scores = cross_val_predict(
        classifier, features, is_golden, method="predict_proba", groups=groups.ravel(),
        cv=StratifiedGroupKFold(folds, shuffle=True, random_state=settings.seed))[:, 1]
    auc = float(roc_auc_score(is_golden, scores))
    p_value = float(mannwhitneyu(scores[is_golden], scores[~is_golden],
                                 alternative="greater").pvalue)
    return auc, p_value


def suggest(prod: Matrix, prod_distance: NDArray[np.float32], radius: float,
            labels: NDArray[np.intp], names: dict[int, str], texts: Sequence[str],
            keys: Sequence[SpanKey], settings: DriftSettings,
            sample_size: int = 4000) -> list[Suggestion]:
    """Production spans that, promoted in turn, each cover the most still-uncovered traffic.

    Greedy maximum coverage over a seeded sample of the uncovered inputs: a candidate covers
    the sampled inputs within the coverage radius of it.
    """
    uncovered = np.flatnonzero(prod_distance > radius)
    if uncovered.size == 0:
        return []
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(uncovered, min(sample_size, uncovered.size), replace=False))
    each = uncovered.size / sample.size / prod.shape[0]
    ball = (1.0 - prod[sample] @ prod[sample].T) <= radius
    still = np.ones(sample.size, dtype=bool)
    chosen: list[Suggestion] = []
    seen_texts: set[str] = set()
    while len(chosen) < settings.suggest and still.any():
        gains = ball[:, still].sum(axis=1)
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        still &= ~ball[best]
        index = int(sample[best])
        if texts[index] in seen_texts:
            continue
        seen_texts.add(texts[index])
        cluster = int(labels[index])
        chosen.append(Suggestion(keys[index][0], keys[index][1], texts[index], cluster,
                                 names[cluster], float(gains[best] * each)))
    return chosen


def default_cluster_count(production_n: int) -> int:
    """How many clusters the analysis uses when not told."""
    return min(30, max(2, production_n // 30))


def dataset_drift(store: Store, dataset: str, *, release: str | None = None,
                  span_filter: SpanFilter | None = None, settings: DriftSettings | None = None,
                  embedder: Embedder | None = None) -> DriftReport:
    """Compare ``dataset`` with production spans of ``release`` (the latest by default).

    The production spans are those of the kind and name the golden items came from (or
    ``span_filter``); without either, the root span of each trace.

    Raises:
        DatasetError: no such dataset.
        DriftError: too few golden items or production inputs.
    """
    items, golden = golden_texts(store, dataset)
    span_filter = span_filter or infer_filter(store, items)
    release = release or latest_release(store, span_filter)
    production = production_inputs(store, span_filter, release)
    report = analyze_drift(golden, production.texts, production.keys, settings, embedder)
    report.dataset, report.release = dataset, release
    report.span_filter = span_filter.as_dict()
    return report
