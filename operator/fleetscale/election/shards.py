"""Which shard a pool belongs to, which Lease holds each shard, and who should hold it. Pure.

Role: the rules of sharding, with no I/O and no clock. A pool belongs to one shard by a stable
hash of its namespace and name (the same on every replica and across restarts). Each shard is
held through its own Lease, under the leader Lease's rules (``lease``): with one shard, that is
the leader Lease itself (``fleetscale``), so a single shard behaves exactly as leader election;
with more, ``<lease>-shard-<i>``. Who *should* hold each shard, given the live members, is a
deterministic balanced assignment (``assignment``): every replica computes the same one from
the same members, and each gets its fair share (the floor or one more), each shard going to
the member that ranks it highest with room (rendezvous hashing). A replica only ever
acquires a shard that is free or expired; it gives up, after stopping its work, a shard that
is assigned to another.
Liveness of members is judged like a Lease's expiry: by a member's heartbeat changing, on the
reader's own monotonic clock (``live_members``). Callers: ``election.shard_manager``, the
controller (``shard_of``), the operator bench.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MEMBERS_SUFFIX = "-members"


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of the pool ``namespace/name`` among ``shards``."""
    return 0 if shards <= 1 else _hash(f"{namespace}/{name}") % shards


def shard_lease_names(lease_name: str, shards: int) -> list[str]:
    """The Lease of each shard: the leader Lease itself when there is one shard."""
    if shards <= 1:
        return [lease_name]
    return [f"{lease_name}-shard-{index}" for index in range(shards)]


def members_lease_name(lease_name: str) -> str:
    """The Lease whose annotation lists the replicas and their heartbeats (shards > 1)."""
    return f"{lease_name}{MEMBERS_SUFFIX}"


def assignment(shards: int, members: Sequence[str]) -> dict[int, str]:
    """Who should hold each shard: every member ``shards // members`` of them or one more,
    each shard to the member that ranks it highest (rendezvous hashing) among those with room.

    The same members (in any order) give the same assignment on every replica.
    """
    if not members:
        return {}
    ordered = sorted(set(members))
    base, extra = divmod(shards, len(ordered))
    ranked = {
        shard: sorted(ordered, key=lambda member: (-_hash(f"{shard}/{member}"), member))
        for shard in range(shards)
    }
    held: dict[str, int] = dict.fromkeys(ordered, 0)
    result: dict[int, str] = {}
    # First every member's floor, then the remainder: one more for ``extra`` members.
    for room, limit in ((base, None), (base + 1, extra)):
        for shard in range(shards):
            if shard in result:
                continue
            for member in ranked[shard]:
                if held[member] < room:
                    result[shard] = member
                    held[member] += 1
                    if limit is not None:
                        limit -= 1
                    break
            if limit == 0:
                break
    return result


@dataclass(frozen=True)
class Sighting:
    """A member's heartbeat as last seen, and when it last changed (reader's monotonic)."""

    beat: int
    changed_at: float


def observe_members(
    previous: Mapping[str, Sighting], beats: Mapping[str, int], now: float
) -> dict[str, Sighting]:
    """The sightings after reading ``beats`` at ``now``: a changed (or new) heartbeat is seen
    changing now; an unchanged one keeps its time; a member no longer listed is forgotten."""
    seen: dict[str, Sighting] = {}
    for member, beat in beats.items():
        before = previous.get(member)
        unchanged = before is not None and before.beat == beat
        seen[member] = before if unchanged and before is not None else Sighting(beat, now)
    return seen


def live_members(
    sightings: Mapping[str, Sighting], identity: str, now: float, lease_duration_seconds: float
) -> list[str]:
    """Members whose heartbeat changed within a lease duration, and always ourselves."""
    live = {
        member
        for member, sighting in sightings.items()
        if now - sighting.changed_at < lease_duration_seconds
    }
    return sorted(live | {identity})


def beats_to_write(
    beats: Mapping[str, int],
    sightings: Mapping[str, Sighting],
    identity: str,
    now: float,
    forget_after_seconds: float,
) -> dict[str, int]:
    """The members annotation to write: our heartbeat advanced, and members silent for longer
    than ``forget_after_seconds`` (crashed replicas, pods of old rollouts) dropped."""
    kept = {
        member: beat
        for member, beat in beats.items()
        if member != identity
        and (member not in sightings or now - sightings[member].changed_at < forget_after_seconds)
    }
    kept[identity] = beats.get(identity, 0) + 1
    return kept
