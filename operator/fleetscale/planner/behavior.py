"""Steps 5-6 of the replica pipeline: stabilization windows and rate policies (HPA behavior).

Role: the same semantics as the HPA's ``normalizeDesiredReplicasWithBehaviors``, over
histories that live in the InferencePool's status instead of the controller's memory, so a
restarted operator continues exactly where the last one stopped. Callers: ``pipeline.plan``.

Stabilization (step "stabilize"): the history is a run-length record of the signals' raw ask
(step 4). Each entry ``(time, replicas)`` means "from ``time`` until the next entry's time (the
last entry: until now) the raw ask was ``replicas``"; an ask equal to the last entry's value
adds nothing, so under constant load the history (and the status it is stored in) stays the
same tick after tick. Scale-up takes the *lowest* value among the segments that overlap the
window ``(now - scaleUp.stabilizationWindowSeconds, now]``, scale-down the *highest* among those
that overlap the scale-down window; the result is the current size pulled into
``[lowest_up, highest_down]``. A segment overlaps while it ended after the window's start
(``end > now - window``); the last segment is still running, so it counts in every window
longer than zero, and a window of zero looks at the current ask only. Compared with a list of
samples, a value counts until the window has passed the moment it was *replaced*, rather than
its last sample (at most one poll longer), and an ask held through a gap in the metrics keeps
counting until the next usable tick replaces it. An empty history is seeded with the current
size, as the HPA's ``recordInitialRecommendation`` does on its first sight of a target whatever
its windows, so that a new pool neither shrinks before one scale-down window nor grows before
one scale-up window has been observed.

Rate policies (step "rate"): each policy limits the change within its ``periodSeconds``,
counted from the replicas at the start of that period (current minus the changes recorded in
the period). ``Pods`` allows ``value`` replicas; ``Percent`` allows ``value`` percent of the
period's start, computed in floating point exactly as the HPA's
``calculateScaleUpLimitWithScalingRules`` / ``calculateScaleDownLimitWithBehaviors`` do:
``ceil(start * (1 + value / 100))`` when growing (so a fleet at zero needs a ``Pods`` policy to
start, as in the HPA), ``trunc(start * (1 - value / 100))`` when shrinking.
``selectPolicy: Max`` picks the policy allowing the most change, ``Min`` the least,
``Disabled`` forbids that direction. Omitted fields take the HPA's per-direction defaults
(``rules``); an explicit empty ``policies`` list means no limit (the HPA rejects it).

History is kept small: a segment that ended at or before ``now - longest window`` can overlap
no window of this or any later tick and is dropped (the segment that spans the window start is
kept, and so is the running last one); scale events older than the longest period are dropped.
Scale events are recorded only on a change of size, so they too stay put under constant load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fleetscale.api.inferencepool import (
    HPA_SCALE_DOWN_WINDOW_SECONDS,
    HPA_SCALE_UP_WINDOW_SECONDS,
    HPA_TOLERANCE,
    Behavior,
    ScalingPolicy,
    ScalingRules,
    hpa_scale_down_policies,
    hpa_scale_up_policies,
)
from fleetscale.planner.text import seconds
from fleetscale.planner.types import Step, TimedDelta, TimedReplicas

# How many entries the histories keep at most, whatever the poll interval and the windows: they
# are stored in the pool's status (see ``_compact_recommendations``, ``_compact_scale_events``).
MAX_RECOMMENDATIONS = 48
MAX_SCALE_EVENTS = 48

STABILIZE = "stabilize"
RATE = "rate"

SCALE_UP_STABILIZED = "ScaleUpStabilized"
SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
RECOMMENDATION_STABLE = "RecommendationStable"
SCALE_UP_RATE_LIMITED = "ScaleUpRateLimited"
SCALE_DOWN_RATE_LIMITED = "ScaleDownRateLimited"
SCALE_UP_DISABLED = "ScaleUpDisabled"
SCALE_DOWN_DISABLED = "ScaleDownDisabled"
WITHIN_RATE_LIMITS = "WithinRateLimits"


@dataclass(frozen=True)
class Rules:
    """One direction's rules with every omitted field resolved to the HPA's default."""

    window_seconds: int
    select_policy: str
    policies: tuple[ScalingPolicy, ...]


@dataclass(frozen=True)
class Tolerances:
    """How far below and above its target a signal may read before it asks for a change."""

    down: float = HPA_TOLERANCE
    up: float = HPA_TOLERANCE

    def within(self, usage_ratio: float) -> bool:
        """The HPA's ``isWithin``: ``1 - down <= ratio <= 1 + up``, in floating point as
        upstream (a ratio of 11 / 10 holds with a tolerance of 0.1)."""
        return (1.0 - self.down) <= usage_ratio <= (1.0 + self.up)


def rules(behavior: Behavior, direction: str) -> Rules:
    """``behavior.scaleUp`` (direction "up") or ``behavior.scaleDown`` with the HPA's defaults
    for what it leaves out (``GenerateHPAScaleUpRules`` / ``GenerateHPAScaleDownRules``)."""
    up = direction == "up"
    given: ScalingRules = behavior.scale_up if up else behavior.scale_down
    window = given.stabilization_window_seconds
    if window is None:
        window = HPA_SCALE_UP_WINDOW_SECONDS if up else HPA_SCALE_DOWN_WINDOW_SECONDS
    policies = given.policies
    if policies is None:
        policies = hpa_scale_up_policies() if up else hpa_scale_down_policies()
    return Rules(window_seconds=window, select_policy=given.select_policy, policies=policies)


def tolerances(behavior: Behavior, metrics_tolerance: float | None) -> Tolerances:
    """Each direction's own tolerance, else the deprecated symmetric metrics.tolerance, else
    the HPA controller's default (0.1)."""
    fallback = HPA_TOLERANCE if metrics_tolerance is None else metrics_tolerance
    down = behavior.scale_down.tolerance
    up = behavior.scale_up.tolerance
    return Tolerances(down=fallback if down is None else down, up=fallback if up is None else up)


def longest_window_seconds(behavior: Behavior) -> int:
    return max(rules(behavior, "up").window_seconds, rules(behavior, "down").window_seconds)


def longest_period_seconds(behavior: Behavior) -> int:
    periods = [p.period_seconds for p in rules(behavior, "up").policies]
    periods += [p.period_seconds for p in rules(behavior, "down").policies]
    return max(periods, default=0)


def seeded(
    history: tuple[TimedReplicas, ...], current_replicas: int, now: float
) -> tuple[TimedReplicas, ...]:
    """The history, or the current size as its first entry when there is none yet (the HPA's
    ``recordInitialRecommendation``, whatever the windows)."""
    if history:
        return history
    return (TimedReplicas(time=now, replicas=current_replicas),)


def _within(time: float, window_seconds: float, now: float) -> bool:
    return time > now - window_seconds


def segments(
    history: Iterable[TimedReplicas], now: float
) -> tuple[tuple[TimedReplicas, float], ...]:
    """Each history entry with the time its segment ended (the last one runs until ``now``)."""
    ordered = sorted(history, key=lambda entry: entry.time)
    if not ordered:
        return ()
    ends = [entry.time for entry in ordered[1:]] + [now]
    return tuple(zip(ordered, ends, strict=True))


def _overlaps(end: float, window_seconds: float, now: float) -> bool:
    """Whether a segment ending at ``end`` overlaps the window ``(now - window, now]``."""
    return window_seconds > 0 and end > now - window_seconds


def stabilize(
    desired: int,
    current_replicas: int,
    history: Iterable[TimedReplicas],
    behavior: Behavior,
    now: float,
) -> Step:
    """Pull the raw ask into the band the recent recommendations allow (step "stabilize")."""
    up_window = rules(behavior, "up").window_seconds
    down_window = rules(behavior, "down").window_seconds
    lowest_up = desired
    highest_down = desired
    for entry, end in segments(history, now):
        if _overlaps(end, up_window, now):
            lowest_up = min(lowest_up, entry.low)
        if _overlaps(end, down_window, now):
            highest_down = max(highest_down, entry.replicas)
    stabilized = min(max(current_replicas, lowest_up), highest_down)

    if stabilized == desired:
        return Step(STABILIZE, stabilized, RECOMMENDATION_STABLE)
    if desired > current_replicas:
        return Step(
            STABILIZE,
            stabilized,
            SCALE_UP_STABILIZED,
            f"lowest recommendation in the last {seconds(up_window)} (scale-up window) "
            f"is {lowest_up}",
        )
    return Step(
        STABILIZE,
        stabilized,
        SCALE_DOWN_STABILIZED,
        f"highest recommendation in the last {seconds(down_window)} (scale-down window) "
        f"is {highest_down}",
    )


def _changes_within(
    events: Iterable[TimedDelta], period_seconds: int, now: float
) -> tuple[int, int]:
    """Replicas added and removed (both non-negative) within one period."""
    added = removed = 0
    for event in events:
        if _within(event.time, period_seconds, now):
            if event.delta > 0:
                added += event.delta
            else:
                removed -= event.delta
    return added, removed


def _period_start(
    current_replicas: int, events: Iterable[TimedDelta], policy: ScalingPolicy, now: float
) -> int:
    added, removed = _changes_within(events, policy.period_seconds, now)
    return current_replicas - added + removed


def _allowed_up(start: int, policy: ScalingPolicy) -> int:
    if policy.type == "Pods":
        return start + policy.value
    # The HPA's float64 arithmetic, rounding included: 10 replicas at +10% may go to 12
    # (10 * 1.1 is 11.000000000000002 in floating point), as upstream.
    return math.ceil(start * (1 + policy.value / 100))


def _allowed_down(start: int, policy: ScalingPolicy) -> int:
    if policy.type == "Pods":
        return start - policy.value
    return int(start * (1 - policy.value / 100))  # truncation, as Go's int32(float64)


def _describe(policy: ScalingPolicy) -> str:
    unit = "%" if policy.type == "Percent" else " pods"
    return f"{policy.value}{unit} per {seconds(policy.period_seconds)}"


def scale_up_limit(
    current_replicas: int, events: Iterable[TimedDelta], direction: Rules, now: float
) -> int | None:
    """Most replicas the scale-up policies allow now; None when they set no limit."""
    if direction.select_policy == "Disabled":
        return current_replicas
    if not direction.policies:
        return None
    events = tuple(events)
    proposals = [
        _allowed_up(_period_start(current_replicas, events, policy, now), policy)
        for policy in direction.policies
    ]
    pick = max if direction.select_policy == "Max" else min
    # Changes already made in the period may exhaust the budget; never shrink because of it.
    return max(pick(proposals), current_replicas)


def scale_down_limit(
    current_replicas: int, events: Iterable[TimedDelta], direction: Rules, now: float
) -> int | None:
    """Fewest replicas the scale-down policies allow now; None when they set no limit."""
    if direction.select_policy == "Disabled":
        return current_replicas
    if not direction.policies:
        return None
    events = tuple(events)
    proposals = [
        _allowed_down(_period_start(current_replicas, events, policy, now), policy)
        for policy in direction.policies
    ]
    # "Max" means the most change, which when shrinking is the lowest floor.
    pick = min if direction.select_policy == "Max" else max
    return min(pick(proposals), current_replicas)


def rate_limit(
    desired: int,
    current_replicas: int,
    events: Iterable[TimedDelta],
    behavior: Behavior,
    now: float,
) -> Step:
    """Limit how fast the fleet changes (step "rate")."""
    if desired > current_replicas:
        up = rules(behavior, "up")
        limit = scale_up_limit(current_replicas, events, up, now)
        if limit is None or desired <= limit:
            return Step(RATE, desired, WITHIN_RATE_LIMITS)
        if up.select_policy == "Disabled":
            return Step(RATE, limit, SCALE_UP_DISABLED, "behavior.scaleUp.selectPolicy is Disabled")
        policies = ", ".join(_describe(p) for p in up.policies)
        return Step(
            RATE,
            limit,
            SCALE_UP_RATE_LIMITED,
            f"scale-up limited to {limit} replicas by {policies} ({up.select_policy})",
        )
    if desired < current_replicas:
        down = rules(behavior, "down")
        limit = scale_down_limit(current_replicas, events, down, now)
        if limit is None or desired >= limit:
            return Step(RATE, desired, WITHIN_RATE_LIMITS)
        if down.select_policy == "Disabled":
            return Step(
                RATE, limit, SCALE_DOWN_DISABLED, "behavior.scaleDown.selectPolicy is Disabled"
            )
        policies = ", ".join(_describe(p) for p in down.policies)
        return Step(
            RATE,
            limit,
            SCALE_DOWN_RATE_LIMITED,
            f"scale-down limited to {limit} replicas by {policies} ({down.select_policy})",
        )
    return Step(RATE, desired, WITHIN_RATE_LIMITS)


def record_recommendation(
    history: Iterable[TimedReplicas], replicas: int, behavior: Behavior, now: float
) -> tuple[TimedReplicas, ...]:
    """The history with this tick's raw ask (a new segment only if it differs from the last),
    pruned to the segments that a window of this or a later tick may still overlap."""
    ordered: list[TimedReplicas] = []
    for entry, _ in segments([*history, TimedReplicas(time=now, replicas=replicas)], now):
        # Run-length: a value equal to the segment before continues it (also mends a history
        # edited by hand); merging never changes what a window sees.
        if not ordered or (ordered[-1].replicas, ordered[-1].lowest) != (
            entry.replicas,
            entry.lowest,
        ):
            ordered.append(entry)
    cutoff = now - longest_window_seconds(behavior)
    # Segment i ends where segment i + 1 starts; keep from the first one still running at the
    # cutoff. The last segment is always kept: it is running now.
    first = 0
    while first < len(ordered) - 1 and ordered[first + 1].time <= cutoff:
        first += 1
    return _compact_recommendations(ordered[first:])


def _compact_recommendations(entries: list[TimedReplicas]) -> tuple[TimedReplicas, ...]:
    """At most ``MAX_RECOMMENDATIONS`` segments: while over, the two neighbours spanning the
    shortest time become one segment over both spans, remembering the highest and the lowest
    ask. Each window then sees that pair's extremes for as long as either was running, so the
    scale-down window keeps at least as high and the scale-up window at least as low: the
    planner only holds longer. The running (last) segment is never merged."""
    while len(entries) > MAX_RECOMMENDATIONS:
        ends = [entry.time for entry in entries[2:]]  # the end of pair (i, i + 1)
        spans = [end - entries[i].time for i, end in enumerate(ends)]
        i = spans.index(min(spans))  # the first such pair on ties: the oldest
        first, second = entries[i], entries[i + 1]
        high = max(first.replicas, second.replicas)
        low = min(first.low, second.low)
        entries[i : i + 2] = [TimedReplicas(first.time, high, None if low == high else low)]
    return tuple(entries)


def record_scale_event(
    events: Iterable[TimedDelta], delta: int, behavior: Behavior, now: float
) -> tuple[TimedDelta, ...]:
    """The scale events with this tick's change (if any), pruned to the longest period."""
    longest = longest_period_seconds(behavior)
    entries = [*events]
    if delta != 0:
        entries.append(TimedDelta(time=now, delta=delta))
    return _compact_scale_events([e for e in entries if _within(e.time, longest, now)])


def _compact_scale_events(events: list[TimedDelta]) -> tuple[TimedDelta, ...]:
    """At most ``MAX_SCALE_EVENTS`` changes: while over, the oldest two neighbouring changes in
    the same direction become one, at the later time. The rate policies then count both for as
    long as the later one counts: never less change within a period than happened, so the
    limits only tighten. (Only a fleet that reverses direction at every change, at the bound,
    has no such pair; its two oldest changes are then netted.)"""
    while len(events) > MAX_SCALE_EVENTS:
        same_direction = [
            i for i in range(len(events) - 1) if (events[i].delta > 0) == (events[i + 1].delta > 0)
        ]
        i = same_direction[0] if same_direction else 0
        merged = TimedDelta(events[i + 1].time, events[i].delta + events[i + 1].delta)
        events[i : i + 2] = [merged] if merged.delta else []
    return tuple(events)
