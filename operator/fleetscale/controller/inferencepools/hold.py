"""A tick that holds: nothing read can be trusted, so nothing is decided or changed.

Role: the report of an InferencePool tick whose target came from a watch-fed cache that cannot
vouch for its contents (``caches.CacheStale``): Ready=False with the reason and a message that
stays the same while the cause does, a Warning Event when it starts, and everything else as
stored: the size, the shed flag and its gauges, the readings, the planner's memory. Unlike a
pool that is not reconciled (``report.report_not_ready``), a held pool keeps its shed flag: the
hold is about the operator's view, not the fleet, and it lifts by itself when the watch
recovers. Pure. Callers: ``tick``.
"""

from __future__ import annotations

from fleetscale.api.inferencepool import InferencePoolStatus
from fleetscale.controller.conditions import READY, EventRecord, find_condition, set_condition
from fleetscale.controller.inferencepools.ports import InferencePoolRef
from fleetscale.controller.inferencepools.report import CONDITION_ORDER, Report

CACHE_STALE = "CacheStale"


def report_held(
    pool: InferencePoolRef,
    stored: InferencePoolStatus,
    reason: str,
    message: str,
    now: float,
) -> Report:
    """Ready=False with ``reason``; the rest of the status stays as stored."""
    previous = find_condition(stored.conditions, READY)
    conditions = set_condition(
        stored.conditions, READY, False, reason, message, now, pool.generation, CONDITION_ORDER
    )
    unchanged = previous is not None and (previous.reason, previous.message) == (reason, message)
    status = stored.model_copy(
        update={"conditions": conditions, "observed_generation": pool.generation}
    )
    events = () if unchanged else (EventRecord("Warning", reason, message),)
    return Report(status=status, reason=reason, events=events, errors=(reason,))
