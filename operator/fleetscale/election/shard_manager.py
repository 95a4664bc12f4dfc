"""Hold this replica's share of the shards, each through its own Lease, and hand shards over.

Role: one ``ShardManager`` per operator process. It keeps one ``LeaderElector`` per shard Lease
(``shards.shard_lease_names``: the leader Lease itself when there is one shard), so every
shard follows the leader Lease's rules exactly: renewed every retry period, acted on only
while the last renewal is younger than the renew deadline (``holds`` is computed from the
monotonic clock when asked), taken over by another replica only once it has been seen
unchanged for a lease duration. Every retry period it also advances this replica's heartbeat
in the members Lease (shards > 1), computes the live members from the heartbeats it sees
change, and from them the assignment every replica computes alike (``shards.assignment``).
A replica only acquires shards assigned to it; a shard it holds but is assigned to another
(a replica joined) is handed over: acting stops at once (``holds`` turns false, so the gate
and the write fence close), the shard's in-flight ticks drain (``drain``), and only then is
the Lease released, so the new holder acquires it at its next retry and no pool is ever
acted on by two replicas. A replica that dies stops renewing: its shards expire and the
survivors, which see its heartbeat stop at the same time, take them within a lease duration.
With one shard this is leader election on the leader Lease, as before (the members Lease is
only read). A rollout that changes the shard count runs two configurations side by side, whose
shard Leases differ: a replica that holds nothing acquires nothing while one of the other
configuration is alive (its heartbeat moves, or it holds the one-shard leader Lease).
Clocks and randomness are injected. Callers: ``controller.runtime``, tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from fleetscale.election.elector import STANDBY_JITTER_FRACTION, LeaderElector
from fleetscale.election.lease import Timing
from fleetscale.election.shards import (
    Sighting,
    assignment,
    beats_to_write,
    live_members,
    observe_members,
)
from fleetscale.election.store import LeaseStore, MembersRecord, MembersStore
from fleetscale.logs import get_logger

# A member whose heartbeat has not moved for this many lease durations is dropped from the
# members Lease (a crashed replica, a pod of an earlier rollout).
FORGET_AFTER_LEASE_DURATIONS = 10


class ShardManager:
    """Acquires, renews, hands over and releases this replica's shards."""

    def __init__(
        self,
        stores: Sequence[LeaseStore],
        identity: str,
        timing: Timing,
        *,
        members: MembersStore | None = None,
        leader_lease: LeaseStore | None = None,
        lease_names: Sequence[str] = (),
        on_change: Callable[[int, bool], None] | None = None,
        drain: Callable[[int], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.identity = identity
        self.timing = timing
        self._members = members
        self._on_change = on_change
        self._drain = drain
        self._monotonic = monotonic
        self._jitter = jitter
        names = list(lease_names) or [f"shard-{index}" for index in range(len(stores))]
        self.electors = [
            LeaderElector(
                store,
                identity,
                timing,
                on_change=self._changed_callback(index),
                monotonic=monotonic,
                wall=wall,
                jitter=jitter,
                lease_name=names[index],
            )
            for index, store in enumerate(stores)
        ]
        # With one shard, the leader Lease is shard 0's: no other to watch. With more, the
        # leader Lease is what a one-shard replica holds (a configuration to wait out).
        self._leader = (
            LeaderElector(leader_lease, identity, timing, monotonic=monotonic, wall=wall)
            if leader_lease is not None and len(stores) > 1
            else None
        )
        self._sightings: dict[str, Sighting] = {}
        self._counts: dict[str, int] = {}
        self.other_configuration = False  # replicas with another shard count are alive
        self._releasing: set[int] = set()
        self._acquired = [asyncio.Event() for _ in stores]
        self.live: list[str] = [identity]
        self.wanted: frozenset[int] = frozenset(range(len(stores)))
        self._log = get_logger("fleetscale.election", identity=identity)

    @property
    def shards(self) -> int:
        return len(self.electors)

    # ----------------------------------------------------------------- the fence
    def holds(self, shard: int) -> bool:
        """Whether this replica may act on ``shard`` now: it holds the shard's Lease within
        the renew deadline, and is not handing the shard over."""
        return shard not in self._releasing and self.electors[shard].is_leader()

    def held(self) -> list[int]:
        return [shard for shard in range(self.shards) if self.holds(shard)]

    async def wait_held(self, shard: int) -> None:
        """Return once this replica holds ``shard`` (right away if it does)."""
        while not self.holds(shard):
            await self._acquired[shard].wait()
            if not self.holds(shard):  # lost again, or renewed late: the next step sets it
                self._acquired[shard].clear()

    # ----------------------------------------------------------------- the loop
    async def step(self) -> None:
        """One round: heartbeat, assignment, then each shard renewed, acquired, or handed over.

        A replica that holds no shard acquires none while replicas running with another shard
        count are alive (a rollout that changes ``shards``): their shards are other Leases
        over the same pools, so it waits until the last of them has stopped.
        """
        self.live = await self._heartbeat()
        self.other_configuration = await self._other_configuration_alive()
        plan = assignment(self.shards, self.live)
        self.wanted = frozenset(shard for shard, member in plan.items() if member == self.identity)
        if self.other_configuration and not self.held():
            self.wanted = frozenset()
        giving_up = [s for s in range(self.shards) if s not in self.wanted and self.holds(s)]
        await asyncio.gather(
            *(
                elector.try_once(may_acquire=shard in self.wanted)
                for shard, elector in enumerate(self.electors)
                if shard not in giving_up
            )
        )
        for shard in giving_up:
            await self.hand_over(shard)
        # A renewal that came after the renew deadline lets this replica act again without a
        # new acquisition (the Lease stayed its own): wake the ticks that waited meanwhile.
        for shard in self.held():
            self._acquired[shard].set()

    async def run(self, stop: asyncio.Event) -> None:
        """Step every retry period until ``stop``; then hand over every shard still held."""
        try:
            while not stop.is_set():
                await self.step()
                wait_seconds = self.timing.retry_period_seconds
                if not self.held():  # standbys spread their attempts, as client-go's
                    wait_seconds *= 1 + STANDBY_JITTER_FRACTION * self._jitter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait_seconds)
        finally:
            await self.release_all()

    async def hand_over(self, shard: int) -> None:
        """Stop acting on ``shard``, let its in-flight ticks finish, then release its Lease."""
        self._releasing.add(shard)  # holds() is false from here: no tick starts, no write leaves
        try:
            if self._drain is not None:
                # Within the renew deadline the Lease is still ours to release cleanly.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._drain(shard), self.timing.renew_deadline_seconds / 2
                    )
            await self.electors[shard].release()
            self._log.info("shard_handed_over", reason="Rebalanced", shard=shard)
        finally:
            self._releasing.discard(shard)

    async def release_all(self) -> None:
        """Hand over every shard held (a clean stop): the others take over at their next retry."""
        for shard in range(self.shards):
            if self.electors[shard].is_leader():
                await self.hand_over(shard)

    # ----------------------------------------------------------------- inside
    async def _heartbeat(self) -> list[str]:
        """Read the members Lease and, with more than one shard, advance our heartbeat in it;
        the members with our shard count seen alive."""
        if self._members is None:
            return [self.identity]
        duration = self.timing.lease_duration_seconds
        try:
            current = await self._members.get()
            beats = dict(current.beats) if current is not None else {}
            self._counts = dict(current.shards) if current is not None else {}
            self._sightings = observe_members(self._sightings, beats, self._monotonic())
            if self.shards > 1:  # one shard: read only (a one-shard replica never writes it)
                await self._write_heartbeat(current, beats)
        except Exception as error:  # a conflict or an unreachable API: judge from what we saw
            self._log.debug("members_attempt_failed", reason="LeaseUnavailable", detail=str(error))
        live = live_members(self._sightings, self.identity, self._monotonic(), duration)
        return [m for m in live if m == self.identity or self._counts.get(m) == self.shards]

    async def _write_heartbeat(self, current: MembersRecord | None, beats: dict[str, int]) -> None:
        assert self._members is not None
        now = self._monotonic()
        forget_after = FORGET_AFTER_LEASE_DURATIONS * self.timing.lease_duration_seconds
        written = beats_to_write(beats, self._sightings, self.identity, now, forget_after)
        counts = {m: self._counts.get(m, self.shards) for m in written}
        counts[self.identity] = self.shards
        record = MembersRecord(
            written, counts, None if current is None else current.resource_version
        )
        members = self._members
        await (members.create(record) if current is None else members.update(record))

    async def _other_configuration_alive(self) -> bool:
        """Whether a replica with another shard count is alive: a live member with another
        count, or (with more than one shard) a live holder of the one-shard leader Lease."""
        now, duration = self._monotonic(), self.timing.lease_duration_seconds
        live = live_members(self._sightings, self.identity, now, duration)
        if any(self._counts.get(m, self.shards) != self.shards for m in live):
            return True
        if self._leader is None:
            return False
        await self._leader.try_once(may_acquire=False)
        return self._leader.held_by_another()

    def _changed_callback(self, shard: int) -> Callable[[bool], None]:
        def changed(leading: bool) -> None:
            if leading:
                self._acquired[shard].set()
            else:
                self._acquired[shard].clear()
            if self._on_change is not None:
                self._on_change(shard, leading)

        return changed
