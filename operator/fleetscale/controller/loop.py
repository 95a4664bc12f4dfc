"""The one daemon loop both kinds run: tick on a wall-clock schedule, write what changed.

Role: kopf starts one daemon per object (InferencePool or AcceleratorPool); each runs
``run_ticks`` until kopf stops it. Every iteration re-reads the live body, so a spec change
(interval, mode, bounds) applies at the next tick without a restart and without losing the
in-flight tick. Ticks are aligned to wall-clock multiples of ``spec.pollIntervalSeconds``
(``next_tick``), so every pool of one tick reads its signals under that tick and the signals
adapter answers each PromQL once for all of them; within the tick each object runs at its own
stable offset (``tick_offset_seconds``), because a thousand pools waking at one instant queue
their reads behind each other. Each daemon ticks at once when it starts (a new object or a
restarted operator does not wait a whole interval).

The loop keeps the status it last wrote: until the watch delivers a newer body (a new
resourceVersion), that status is the truth, so a tick never diffs against a stale body and
writes the same change twice. Callers: ``controller.handlers``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetscale.kubeapi import describe

DEFAULT_POLL_INTERVAL_SECONDS = 15

# Spread the pools of one tick over this much time per pool, up to MAX_SPREAD_FRACTION of
# the interval: at 1,000 pools a 15 s tick spreads over 7.5 s (about 130 reconciles a second).
SPREAD_PER_POOL_SECONDS = 0.01
MAX_SPREAD_FRACTION = 0.5

RECONCILE_ERROR = "ReconcileError"
STATUS_WRITE_FAILED = "StatusWriteFailed"

# How long to wait before retrying when the operator's startup has not finished.
_NOT_STARTED_RETRY_SECONDS = 0.1


class ObjectGone(Exception):  # noqa: N818  (reads as what happened)
    """The object was deleted between the tick and the status write."""


class Stopped(Protocol):
    """kopf's ``stopped`` flag of a daemon: true once the daemon should end."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Awaitable[Any]: ...


class Gate(Protocol):
    """Whether this replica may act on the object now (it leads), and a way to wait for it."""

    def admits(self) -> bool: ...

    async def wait_admitted(self, stopped: Stopped) -> None:
        """Return once admitted, or once ``stopped`` is set."""
        ...


class AlwaysAdmitted:
    """The gate of an operator that acts alone (no leader election)."""

    def admits(self) -> bool:
        return True

    async def wait_admitted(self, stopped: Stopped) -> None:
        return None


@dataclass(frozen=True)
class TickOutcome:
    """A tick's rendered status and the merge patch from the stored one (empty: no write)."""

    status: Mapping[str, Any]
    patch: Mapping[str, Any]
    # The stored status after a write the tick made itself (a change recorded ahead of time):
    # the truth until the watch delivers it, whether or not the patch gets written.
    stored_before_patch: Mapping[str, Any] | None = None


# (stored status, now, scheduled tick) -> the outcome; None while the operator is starting.
TickOnce = Callable[[Mapping[str, Any] | None, float, float], Awaitable[TickOutcome | None]]


def next_tick(now: float, interval_seconds: float) -> float:
    """The next wall-clock multiple of the interval strictly after ``now``."""
    return (math.floor(now / interval_seconds) + 1) * interval_seconds


def current_tick(now: float, interval_seconds: float) -> float:
    """The wall-clock multiple of the interval at or before ``now``."""
    return math.floor(now / interval_seconds) * interval_seconds


def tick_offset_seconds(uid: str, interval_seconds: float, pools: int) -> float:
    """How long after each tick this object reconciles: a stable share of the tick's spread.

    The share comes from a hash of the object's uid, so it is the same on every tick and on
    every operator replica, and the objects fall evenly over the spread.
    """
    spread_seconds = min(interval_seconds * MAX_SPREAD_FRACTION, pools * SPREAD_PER_POOL_SECONDS)
    digest = hashlib.blake2b(uid.encode(), digest_size=8).digest()
    return spread_seconds * int.from_bytes(digest, "big") / 2**64


def poll_interval_seconds(raw_spec: Mapping[str, Any] | None) -> int:
    """The interval from a raw spec; the default when absent or invalid (the tick says why).

    Both kinds name it ``pollIntervalSeconds`` with the same default and bounds.
    """
    value = (raw_spec or {}).get("pollIntervalSeconds", DEFAULT_POLL_INTERVAL_SECONDS)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3600:
        return value
    return DEFAULT_POLL_INTERVAL_SECONDS


@dataclass(frozen=True)
class Schedule:
    """When an object ticks: its interval (from the live spec), its offset in the tick, and
    the gate that says whether this replica acts at all."""

    clock: Callable[[], float]
    offset_seconds: Callable[[float], float] = lambda _interval: 0.0
    gate: Gate = field(default_factory=AlwaysAdmitted)


async def run_ticks(
    body: Mapping[str, Any],
    stopped: Stopped,
    tick_once: TickOnce,
    write_status: Callable[[Mapping[str, Any]], Awaitable[None]],
    schedule: Schedule,
    on_failure: Callable[[str, str], None],
) -> None:
    """Tick the object until ``stopped`` (or until it is gone when its status is written).

    A tick that raises, or a status write that fails, is reported through
    ``on_failure(reason, detail)`` (``ReconcileError``, ``StatusWriteFailed``) and retried at
    the next tick: one bad tick never ends the loop. While the gate does not admit this
    replica (a standby), nothing is read or written; once admitted it ticks at once.
    """
    written: Mapping[str, Any] | None = None
    version_before_write: str | None = None
    tick = current_tick(schedule.clock(), poll_interval_seconds(body.get("spec")))
    while not stopped:
        if not schedule.gate.admits():
            await schedule.gate.wait_admitted(stopped)
            written = None  # another replica may have written meanwhile: trust the watch
            tick = current_tick(schedule.clock(), poll_interval_seconds(body.get("spec")))
            continue
        live_version = (body.get("metadata") or {}).get("resourceVersion")
        stored = body.get("status")
        if written is not None and live_version == version_before_write:
            stored = written  # the watch has not delivered our last write yet
        try:
            outcome = await tick_once(stored, schedule.clock(), tick)
        except Exception as error:
            on_failure(RECONCILE_ERROR, describe(error))
            outcome = TickOutcome(status={}, patch={})
        if outcome is None:  # the operator's startup has not finished; kopf orders it first
            await stopped.wait(_NOT_STARTED_RETRY_SECONDS)
            continue
        if outcome.stored_before_patch is not None:
            written, version_before_write = outcome.stored_before_patch, live_version
        if outcome.patch and schedule.gate.admits():
            try:
                await write_status(outcome.patch)
                written, version_before_write = outcome.status, live_version
            except ObjectGone:
                return
            except Exception as error:  # retried at the next tick with the same diff
                on_failure(STATUS_WRITE_FAILED, describe(error))
        now = schedule.clock()
        interval_seconds = poll_interval_seconds(body.get("spec"))
        offset_seconds = schedule.offset_seconds(interval_seconds)
        # The next tick whose turn for this object (tick + offset) is still ahead; never the
        # tick just run again, whatever the float arithmetic of now - offset gives.
        tick = next_tick(max(now - offset_seconds, tick), interval_seconds)
        await stopped.wait(max(0.0, tick + offset_seconds - now))
