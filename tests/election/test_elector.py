"""Leader election over a shared in-memory Lease, with clocks the tests move by hand.

Two electors share one ``FakeLeaseStore`` as two operator replicas share one Lease: exactly one
leads; a leader that cannot renew stops acting the instant its renew deadline passes (before
its loop runs again); a standby takes over only after the lease duration without a change;
a clean stop hands over at once.
"""

from __future__ import annotations

import pytest

from fleetscale.election import LeaderElector, Timing
from fleetscale.election.lease import LeaseRecord, claim, expired, released
from fleetscale.election.store import FakeLeaseStore

TIMING = Timing(lease_duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)
EPOCH = 1_800_000_000.0


class Clock:
    """A monotonic and a wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> float:
        return EPOCH + self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


def elector(store: FakeLeaseStore, identity: str, clock: Clock, log: list[str]) -> LeaderElector:
    return LeaderElector(
        store,
        identity,
        TIMING,
        on_change=lambda leading: log.append(f"{identity}:{'lead' if leading else 'lost'}"),
        monotonic=clock.monotonic,
        wall=clock.wall,
        jitter=lambda: 0.0,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_exactly_one_of_two_replicas_leads(clock: Clock) -> None:
    store, log = FakeLeaseStore(), []
    a, b = elector(store, "a", clock, log), elector(store, "b", clock, log)
    assert await a.try_once()
    assert not await b.try_once()
    for _ in range(20):  # a minute of renewals and standby attempts
        clock.advance(TIMING.retry_period_seconds)
        assert await a.try_once()
        assert not await b.try_once()
        assert (a.is_leader(), b.is_leader()) == (True, False)
    assert store.record is not None
    assert store.record.holder == "a"
    assert log == ["a:lead"]


async def test_a_leader_that_cannot_renew_stops_at_its_deadline(clock: Clock) -> None:
    store, log = FakeLeaseStore(), []
    a = elector(store, "a", clock, log)
    assert await a.try_once()
    store.fail_next = 100  # the API server is unreachable from here on
    clock.advance(TIMING.renew_deadline_seconds - 0.5)
    assert a.is_leader()
    clock.advance(0.5)
    # No loop iteration ran: the fence is the clock itself.
    assert not a.is_leader()
    assert not await a.try_once()
    assert log == ["a:lead", "a:lost"]


async def test_a_paused_leader_writes_nothing_until_it_reacquires(clock: Clock) -> None:
    """SIGSTOP past the lease, a standby takes over, SIGCONT: the old leader is fenced."""
    store, log = FakeLeaseStore(), []
    a, b = elector(store, "a", clock, log), elector(store, "b", clock, log)
    assert await a.try_once()
    assert not await b.try_once()
    # a is stopped; b keeps trying every retry period and sees no change.
    for _ in range(int(TIMING.lease_duration_seconds / TIMING.retry_period_seconds) + 1):
        clock.advance(TIMING.retry_period_seconds)
        took_over = await b.try_once()
    assert took_over
    # a resumes: before any loop iteration, it is no longer the leader.
    assert not a.is_leader()
    assert not await a.try_once()  # the lease is b's now
    assert (a.is_leader(), b.is_leader()) == (False, True)
    assert store.record is not None
    assert (store.record.holder, store.record.transitions) == ("b", 1)


async def test_a_standby_waits_out_the_lease_duration_after_a_crash(clock: Clock) -> None:
    store, log = FakeLeaseStore(), []
    a, b = elector(store, "a", clock, log), elector(store, "b", clock, log)
    assert await a.try_once()
    assert not await b.try_once()
    crashed = clock.seconds  # a is killed: no more renewals, no release
    del a
    while not await b.try_once():
        clock.advance(TIMING.retry_period_seconds)
    waited = clock.seconds - crashed
    assert TIMING.lease_duration_seconds <= waited < TIMING.lease_duration_seconds + 2 * 2


async def test_a_clean_stop_hands_over_at_the_next_retry(clock: Clock) -> None:
    store, log = FakeLeaseStore(), []
    a, b = elector(store, "a", clock, log), elector(store, "b", clock, log)
    assert await a.try_once()
    assert not await b.try_once()
    await a.release()
    assert not a.is_leader()
    clock.advance(TIMING.retry_period_seconds)
    assert await b.try_once()


async def test_a_lost_race_is_a_conflict_not_two_leaders(clock: Clock) -> None:
    store, log = FakeLeaseStore(), []
    a, b = elector(store, "a", clock, log), elector(store, "b", clock, log)
    # Both read "no lease" and both try to create it: only one create can win.
    results = [await a.try_once(), await b.try_once()]
    assert results == [True, False]
    assert [verb for verb, _ in store.writes] == ["create"]


@pytest.mark.parametrize(
    ("observed_at", "now", "holder", "is_expired"),
    [
        pytest.param(0.0, 14.9, "a", False, id="live"),
        pytest.param(0.0, 15.0, "a", True, id="lapsed"),
        pytest.param(0.0, 1.0, None, True, id="released"),
        pytest.param(None, 0.0, "a", True, id="never-seen-changing"),
    ],
)
def test_expiry_is_judged_on_the_observers_clock(
    observed_at: float | None, now: float, holder: str | None, is_expired: bool
) -> None:
    record = LeaseRecord(holder, 15, renew_time=EPOCH + 999)  # the record's times are ignored
    assert expired(observed_at, now, record) is is_expired


def test_claim_and_release() -> None:
    current = LeaseRecord("a", 15, EPOCH, EPOCH, 3, "7")
    assert claim(current, "b", EPOCH + 5, is_expired=False, timing=TIMING) is None
    taken = claim(current, "b", EPOCH + 20, is_expired=True, timing=TIMING)
    assert taken is not None
    assert (taken.holder, taken.transitions, taken.acquire_time) == ("b", 4, EPOCH + 20)
    renewed = claim(current, "a", EPOCH + 2, is_expired=False, timing=TIMING)
    assert renewed is not None
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (EPOCH, EPOCH + 2, 3)
    assert released(current, "b", EPOCH) is None
    gone = released(current, "a", EPOCH + 1)
    assert gone is not None
    assert (gone.holder, gone.lease_duration_seconds) == (None, 1)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [
        pytest.param(10, 10, 2, id="deadline-not-below-duration"),
        pytest.param(15, 2, 2, id="retry-not-below-deadline"),
        pytest.param(15, 10, 0, id="no-retry"),
    ],
)
def test_timing_that_could_let_two_replicas_act_is_refused(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        Timing(duration, deadline, retry)
