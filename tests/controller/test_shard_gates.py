"""What a shard's gate, the write fence and a lost shard do in one replica, over real Leases in
memory: a pool's writes leave only while its shard is held; losing one shard forgets only its
pools."""

from __future__ import annotations

import asyncio

import pytest

from fleetscale.controller.leadership import (
    ACTING_SHARD,
    InFlight,
    ShardGate,
    fence,
    on_shard_change,
    publish_shards_held,
)
from fleetscale.election import Timing
from fleetscale.election.shard_manager import ShardManager
from fleetscale.election.shards import shard_of
from fleetscale.election.store import FakeLeaseStore, FakeMembersStore
from fleetscale.metrics import OperatorMetrics

TIMING = Timing(lease_duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)
POOLS = [("serving", f"pool-{n}") for n in range(40)]


class Clock:
    seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def manager(identity: str, clock: Clock, leases: list[FakeLeaseStore]) -> ShardManager:
    return ShardManager(
        leases,
        identity,
        TIMING,
        members=FakeMembersStore(),
        monotonic=clock,
        wall=lambda: 1_800_000_000.0 + clock(),
        jitter=lambda: 0.0,
    )


async def test_the_fence_lets_a_write_leave_only_for_a_held_shard() -> None:
    clock, leases = Clock(), [FakeLeaseStore(), FakeLeaseStore()]
    other = manager("other", clock, leases)
    await other.electors[1].try_once()  # another replica holds shard 1
    ours = manager("ours", clock, leases)
    await ours.electors[0].try_once()
    may_write = fence(ours)

    def write_as(shard: int | None) -> bool:
        token = ACTING_SHARD.set(shard)
        try:
            return may_write()
        finally:
            ACTING_SHARD.reset(token)

    assert write_as(0)
    assert not write_as(1)
    assert write_as(None)  # not a pool's task: shard 0's holder (the AcceleratorPools)
    clock.seconds = TIMING.renew_deadline_seconds  # no renewal since: the fence drops
    assert not write_as(0)


async def test_a_lost_shard_forgets_only_its_own_pools() -> None:
    metrics = OperatorMetrics()
    published = {(ns, name, "shed"): True for ns, name in POOLS}
    for ns, name in POOLS:
        metrics.shed_active.labels(ns, name).set(1)

    def forget(selected: object) -> None:
        for key in [k for k in published if selected(k[0], k[1])]:  # type: ignore[operator]
            del published[key]

    changed = on_shard_change(metrics, 2, forget, held=lambda: 1)
    changed(1, False)
    kept = {(ns, name) for ns, name, _ in published}
    assert kept == {pool for pool in POOLS if shard_of(*pool, 2) == 0}
    assert {key[:2] for key in metrics.shed_active.values} == kept
    assert metrics.registry.get_sample_value("fleetscale_shards_held") == 1
    assert 0 < len(kept) < len(POOLS)


async def test_shards_held_counts_a_shard_whose_renewal_came_late() -> None:
    clock, leases, metrics = Clock(), [FakeLeaseStore(), FakeLeaseStore()], OperatorMetrics()
    managers: list[ShardManager] = []
    ours = ShardManager(
        leases,
        "ours",
        TIMING,
        members=FakeMembersStore(),
        monotonic=clock,
        wall=lambda: 1_800_000_000.0 + clock(),
        jitter=lambda: 0.0,
        on_change=on_shard_change(metrics, 2, lambda _: None, lambda: len(managers[0].held())),
    )
    managers.append(ours)
    publish_shards_held(metrics, ours)

    def shards_held() -> float | None:
        return metrics.registry.get_sample_value("fleetscale_shards_held")

    await ours.electors[0].try_once()
    clock.seconds = TIMING.renew_deadline_seconds + 1  # shard 0's renewal is late...
    await ours.electors[1].try_once()  # ...when shard 1 is acquired
    assert shards_held() == 1
    await ours.electors[0].try_once()  # the late renewal: the Lease was ours throughout
    assert ours.held() == [0, 1]
    assert shards_held() == 2


@pytest.mark.looptime
async def test_a_gate_opens_when_its_shard_is_acquired() -> None:
    clock, leases = Clock(), [FakeLeaseStore(), FakeLeaseStore()]
    ours = manager("ours", clock, leases)
    gate = ShardGate(ours, 1)

    class Never:
        def __bool__(self) -> bool:
            return False

        async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (kopf's API)
            await asyncio.Event().wait()

    waiting = asyncio.create_task(gate.wait_admitted(Never()))
    await asyncio.sleep(1)
    assert not waiting.done()
    await ours.step()  # alone: both shards are its to take
    await asyncio.wait_for(waiting, 1)
    assert gate.admits()


async def test_in_flight_ticks_drain_before_a_release() -> None:
    flight = InFlight()
    started, finish = asyncio.Event(), asyncio.Event()

    async def tick() -> None:
        async with flight.acting(1):
            started.set()
            await finish.wait()

    running = asyncio.create_task(tick())
    await started.wait()
    drained = asyncio.create_task(flight.drained(1))
    await asyncio.sleep(0)
    assert not drained.done()
    await flight.drained(0)  # another shard's ticks are not waited for
    finish.set()
    await asyncio.wait_for(drained, 1)
    await running
