"""The operator's heap and Python's cyclic garbage collector, at thousands of pools.

Role: keep the collector's full collections off the tick loops. An operator of 10,000 pools
holds over a million long-lived objects (every pool's body, watched twice, the caches, the
metrics' series), and thousands of ticks interleave on one event loop, so much of what a tick
allocates outlives a few young collections and is promoted to the oldest generation. With
CPython's defaults (a young collection every 700 allocations, a full one whenever the promoted
objects reach a quarter of the oldest generation), one replica of 10,000 pools ran a full
collection every 6 s, each walking the whole heap with the event loop stopped (up to 3.1 s;
25% of the wall-clock time in all), and 37 to 61% of its main thread's samples were in
``gc_collect_main`` (docs/benchmark-operator.md). A loop stopped that long misses Prometheus
deadlines and Lease renewals.

Two settings, applied by ``fleetscale run`` only (``controller.runtime``):

- ``tune``: young collections every ``YOUNG_THRESHOLD`` allocations instead of 700, so more
  of a tick's objects are freed by reference counting before a collection promotes them
  (50,000 made each young collection walk large young containers for up to 0.3 s: slower);
- ``keep_compacted``: shortly after start, and then every ``COMPACT_EVERY_SECONDS``, one full
  collection, then ``gc.freeze()`` of what survived, so the collections in between walk only
  what was allocated since. Each compaction first unfreezes, so garbage among the frozen
  objects (a deleted pool's loop, a replaced body) is found at the next one: nothing leaks.

Callers: ``controller.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from typing import Protocol

# Young collections every this many net allocations of tracked objects (CPython: 700).
YOUNG_THRESHOLD = 10_000
# The first compaction comes once the first lists are usually in; then one every period.
FIRST_COMPACTION_SECONDS = 120.0
COMPACT_EVERY_SECONDS = 600.0


class Collector(Protocol):
    """The parts of the ``gc`` module this uses (the module itself implements it)."""

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(
        self, threshold0: int, threshold1: int = ..., threshold2: int = ...
    ) -> None: ...

    def collect(self, generation: int = ...) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def get_freeze_count(self) -> int: ...


def tune(collector: Collector = gc, young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Young collections every ``young_threshold`` allocations (never more often than now)."""
    young, middle, old = collector.get_threshold()
    collector.set_threshold(max(young, young_threshold), middle, old)


def compact(collector: Collector = gc) -> int:
    """One full collection of everything, frozen ones included, then freeze what is left;
    how many objects are frozen now."""
    collector.unfreeze()
    collector.collect()
    collector.freeze()
    return collector.get_freeze_count()


async def keep_compacted(
    stop: asyncio.Event,
    *,
    first_seconds: float = FIRST_COMPACTION_SECONDS,
    every_seconds: float = COMPACT_EVERY_SECONDS,
    collector: Collector = gc,
    on_compacted: Callable[[int, float], None] | None = None,
) -> None:
    """``compact`` after ``first_seconds``, then every ``every_seconds``, until ``stop`` is
    set; ``on_compacted(frozen objects, seconds it took)`` after each."""
    wait = first_seconds
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return
        started = time.perf_counter()
        frozen = compact(collector)
        if on_compacted is not None:
            on_compacted(frozen, time.perf_counter() - started)
        wait = every_seconds
