"""Seeded generator of the demo's golden dataset and human labels, from the bundled traces.

- ``data/golden.jsonl``: about 150 conversations of release ``2026.11.1`` promoted as golden
  items (the customer's message, the reply as expected output, a link to the agent span), in
  the format of ``tracegrade dataset export``. Release ``2026.11.2`` adds refund requests,
  which the golden set has none of: ``tracegrade drift golden`` must name them.
- ``data/labels.csv``: human-style labels on spans of both releases for every demo grader, the
  way ``tracegrade labels queue`` picks them (half the grader passed, half it failed). People
  mostly agree with the graders, but not always: they slip now and then, a "not found" reply for
  an order that really does not exist is right (the regex fails it), a Spanish reply breaks the
  prompt's "always answer in English" (the script check passes it), and some labelers let a
  lower-cased order id through (the lookup still works).

Run ``python -m tracegrade.demo.golden`` after regenerating the traces; a test checks the
shipped files equal this module's output.
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from tracegrade.datasets import GoldenItem, Promotion, item_from_span
from tracegrade.demo.generate import BUNDLED_DATA, DEMO_DIR, RELEASES
from tracegrade.demo.run import DEMO_SOURCE, demo_config
from tracegrade.graders import build_graders
from tracegrade.graders._targets import text_of
from tracegrade.grading import grade
from tracegrade.ingest import import_files
from tracegrade.labels import label_queue
from tracegrade.spans import Span, SpanKind
from tracegrade.store import Store, open_store

GOLDEN_FILE: Final = DEMO_DIR / "data" / "golden.jsonl"
LABELS_FILE: Final = DEMO_DIR / "data" / "labels.csv"
GOLDEN_DATASET: Final = "golden"
GOLDEN_ITEMS: Final = 150
LABELS_PER_GRADER: Final = 80
SLIP_RATE: Final = 0.04
"""How often a labeler simply clicks the wrong answer."""
LENIENT_ON_ID_CASE: Final = 0.25
"""Share of labels that pass a lower-cased order id (the lookup upper-cases it anyway)."""
SEED: Final = 2026
LABEL_COLUMNS: Final = ("span_id", "source", "criterion", "label", "critique", "labeler")
_LABELERS: Final = ("maria.k", "dev.patel", "sam.okafor")
_FALLBACK: Final = "having trouble looking that up"


@dataclass(frozen=True)
class DemoFiles:
    """The two generated files' contents."""

    golden: bytes
    labels: bytes


def build(seed: int = SEED) -> DemoFiles:
    """Import and grade the bundled traces in a scratch store, then draw items and labels."""
    with tempfile.TemporaryDirectory(prefix="tracegrade-golden-") as scratch:
        config = demo_config(f"sqlite:///{Path(scratch) / 'demo.db'}", judges=False)
        with open_store(config.store) as store:
            import_files(store, [BUNDLED_DATA], config.mapping(DEMO_SOURCE))
            graders = build_graders(config.graders)
            grade(store, graders, config.sampling)
            rng = random.Random(seed)
            golden = _golden(store, rng)
            labels = _labels(store, [(g.name, g.version) for g in graders], rng)
    return DemoFiles(golden, labels)


def write(files: DemoFiles) -> None:
    """Write the files where the demo ships them."""
    GOLDEN_FILE.write_bytes(files.golden)
    LABELS_FILE.write_bytes(files.labels)


# --- the golden dataset -------------------------------------------------------------------------


def _golden(store: Store, rng: random.Random) -> bytes:
    first_release = RELEASES[0].version
    candidates = [stored.span for stored in store.iter_spans([SpanKind.AGENT])
                  if stored.span.release == first_release and _good_reply(stored.span)]
    chosen = sorted(rng.sample(candidates, GOLDEN_ITEMS), key=lambda s: s.start_time)
    promotion = Promotion(f"curated from release {first_release}")
    items = [item_from_span(span, promotion) for span in chosen]
    return b"".join(item.to_json_line() + b"\n" for item in items)


def _good_reply(span: Span) -> bool:
    """A reply fit to be an expected output: no fallback, in English, not too long."""
    reply = text_of(span.output) if span.output is not None else ""
    return bool(reply) and _FALLBACK not in reply and " pedido " not in f" {reply} " and \
        len(reply.split()) <= 120 and not any("\u0e00" <= ch <= "\u0e7f" for ch in reply)


def golden_items() -> list[GoldenItem]:
    """The shipped golden items."""
    return [GoldenItem.model_validate(orjson.loads(line))
            for line in GOLDEN_FILE.read_bytes().splitlines() if line.strip()]


# --- human labels -------------------------------------------------------------------------------


def _labels(store: Store, graders: list[tuple[str, str]], rng: random.Random) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for grader, version in graders:
        for item in label_queue(store, grader, version, LABELS_PER_GRADER,
                                uncertain_first=False):
            span = store.get_span(item.source, item.span_id)
            assert span is not None
            label, critique = _human(grader, item.judge, span, store, rng)
            writer.writerow({"span_id": item.span_id, "source": item.source,
                             "criterion": grader, "label": label, "critique": critique,
                             "labeler": rng.choice(_LABELERS)})
    return out.getvalue().encode()


HumanJudgement = Callable[[str, Span, Store, random.Random], tuple[str, str] | None]


def _human(grader: str, verdict: str, span: Span, store: Store, rng: random.Random
           ) -> tuple[str, str]:
    """What a careful person says: mostly the grader's verdict, except where people differ."""
    special = _JUDGEMENTS.get(grader)
    decided = special(verdict, span, store, rng) if special else None
    label, critique = decided or (verdict, _CRITIQUES[grader] if verdict == "fail" else "")
    if rng.random() < SLIP_RATE:
        label = "fail" if label == "pass" else "pass"
        critique = "" if label == "pass" else _CRITIQUES[grader]
    return label, critique


def _not_found_judgement(verdict: str, span: Span, store: Store, _rng: random.Random
                         ) -> tuple[str, str] | None:
    """A "not found" reply is right when the lookup really found nothing."""
    if verdict != "fail":
        return None
    tool = next((s for s in store.trace_spans(span.source, span.trace_id)
                 if s.kind is SpanKind.TOOL), None)
    output = tool.output if tool is not None else None
    status = output.get("order_status", output.get("status")) if isinstance(output, dict) \
        else None
    if status == "not_found":
        return "pass", "The order really doesn't exist; asking to check the number is right."
    return None


def _script_judgement(verdict: str, span: Span, _store: Store, _rng: random.Random
                      ) -> tuple[str, str] | None:
    """People fail a Spanish reply: the prompt says "always answer in English"."""
    reply = text_of(span.output) if span.output is not None else ""
    if verdict == "pass" and " pedido " in f" {reply} ":
        return "fail", "Replied in Spanish; the agent must always answer in English."
    return None


def _id_case_judgement(verdict: str, _span: Span, _store: Store, rng: random.Random
                       ) -> tuple[str, str] | None:
    """Some labelers let a lower-cased order id through: the lookup still finds the order."""
    if verdict == "fail" and rng.random() < LENIENT_ON_ID_CASE:
        return "pass", "Lower-case id, but the lookup upper-cases it; no harm done."
    return None


_JUDGEMENTS: Final[dict[str, HumanJudgement]] = {
    "reply_finds_order": _not_found_judgement,
    "reply_script_latin": _script_judgement,
    "lookup_args_valid": _id_case_judgement,
}
_CRITIQUES: Final = {
    "order_status_present": "The lookup result has no order_status field.",
    "reply_finds_order": "Says the order can't be found, but the lookup returned it.",
    "llm_latency_3s": "Far too slow for a chat reply.",
    "reply_under_120_words": "Rambles well past the 120-word limit.",
    "llm_status_ok": "The model call failed.",
    "reply_script_latin": "Stray non-Latin text at the end of the reply.",
    "lookup_args_valid": "Order id doesn't match the tool's schema.",
}


def main() -> None:
    """``python -m tracegrade.demo.golden``: rewrite data/golden.jsonl and data/labels.csv."""
    files = build()
    write(files)
    items, rows = len(files.golden.splitlines()), len(files.labels.splitlines()) - 1
    print(f"{GOLDEN_FILE}\t{items} items")
    print(f"{LABELS_FILE}\t{rows} labels")


if __name__ == "__main__":
    main()
