"""Step 9 (after the replica pipeline): the shed-load flag and its Retry-After.

Role: decide whether gateways should answer 429 with Retry-After. Callers: ``pipeline.plan``.

Rules, first match wins (``per_replica`` = waiting requests / max(ready replicas, 1)):

1. ``shedLoad.enabled`` false: off (``ShedLoadDisabled``).
2. ScalingLimited is False: off (``NotLimited``). Shed only ever happens at a limit.
3. Metrics unavailable: the previous flag is kept but never raised (``MetricsUnavailable``
   when it stays off). Dropping the flag on a Prometheus blink would let the queue flood the
   fleet again; raising it without evidence would turn users away for nothing.
4. ``per_replica > queuePerReplicaThreshold``: on, with the limit's reason (``MaxReplicas``,
   ``MaxNodes``, ``ReplicasNotReady`` ...).
5. ``per_replica < releaseQueuePerReplica`` (default half the threshold): off
   (``QueueBelowRelease``), but an active flag only once the queue has stayed below the release
   threshold for ``releaseAfterSeconds`` (counted from the first such sample, remembered in
   ``ShedState.release_candidate_since``); until then it stays on with the limit's reason
   (time hysteresis: a replica that just became Ready swallows the queue for a moment while
   demand is still above capacity). ``releaseAfterSeconds: 0`` releases on the first sample.
6. In between: unchanged (hysteresis); an active flag takes the current limit's reason.

The release timer runs only while every tick sees the queue below the release threshold: a
sample at or above it, missing metrics, or the flag going off resets it. Rules 1-2 release at
once (the fleet can grow to meet demand).

While on, the share of requests to refuse comes with the flag (``fraction``: bounded,
smoothed, with hysteresis); 0 while off.

Retry-After (only while on), clamped to ``[1, maxRetryAfterSeconds]`` and rounded up:

- limited by capacity that is coming (``CapacityLimit.seconds_until_more``): that time plus
  ``replica_startup_seconds`` (nodes first, then the model loads);
- ``ReplicasNotReady`` with a known startup time: what is left of it since the last scale;
- otherwise ``pollIntervalSeconds``: the next time the planner looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.planner import fraction
from fleetscale.planner.limits import REPLICAS_NOT_READY
from fleetscale.planner.text import number, seconds
from fleetscale.planner.types import (
    CapacityLimit,
    ConditionVerdict,
    ShedDecision,
    ShedState,
)

SHED_LOAD_DISABLED = "ShedLoadDisabled"
NOT_LIMITED = "NotLimited"
METRICS_UNAVAILABLE = "MetricsUnavailable"
QUEUE_BELOW_RELEASE = "QueueBelowRelease"
QUEUE_BELOW_THRESHOLD = "QueueBelowThreshold"


@dataclass(frozen=True)
class RetryInputs:
    """What the planner knows about when more capacity will serve."""

    capacity: CapacityLimit | None
    replica_startup_seconds: float | None
    last_scale_time: float | None
    poll_interval_seconds: int
    now: float


def retry_after_seconds(limit: ConditionVerdict, inputs: RetryInputs, ceiling: int) -> int:
    """Seconds clients should wait before retrying, for a fleet limited by ``limit``."""
    wait: float = inputs.poll_interval_seconds
    startup = inputs.replica_startup_seconds
    capacity = inputs.capacity
    if (
        capacity is not None
        and limit.reason == capacity.reason
        and capacity.seconds_until_more is not None
    ):
        wait = capacity.seconds_until_more + (startup or 0.0)
    elif limit.reason == REPLICAS_NOT_READY and startup is not None:
        elapsed = 0.0 if inputs.last_scale_time is None else inputs.now - inputs.last_scale_time
        remaining = startup - max(elapsed, 0.0)
        if remaining > 0:
            wait = remaining
    return max(1, min(ceiling, math.ceil(wait)))


def decide_shed(
    *,
    spec: ShedLoadSpec,
    limit: ConditionVerdict,
    queue_depth: float | None,
    ready_replicas: int,
    previous: ShedState,
    retry: RetryInputs,
) -> ShedDecision:
    """The shed flag for this tick; ``queue_depth`` None means metrics are unavailable."""

    def decision(
        active: bool, reason: str, message: str, release_candidate_since: float | None = None
    ) -> ShedDecision:
        share = fraction.shed_fraction(
            active=active,
            estimate=fraction.load_estimate(
                queue_depth, ready_replicas, spec.queue_per_replica_threshold, previous.fraction
            ),
            previous=previous.fraction if previous.active else 0.0,
            spec=spec,
            poll_interval_seconds=retry.poll_interval_seconds,
        )
        return ShedDecision(
            active=active,
            reason=reason,
            message=message,
            retry_after_seconds=(
                retry_after_seconds(limit, retry, spec.max_retry_after_seconds) if active else None
            ),
            changed=active != previous.active,
            release_candidate_since=release_candidate_since if active else None,
            fraction=share.fraction,
            fraction_message=share.message if active else "",
        )

    if not spec.enabled:
        return decision(False, SHED_LOAD_DISABLED, "shedLoad.enabled is false")
    if not limit.status:
        return decision(False, NOT_LIMITED, "the fleet can still grow to meet demand")
    if queue_depth is None:
        if previous.active:
            return decision(
                True, previous.reason, "metrics are unavailable; keeping the flag until they return"
            )
        return decision(False, METRICS_UNAVAILABLE, "metrics are unavailable; not shedding blind")

    per_replica = queue_depth / max(ready_replicas, 1)
    threshold = spec.queue_per_replica_threshold
    release = spec.release_threshold
    load = f"{number(per_replica)} waiting per ready replica"
    if per_replica > threshold:
        return decision(
            True, limit.reason, f"{load}, over {number(threshold)}, while {limit.message}"
        )
    if per_replica < release:
        hold = spec.release_after_seconds
        if previous.active and hold > 0:
            below_since = previous.release_candidate_since
            if below_since is None or below_since > retry.now:
                below_since = retry.now
            below_for = retry.now - below_since
            if below_for < hold:
                return decision(
                    True,
                    limit.reason,
                    f"{load}, under {number(release)} for {seconds(below_for)} of "
                    f"{seconds(hold)} (shedLoad.releaseAfterSeconds), while {limit.message}",
                    release_candidate_since=below_since,
                )
            return decision(
                False,
                QUEUE_BELOW_RELEASE,
                f"{load}, under {number(release)} for {seconds(below_for)}",
            )
        return decision(False, QUEUE_BELOW_RELEASE, f"{load}, under {number(release)}")
    if previous.active:
        return decision(
            True,
            limit.reason,
            f"{load}, not yet under {number(release)}, while {limit.message}",
        )
    return decision(False, QUEUE_BELOW_THRESHOLD, f"{load}, not over {number(threshold)}")


def next_shed_state(previous: ShedState, shed: ShedDecision, now: float) -> ShedState:
    """What to remember: ``since`` moves only when the flag flips."""
    since = now if shed.changed or previous.since is None else previous.since
    return ShedState(
        active=shed.active,
        since=since,
        reason=shed.reason,
        release_candidate_since=shed.release_candidate_since if shed.active else None,
        fraction=shed.fraction if shed.active else 0.0,
    )
