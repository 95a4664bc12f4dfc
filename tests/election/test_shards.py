"""Shards over in-memory Leases: handed over without two writers, taken over when a replica dies.

Two or three ``ShardManager``s share one ``FakeLeaseStore`` per shard and one
``FakeMembersStore``, as operator replicas share the shard Leases and the members Lease; the
tests step them by hand on clocks they move themselves. Each test asks, at every instant it
looks, who may act on each shard (``holds``, the gate and the write fence): never two.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetscale.election import Timing
from fleetscale.election.shard_manager import FORGET_AFTER_LEASE_DURATIONS, ShardManager
from fleetscale.election.shards import (
    assignment,
    live_members,
    observe_members,
    shard_lease_names,
    shard_of,
)
from fleetscale.election.store import FakeLeaseStore, FakeMembersStore

TIMING = Timing(lease_duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)
EPOCH = 1_800_000_000.0


class Clock:
    """One clock for every replica (they judge on their own monotonic clocks; here equal)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> float:
        return EPOCH + self.seconds


@dataclass
class Cluster:
    """The shard Leases and the members Lease the replicas share, and what they did."""

    shards: int
    clock: Clock = field(default_factory=Clock)
    leases: list[FakeLeaseStore] = field(default_factory=list)
    members: FakeMembersStore = field(default_factory=FakeMembersStore)
    drains: list[tuple[str, int]] = field(default_factory=list)
    release_drains: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.leases = [FakeLeaseStore() for _ in range(self.shards)]
        self.release_drains.set()

    def replica(self, identity: str) -> ShardManager:
        async def drain(shard: int) -> None:  # the shard's in-flight ticks finishing
            self.drains.append((identity, shard))
            await self.release_drains.wait()

        return ShardManager(
            self.leases,
            identity,
            TIMING,
            members=self.members if self.shards > 1 else None,
            drain=drain,
            monotonic=self.clock.monotonic,
            wall=self.clock.wall,
            jitter=lambda: 0.0,
        )

    def actors(self, replicas: list[ShardManager]) -> list[list[str]]:
        """Who may act on each shard now."""
        return [[r.identity for r in replicas if r.holds(s)] for s in range(self.shards)]

    def assert_exclusive(self, replicas: list[ShardManager]) -> None:
        for shard, acting in enumerate(self.actors(replicas)):
            assert len(acting) <= 1, f"shard {shard} acted on by {acting}"


async def rounds(
    cluster: Cluster, replicas: list[ShardManager], count: int, seconds: float = 2.0
) -> None:
    """``count`` retry periods: every replica steps, the clock moves; never two actors."""
    for _ in range(count):
        for replica in replicas:
            await replica.step()
            cluster.assert_exclusive(replicas)
        cluster.clock.seconds += seconds
        cluster.assert_exclusive(replicas)


async def test_a_joining_replica_gets_a_shard_without_it_ever_having_two_writers() -> None:
    cluster = Cluster(shards=2)
    a = cluster.replica("a")
    await rounds(cluster, [a], 3)
    assert a.held() == [0, 1]  # alone, it holds both

    b = cluster.replica("b")
    cluster.release_drains.clear()  # a's ticks on the shard it gives up are still running
    await b.step()  # b's first heartbeat: a sees it at its next step
    handing = asyncio.create_task(a.step())
    for _ in range(50):
        if cluster.drains:
            break
        await asyncio.sleep(0)
    assert cluster.drains, "a started handing a shard over"
    (_, moving) = cluster.drains[0]
    # While a's in-flight ticks finish, a no longer acts on the shard (gate and fence are
    # closed), and b cannot take it: its Lease is still a's.
    assert not a.holds(moving)
    for _ in range(3):
        await b.step()
        cluster.clock.seconds += 1
        assert cluster.actors([a, b])[moving] == []
    cluster.release_drains.set()
    await handing  # drained: a released the Lease
    assert cluster.leases[moving].record is not None
    assert cluster.leases[moving].record.holder is None
    await rounds(cluster, [a, b], 2)
    assert (sorted(a.held() + b.held()), len(a.held()), len(b.held())) == ([0, 1], 1, 1)
    assert cluster.actors([a, b])[moving] == ["b"]
    # The Lease went from a to nobody to b: never from a to b directly.
    holders = [record.holder for _, record in cluster.leases[moving].writes]
    assert holders[holders.index(None) - 1] == "a"
    assert holders[holders.index(None) + 1] == "b"


async def test_a_replica_that_dies_has_its_shards_taken_over_within_a_lease_duration() -> None:
    cluster = Cluster(shards=2)
    a, b = cluster.replica("a"), cluster.replica("b")
    await rounds(cluster, [a, b], 6)
    assert len(a.held()) == len(b.held()) == 1
    lost = b.held()[0]
    died_at = cluster.clock.seconds  # kill -9: b neither renews nor releases anything
    renewed_at = died_at - TIMING.retry_period_seconds  # b's last renewal, a round ago
    taken_at = None
    for _ in range(20):
        await a.step()
        if a.holds(lost):
            taken_at = cluster.clock.seconds
            break
        # b's own fence: past its renew deadline it acts no more, without a loop iteration
        deadline_passed = cluster.clock.seconds - renewed_at >= TIMING.renew_deadline_seconds
        assert b.holds(lost) != deadline_passed
        cluster.assert_exclusive([a, b])
        cluster.clock.seconds += TIMING.retry_period_seconds
    assert taken_at is not None
    takeover = taken_at - died_at
    assert TIMING.lease_duration_seconds <= takeover
    assert takeover <= TIMING.lease_duration_seconds + 2 * TIMING.retry_period_seconds
    assert a.held() == [0, 1]


async def test_a_replica_cut_off_from_the_api_server_stops_acting_at_its_deadline() -> None:
    cluster = Cluster(shards=2)
    a, b = cluster.replica("a"), cluster.replica("b")
    await rounds(cluster, [a, b], 6)
    for store in cluster.leases:  # every write a and b try from now on fails...
        store.fail_next = 0
    held_by_a = a.held()
    cut_at = cluster.clock.seconds
    partitioned = FakeLeaseStore(fail_next=10**6)
    for shard in held_by_a:  # ...for a only: its Leases cannot be renewed
        a.electors[shard].store = partitioned
    a._members = FakeMembersStore(fail_next=10**6)
    for _ in range(15):
        await a.step()
        await b.step()
        cluster.assert_exclusive([a, b])
        if cluster.clock.seconds - cut_at >= TIMING.renew_deadline_seconds:
            assert a.held() == []
        cluster.clock.seconds += TIMING.retry_period_seconds
    assert b.held() == [0, 1]


@pytest.mark.parametrize(
    "shards", [pytest.param(1, id="leader-lease"), pytest.param(2, id="shards")]
)
async def test_a_tick_that_waited_out_a_late_renewal_acts_again_once_it_is_renewed(
    shards: int,
) -> None:
    cluster = Cluster(shards=shards)
    a = cluster.replica("a")
    await rounds(cluster, [a], 3)
    assert a.held() == list(range(shards))
    # The event loop fell behind: no renewal within the renew deadline, though the Lease is
    # still a's (nobody may take it before the lease duration). A tick that looks now waits.
    cluster.clock.seconds += TIMING.renew_deadline_seconds + 1
    assert a.held() == []
    waiting = [asyncio.create_task(a.wait_held(shard)) for shard in range(shards)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    await a.step()  # the late renewal: the same holder, no new acquisition
    assert a.held() == list(range(shards))
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(task.done() for task in waiting), "a tick waits for a Lease it holds"


async def test_a_clean_stop_hands_every_shard_over_at_once() -> None:
    cluster = Cluster(shards=3)
    a, b = cluster.replica("a"), cluster.replica("b")
    await rounds(cluster, [a, b], 6)
    assert sorted(a.held() + b.held()) == [0, 1, 2]
    await b.release_all()
    assert b.held() == []
    await rounds(cluster, [a], 2)  # a still sees b's heartbeat, but the shards are free...
    await rounds(cluster, [a], math.ceil(TIMING.lease_duration_seconds / 2) + 1)
    assert a.held() == [0, 1, 2]  # ...and once b's heartbeat lapses, they are a's to take


async def test_one_shard_is_leader_election_on_the_leader_lease() -> None:
    cluster = Cluster(shards=1)
    a, b = cluster.replica("a"), cluster.replica("b")
    await rounds(cluster, [a, b], 3)
    assert (a.held(), b.held()) == ([0], [])
    assert cluster.members.record is None  # no members Lease with one shard
    await a.release_all()
    await rounds(cluster, [b], 1)
    assert b.held() == [0]


@pytest.mark.parametrize(
    ("shards", "members"),
    [
        pytest.param(1, ["a", "b"], id="one-shard-two-replicas"),
        pytest.param(2, ["a", "b"], id="two-two"),
        pytest.param(2, ["a", "b", "c"], id="more-replicas-than-shards"),
        pytest.param(8, ["a", "b", "c"], id="uneven"),
        pytest.param(64, [f"r{i}" for i in range(5)], id="many"),
    ],
)
def test_the_assignment_is_balanced_and_the_same_everywhere(
    shards: int, members: list[str]
) -> None:
    plan = assignment(shards, members)
    assert sorted(plan) == list(range(shards))
    per_member = Counter(plan.values())
    assert max(per_member.values()) <= math.ceil(shards / len(members))
    assert min(per_member.get(m, 0) for m in members) >= shards // len(members)
    assert assignment(shards, list(reversed(members))) == plan


@given(
    shards=st.integers(min_value=1, max_value=64),
    members=st.lists(
        st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=9, unique=True
    ),
)
def test_every_member_gets_its_fair_share_and_every_shard_one_holder(
    shards: int, members: list[str]
) -> None:
    plan = assignment(shards, members)
    assert sorted(plan) == list(range(shards))
    counts = [Counter(plan.values()).get(member, 0) for member in members]
    assert set(counts) <= {shards // len(members), math.ceil(shards / len(members))}


def test_pools_spread_evenly_over_the_shards_and_stay_put() -> None:
    keys = [("team-a", f"pool-{n}") for n in range(10_000)]
    shards = [shard_of(ns, name, 2) for ns, name in keys]
    assert shards == [shard_of(ns, name, 2) for ns, name in keys]
    assert 4_800 <= shards.count(0) <= 5_200
    assert {shard_of(ns, name, 1) for ns, name in keys} == {0}
    assert shard_lease_names("fleetscale", 1) == ["fleetscale"]
    assert shard_lease_names("fleetscale", 2) == ["fleetscale-shard-0", "fleetscale-shard-1"]


def test_a_member_is_live_while_its_heartbeat_moves_and_is_forgotten_long_after() -> None:
    seen = observe_members({}, {"a": 1, "b": 1}, now=0.0)
    seen = observe_members(seen, {"a": 2, "b": 1}, now=10.0)  # b's heartbeat stopped at 0
    assert live_members(seen, "a", 14.0, TIMING.lease_duration_seconds) == ["a", "b"]
    assert live_members(seen, "a", 15.0, TIMING.lease_duration_seconds) == ["a"]


async def test_members_that_stopped_long_ago_leave_the_members_lease() -> None:
    cluster = Cluster(shards=2)
    a, b = cluster.replica("a"), cluster.replica("b")
    await rounds(cluster, [a, b], 2)
    assert cluster.members.record is not None
    assert set(cluster.members.record.beats) == {"a", "b"}
    forget = FORGET_AFTER_LEASE_DURATIONS * TIMING.lease_duration_seconds
    await rounds(cluster, [a], int(forget / 2) + 2)
    assert set(cluster.members.record.beats) == {"a"}


@pytest.mark.parametrize(
    ("old_shards", "new_shards"),
    [
        pytest.param(1, 2, id="one-to-two"),
        pytest.param(2, 1, id="two-to-one"),
        pytest.param(2, 3, id="two-to-three"),
    ],
)
async def test_a_rollout_that_changes_the_shard_count_never_has_two_configurations_acting(
    old_shards: int, new_shards: int
) -> None:
    """Old and new replicas hold different Leases over the same pools: the new ones wait
    until the last old one has stopped, then take every shard."""
    clock, members, leader = Clock(), FakeMembersStore(), FakeLeaseStore()
    stores = {
        shards: [leader] if shards == 1 else [FakeLeaseStore() for _ in range(shards)]
        for shards in {old_shards, new_shards}
    }

    def replica(identity: str, shards: int) -> ShardManager:
        return ShardManager(
            stores[shards],
            identity,
            TIMING,
            members=members,
            leader_lease=leader,
            monotonic=clock.monotonic,
            wall=clock.wall,
            jitter=lambda: 0.0,
        )

    old = replica("old", old_shards)
    for _ in range(3):
        await old.step()
        clock.seconds += 2
    assert len(old.held()) == old_shards
    new = replica("new", new_shards)
    for _ in range(10):  # the new pod is up beside the old one: it waits
        await old.step()
        await new.step()
        assert new.held() == []
        assert new.other_configuration
        clock.seconds += 2
    await old.release_all()  # the rollout stops the old pod
    for _ in range(math.ceil(TIMING.lease_duration_seconds / 2) + 2):
        await new.step()
        clock.seconds += 2
    assert len(new.held()) == new_shards
