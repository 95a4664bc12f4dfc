"""The rules of a Lease, as client-go's leader election applies them. Pure.

Role: from the Lease record as last read, who we are and the time, decide the record to write
(acquire, renew, take over an expired lease, release) or that another replica holds it.
Expiry is judged on the reader's own monotonic clock, from the moment it last saw the record
change, never from the timestamps in the record: replicas' wall clocks may disagree.
Callers: ``elector``.

Timing (client-go's defaults): a holder renews every ``retry_period_seconds``; a holder that
has not renewed within ``renew_deadline_seconds`` of its last successful renewal stops acting;
a standby takes over once it has seen no change for ``lease_duration_seconds``. Because the
deadline is shorter than the duration, a holder has stopped acting before any standby may
take over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Timing:
    """How often, and how long, a lease is held."""

    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not (
            self.lease_duration_seconds
            > self.renew_deadline_seconds
            > self.retry_period_seconds
            > 0
        ):
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration_seconds} > {self.renew_deadline_seconds} > "
                f"{self.retry_period_seconds}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec as the API server holds it (times are epoch seconds)."""

    holder: str | None
    lease_duration_seconds: int
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0
    resource_version: str | None = None  # None: not created yet

    def same_as(self, other: LeaseRecord | None) -> bool:
        """Whether ``other`` is this record unchanged (another replica did not write it)."""
        return other is not None and (
            self.holder,
            self.renew_time,
            self.transitions,
            self.resource_version,
        ) == (other.holder, other.renew_time, other.transitions, other.resource_version)


def expired(observed_at: float | None, now: float, record: LeaseRecord) -> bool:
    """Whether a record last seen changing at ``observed_at`` (monotonic) has lapsed at
    ``now``: no holder, or no change seen for the record's lease duration."""
    if not record.holder:
        return True
    return observed_at is None or now - observed_at >= record.lease_duration_seconds


def claim(
    current: LeaseRecord | None,
    identity: str,
    now_wall: float,
    is_expired: bool,
    timing: Timing,
) -> LeaseRecord | None:
    """The record that holds the lease for ``identity``: a new lease, a renewal of ours, or a
    takeover of an expired one. None while another holder's lease is live."""
    # Whole seconds on the wire, rounded up: a standby never waits less than the duration.
    duration = math.ceil(timing.lease_duration_seconds)
    if current is None:
        return LeaseRecord(identity, duration, now_wall, now_wall, 0)
    if current.holder == identity:
        return replace(current, lease_duration_seconds=duration, renew_time=now_wall)
    if not is_expired:
        return None
    return replace(
        current,
        holder=identity,
        lease_duration_seconds=duration,
        acquire_time=now_wall,
        renew_time=now_wall,
        transitions=current.transitions + 1,
    )


def released(current: LeaseRecord, identity: str, now_wall: float) -> LeaseRecord | None:
    """The record that gives our lease up at once (a clean stop), None if it is not ours.

    As client-go does on release: no holder and a one-second duration, so a standby takes over
    at its next retry instead of waiting out the lease.
    """
    if current.holder != identity:
        return None
    return replace(current, holder=None, lease_duration_seconds=1, renew_time=now_wall)
