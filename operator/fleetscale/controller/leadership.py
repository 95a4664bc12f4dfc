"""Leadership as the controller sees it: a gate per shard, the write fence, and what changes.

Role: ``ShardGate`` admits the tick loops of one shard only while this replica holds that
shard's Lease (``ShardManager.holds``, the same check the ``FencedApiClient`` makes before
every write) and lets the loops of a shard held elsewhere wait without polling. With one shard
(the default) the shard's Lease is the leader Lease, and the gate is the leader's gate.
``ACTING_SHARD`` is the shard a task acts for (a pool's loop sets its pool's, an
AcceleratorPool's loop shard 0); the fence (``fence``) reads it when a write is about to
leave, from whichever thread sends it (``asyncio.to_thread`` carries the context along).
``InFlight`` counts the ticks under way per shard, so a shard is released only once they have
finished. ``on_shard_change`` is what a transition does beyond the elector's own log line:
``fleetscale_leader`` (shard 0, where the AcceleratorPool planner runs) and
``fleetscale_shards_held``, and, when a shard is lost, dropping the per-pool gauges and the
memory of published shed flags of that shard's pools, so a former holder shows nothing stale
and, should it hold the shard again, republishes every flag from its first tick. The flags
themselves are left to the new holder: a replica that has lost a shard may not write for it.
Callers: ``controller.handlers``, ``controller.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

from fleetscale.controller.loop import Stopped
from fleetscale.election.shard_manager import ShardManager
from fleetscale.election.shards import shard_of
from fleetscale.metrics import OperatorMetrics

# The shard the current task acts for; None: not a pool's task (then shard 0's holder acts).
ACTING_SHARD: ContextVar[int | None] = ContextVar("fleetscale_acting_shard", default=None)
# Where the AcceleratorPool planner runs: it needs every InferencePool's demand, which every
# replica has in memory (the watch of every pool), so any one holder will do; shard 0's is the
# leader's, as with one shard.
PLANNER_SHARD = 0

PoolFilter = Callable[[str, str], bool]  # (namespace, name) -> in the shard


class ShardGate:
    """``loop.Gate`` over one shard of a ``ShardManager``."""

    def __init__(self, manager: ShardManager, shard: int) -> None:
        self._manager = manager
        self.shard = shard

    def admits(self) -> bool:
        return self._manager.holds(self.shard)

    async def wait_admitted(self, stopped: Stopped) -> None:
        if self.admits() or stopped:
            return
        held = asyncio.ensure_future(self._manager.wait_held(self.shard))
        stopping = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait({held, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (held, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def fence(manager: ShardManager) -> Callable[[], bool]:
    """Whether a write may leave now: this replica holds the shard the task acts for."""

    def may_write() -> bool:
        shard = ACTING_SHARD.get()
        return manager.holds(PLANNER_SHARD if shard is None else shard)

    return may_write


class InFlight:
    """Ticks (and their status writes) under way, per shard."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self._idle: dict[int, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def acting(self, shard: int) -> AsyncIterator[None]:
        self._counts[shard] += 1
        self._event(shard).clear()
        try:
            yield
        finally:
            self._counts[shard] -= 1
            if self._counts[shard] == 0:
                self._event(shard).set()

    async def drained(self, shard: int) -> None:
        """Return once no tick of ``shard`` is under way."""
        if self._counts[shard] > 0:
            await self._event(shard).wait()

    def _event(self, shard: int) -> asyncio.Event:
        if shard not in self._idle:
            self._idle[shard] = asyncio.Event()
            self._idle[shard].set()
        return self._idle[shard]


def on_shard_change(
    metrics: OperatorMetrics,
    shards: int,
    forget_published: Callable[[PoolFilter], None],
    held: Callable[[], int],
) -> Callable[[int, bool], None]:
    """What acquiring or losing a shard changes in this process (``held``: how many shards it
    holds now)."""

    def changed(shard: int, leading: bool) -> None:
        if shard == 0:
            metrics.leader.set(1 if leading else 0)
        metrics.shards_held.set(held())
        if not leading:

            def in_shard(namespace: str, name: str) -> bool:
                return shard_of(namespace, name, shards) == shard

            metrics.forget_pools(in_shard)
            forget_published(in_shard)

    return changed


def publish_shards_held(metrics: OperatorMetrics, manager: ShardManager) -> None:
    """``fleetscale_shards_held`` as this replica stands at each scrape: the shards it may act
    on now. Set only at transitions, it kept a count taken while another shard's renewal was
    late (one of two, while the replica went on holding both)."""
    metrics.shards_held.set_function(lambda: len(manager.held()))


def on_leadership_change(
    metrics: OperatorMetrics, forget_published: Callable[[], None]
) -> Callable[[bool], None]:
    """What a transition of the single shard (leader election) changes in this process."""
    leads = [False]
    changed = on_shard_change(
        metrics, 1, lambda _in_shard: forget_published(), lambda: int(leads[0])
    )

    def leadership_changed(leading: bool) -> None:
        leads[0] = leading
        changed(0, leading)

    return leadership_changed
