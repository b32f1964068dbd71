"""Fewer garbage-collector passes while tracegrade streams many short-lived objects.

Decoding a trace export creates tens of thousands of small dicts and lists that live only until
their spans are written. CPython's cyclic collector runs after every 700 new containers by
default, and each pass walks every young object; during an import those passes took a third of
the time while finding almost nothing to free (span records hold no reference cycles).
Reference counting still frees every object as soon as it is dropped; only the cycle detector
runs less often.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 50_000
"""New containers between two young-generation passes while streaming spans."""


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Run the block with the young-generation threshold raised and older objects frozen.

    Objects alive on entry (modules, config, graders) move to the permanent generation, so
    passes never re-walk them; the previous thresholds are restored on exit.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], BULK_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def tune_for_service() -> None:
    """For a long-running receiver: freeze what start-up created and raise the threshold."""
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], BULK_THRESHOLD), *thresholds[1:])
