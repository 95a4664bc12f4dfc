"""The collector settings of ``fleetscale run``: fewer young collections, a compacted heap.

Against the real ``gc`` module where the behaviour is the collector's own (what is frozen,
what is still collected), against a recording fake for the schedule, in loop time.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import kubernetes.client
import pytest

from fleetscale.controller import heap
from fleetscale.controller.runtime import OperatorRuntime
from fleetscale.metrics import OperatorMetrics
from fleetscale.settings import Settings
from support.dependencies import fake_pool_dependencies


class Node:
    """An object that can sit in a reference cycle and be watched through a weakref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Two objects referring to each other, unreachable from anywhere: cyclic garbage."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_makes_young_collections_rarer_and_never_more_frequent() -> None:
    gc.set_threshold(700, 10, 10)
    heap.tune()
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)
    gc.set_threshold(heap.YOUNG_THRESHOLD * 2, 5, 5)  # set higher by someone else: kept
    heap.tune()
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD * 2, 5, 5)


@pytest.mark.usefixtures("restored_gc")
def test_compact_freezes_the_live_heap_so_full_collections_skip_it() -> None:
    gc.unfreeze()
    live = [Node() for _ in range(10_000)]  # long-lived objects, like every pool's body
    frozen = heap.compact()
    assert frozen == gc.get_freeze_count()
    assert frozen >= len(live)
    # The collections from now on walk only what comes after: none of the live objects.
    walked = {id(obj) for obj in gc.get_objects()}
    assert not any(id(node) in walked for node in live)


@pytest.mark.usefixtures("restored_gc")
def test_garbage_is_collected_by_the_compaction_and_after_it() -> None:
    before_compaction = cycle()
    heap.compact()
    assert before_compaction() is None  # the compaction's full collection found it
    after_compaction = cycle()
    gc.collect()
    assert after_compaction() is None  # new garbage: collected as ever


@pytest.mark.usefixtures("restored_gc")
def test_frozen_objects_that_become_garbage_are_collected_at_the_next_compaction() -> None:
    holder: list[Node] = []
    a, b = Node(), Node()
    a.other, b.other = b, a
    holder.append(a)
    watched = weakref.ref(a)
    del a, b
    heap.compact()  # the cycle is live: frozen
    holder.clear()  # now garbage, but frozen: a plain full collection skips it
    gc.collect()
    assert watched() is not None
    heap.compact()  # unfreezes first: no leak
    assert watched() is None


class RecordingCollector:
    """A ``heap.Collector`` that records what was asked of it and when (loop time)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.threshold = (700, 10, 10)

    def _record(self, name: str) -> None:
        self.calls.append((name, asyncio.get_running_loop().time()))

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, threshold0: int, threshold1: int = 10, threshold2: int = 10) -> None:
        self.threshold = (threshold0, threshold1, threshold2)

    def collect(self, generation: int = 2) -> int:
        self._record("collect")
        return 0

    def freeze(self) -> None:
        self._record("freeze")

    def unfreeze(self) -> None:
        self._record("unfreeze")

    def get_freeze_count(self) -> int:
        return 42


@pytest.mark.looptime
async def test_compactions_come_after_the_start_then_every_period_until_stopped() -> None:
    collector = RecordingCollector()
    stop = asyncio.Event()
    reported: list[int] = []
    start = asyncio.get_running_loop().time()
    task = asyncio.create_task(
        heap.keep_compacted(
            stop,
            first_seconds=120,
            every_seconds=600,
            collector=collector,
            on_compacted=lambda frozen, _seconds: reported.append(frozen),
        )
    )
    await asyncio.sleep(1400)
    stop.set()
    await task

    assert [(name, at - start) for name, at in collector.calls] == [
        ("unfreeze", 120),
        ("collect", 120),
        ("freeze", 120),
        ("unfreeze", 720),
        ("collect", 720),
        ("freeze", 720),
        ("unfreeze", 1320),
        ("collect", 1320),
        ("freeze", 1320),
    ]
    assert reported == [42, 42, 42]
    assert asyncio.get_running_loop().time() - start == 1400  # stopping did not wait on


@pytest.mark.looptime
async def test_stopped_before_the_first_compaction_nothing_is_collected() -> None:
    collector = RecordingCollector()
    stop = asyncio.Event()
    task = asyncio.create_task(heap.keep_compacted(stop, first_seconds=120, collector=collector))
    await asyncio.sleep(60)
    stop.set()
    await task
    assert collector.calls == []


def _runtime(collector: heap.Collector | None) -> OperatorRuntime:
    settings = Settings(prometheus_url="http://prom:9090", leader_election=False, http_port=0)
    metrics = OperatorMetrics()
    deps = fake_pool_dependencies(
        settings=settings,
        metrics=metrics,
    )
    configuration = kubernetes.client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # never reached: nothing is read in this test
    return OperatorRuntime(
        settings=settings,
        dependencies_factory=lambda *_: deps,
        metrics=metrics,
        configuration_factory=lambda: configuration,
        collector=collector,
    )


async def test_the_operator_tunes_its_collector_at_start_and_stops_compacting_at_exit() -> None:
    collector = RecordingCollector()
    runtime = _runtime(collector)
    await runtime.start()
    try:
        assert collector.threshold == (heap.YOUNG_THRESHOLD, 10, 10)
    finally:
        await runtime.stop()  # returns: the compaction task ended with the operator
    assert collector.calls == []  # stopped long before the first compaction was due


async def test_without_a_collector_the_process_collector_is_left_alone() -> None:
    threshold = gc.get_threshold()
    runtime = _runtime(None)
    await runtime.start()
    await runtime.stop()
    assert gc.get_threshold() == threshold
