"""The leader election loop: acquire, renew, stop acting on time, release on a clean stop.

Role: one ``LeaderElector`` per operator process. Every retry period it reads the Lease and
writes the record ``lease.claim`` gives (create, renew, or take over an expired lease).
``is_leader()`` is the fence every write checks: true only while the last successful
renewal started less than the renew deadline ago, computed from the monotonic clock at the
moment of asking, so a process that was paused (SIGSTOP), partitioned or starved stops
acting the instant its deadline passes, before its loop even runs again, and acts again only
after it has re-acquired. A standby acquires once it has seen the Lease unchanged for a lease
duration. On a clean stop the holder releases the Lease so a standby takes over at its next
retry. Clocks and randomness are injected. Callers: ``controller.handlers``, tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from fleetscale.election.lease import LeaseRecord, Timing, claim, expired, released
from fleetscale.election.store import LeaseStore
from fleetscale.logs import get_logger

# A standby waits a little longer than the retry period, at random, so replicas that start
# together do not write the Lease in lockstep (client-go jitters the same way).
STANDBY_JITTER_FRACTION = 0.2


class LeaderElector:
    """Holds (or waits for) one Lease on behalf of this process."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing,
        *,
        on_change: Callable[[bool], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        lease_name: str | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.timing = timing
        self._on_change = on_change
        self._monotonic = monotonic
        self._wall = wall
        self._jitter = jitter
        self._leading = False
        self._renewed_at: float | None = None  # monotonic start of the last good renewal
        self._observed: LeaseRecord | None = None
        self._observed_at: float | None = None  # monotonic: when it last changed
        self._leader_event = asyncio.Event()
        context = {"lease": lease_name} if lease_name else {}
        self._log = get_logger("fleetscale.election", identity=identity, **context)

    def is_leader(self) -> bool:
        """Whether this process may act now (the fence)."""
        return (
            self._leading
            and self._renewed_at is not None
            and self._monotonic() - self._renewed_at < self.timing.renew_deadline_seconds
        )

    def held_by_another(self) -> bool:
        """Whether the Lease, as last read, has another live holder (judged as a standby
        judges expiry: seen unchanged for less than its duration)."""
        record = self._observed
        return (
            record is not None
            and bool(record.holder)
            and record.holder != self.identity
            and not expired(self._observed_at, self._monotonic(), record)
        )

    async def wait_until_leader(self, timeout_seconds: float) -> bool:
        """Wait until this process leads, at most ``timeout_seconds``; whether it does."""
        if self.is_leader():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leader_event.wait(), timeout_seconds)
        return self.is_leader()

    async def try_once(self, may_acquire: bool = True) -> bool:
        """One attempt to acquire or renew; whether this process holds the Lease after it.

        ``may_acquire`` False: renew it if held, but take it neither when it is free nor when
        it has expired (another replica should: a shard assigned elsewhere). The Lease is
        read either way, so its expiry is judged from when it was last seen changing.
        """
        started = self._monotonic()
        try:
            current = await self.store.get()
            record = self._claim(current)
            ours = current is not None and current.holder == self.identity
            if not (may_acquire or ours):
                record = None
            if record is not None:
                stored = await (
                    self.store.create(record) if current is None else self.store.update(record)
                )
                self._observed, self._observed_at = stored, self._monotonic()
                self._renewed_at = started
                self._set_leading(True)
                return True
        except Exception as error:  # an unreachable API server, a conflict: try again later
            self._log.debug("lease_attempt_failed", reason="LeaseUnavailable", detail=str(error))
        self._set_leading(self.is_leader())
        return self._leading

    def _claim(self, current: LeaseRecord | None) -> LeaseRecord | None:
        now = self._monotonic()
        if current is not None and not current.same_as(self._observed):
            self._observed, self._observed_at = current, now
        is_expired = current is None or expired(self._observed_at, now, current)
        return claim(current, self.identity, self._wall(), is_expired, self.timing)

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire and renew until ``stop`` is set, then release the Lease if held."""
        try:
            while not stop.is_set():
                await self.try_once()
                wait_seconds = self.timing.retry_period_seconds
                if not self._leading:
                    wait_seconds *= 1 + STANDBY_JITTER_FRACTION * self._jitter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait_seconds)
        finally:
            await self.release()

    async def release(self) -> None:
        """Give the Lease up if this process holds it (a clean stop); never raises."""
        was_leader = self.is_leader()
        self._set_leading(False)
        if not was_leader:
            return
        try:
            current = await self.store.get()
            record = released(current, self.identity, self._wall()) if current else None
            if record is not None:
                await self.store.update(record)
                self._log.info("lease_released", reason="Stopping")
        except Exception as error:  # the standby then waits out the lease duration
            self._log.warning("lease_release_failed", reason="LeaseUnavailable", detail=str(error))

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self._leader_event.set()
            self._log.info("leadership_acquired", reason="LeaderElected")
        else:
            self._leader_event.clear()
            self._log.warning("leadership_lost", reason="LeaderLost")
        if self._on_change is not None:
            self._on_change(leading)
