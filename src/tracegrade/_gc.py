"""No garbage-collector passes while tracegrade streams many short-lived objects.

Decoding a trace export creates tens of thousands of small dicts and lists that live only until
their spans are written. CPython's cyclic collector runs after every 700 new containers by
default, and each pass walks every young object still alive, which during an import is the
whole batch being prepared: those passes took a third of the time with the default threshold,
and still a tenth with it raised to 50,000, while finding almost nothing to free (span records
hold no reference cycles). Reference counting frees every object as soon as it is dropped;
only the cycle detector is affected.

So a bulk job turns the collector off and runs it only between batches
(:func:`between_batches`), when a batch's objects are gone, and only once enough new containers
have survived since the last pass, with the collector's own generational schedule: a young pass
walks what was created since the previous one, an older generation's pass comes after ten of
the younger one's. Collecting everything after every batch cost a third of a pull's time: a
full pass re-walks every object still alive (pages fetched ahead, caches) each time. Cyclic
garbage is freed at most :data:`YOUNG_LIMIT` containers late, so memory stays bounded.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_LIMIT = 100_000
"""Containers alive and new since the last pass before :func:`between_batches` runs one."""

PASSES_BEFORE_OLDER = 10
"""Passes of a generation before the next older one is collected (CPython's default)."""

BULK_THRESHOLD = 50_000
"""New containers between two young-generation passes in a long-running service."""

_bulk = False
"""Whether this process is in a bulk job that turned the collector off."""


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Run the block with the cycle collector off, older objects frozen.

    Objects alive on entry (modules, config, graders) move to the permanent generation, so the
    passes of :func:`between_batches` never re-walk them; the collector's state is restored on
    exit.
    """
    global _bulk
    enabled, was_bulk = gc.isenabled(), _bulk
    gc.freeze()
    gc.disable()
    _bulk = True
    try:
        yield
    finally:
        _bulk = was_bulk
        if enabled:
            gc.enable()
        gc.unfreeze()


def start_bulk_worker() -> None:
    """In a worker process that only runs bulk jobs: freeze what it starts with, collector off."""
    global _bulk
    gc.freeze()
    gc.disable()
    _bulk = True


def between_batches() -> None:
    """In a bulk job, once a batch is written and dropped, collect if enough has piled up.

    ``gc.get_count()`` gives the containers created minus those freed since the last young
    pass, then how many passes each younger generation had since the older one's last.
    """
    if not _bulk or gc.isenabled():
        return
    young, young_passes, middle_passes = gc.get_count()
    if young < YOUNG_LIMIT:
        return
    generation = 0
    if young_passes + 1 >= PASSES_BEFORE_OLDER:
        generation = 2 if middle_passes + 1 >= PASSES_BEFORE_OLDER else 1
    gc.collect(generation)


def tune_for_service() -> None:
    """For a long-running receiver: freeze what start-up created and raise the threshold."""
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], BULK_THRESHOLD), *thresholds[1:])
