"""Steps 5-6 of the replica pipeline: stabilization windows and rate policies (HPA behavior).

Role: the same semantics as the HPA's ``normalizeDesiredReplicasWithBehaviors``, over
histories that live in the InferencePool's status instead of the controller's memory, so a
restarted operator continues exactly where the last one stopped. Callers: ``pipeline.plan``.

Stabilization (step "stabilize"): every tick with usable metrics records the signals' raw ask.
Scale-up takes the *lowest* ask within ``scaleUp.stabilizationWindowSeconds``, scale-down the
*highest* within ``scaleDown.stabilizationWindowSeconds``; the result is the current size
pulled into ``[lowest_up, highest_down]``. An entry counts while ``time > now - window``. An
empty history is seeded with the current size (as the HPA does on its first sight of a target)
so that a new pool does not shrink before one scale-down window has been observed.

Rate policies (step "rate"): each policy limits the change within its ``periodSeconds``,
counted from the replicas at the start of that period (current minus the changes recorded in
the period). ``Pods`` allows ``value`` replicas; ``Percent`` allows ``value`` percent of the
period's start (rounded up when growing, with at least one replica so a fleet at zero can
start; rounded down when shrinking). ``selectPolicy: Max`` picks the policy allowing the most
change, ``Min`` the least, ``Disabled`` forbids that direction. No policies means no limit
(unlike the HPA, which always has defaults; ours are in the spec's defaults).

History is kept small: recommendations older than the longest window and scale events older
than the longest period are dropped, and of several recommendations with the same value only
the newest is kept (it covers every window the older ones would).
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetscale.api.inferencepool import Behavior, ScalingPolicy, ScalingRules
from fleetscale.planner.text import seconds
from fleetscale.planner.types import Step, TimedDelta, TimedReplicas

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


def longest_window_seconds(behavior: Behavior) -> int:
    return max(
        behavior.scale_up.stabilization_window_seconds,
        behavior.scale_down.stabilization_window_seconds,
    )


def longest_period_seconds(behavior: Behavior) -> int:
    periods = [p.period_seconds for p in behavior.scale_up.policies]
    periods += [p.period_seconds for p in behavior.scale_down.policies]
    return max(periods, default=0)


def seeded(
    history: tuple[TimedReplicas, ...], current_replicas: int, behavior: Behavior, now: float
) -> tuple[TimedReplicas, ...]:
    """The history, or the current size as its first entry when there is none yet."""
    if history or behavior.scale_down.stabilization_window_seconds == 0:
        return history
    return (TimedReplicas(time=now, replicas=current_replicas),)


def _within(time: float, window_seconds: float, now: float) -> bool:
    return time > now - window_seconds


def stabilize(
    desired: int,
    current_replicas: int,
    history: Iterable[TimedReplicas],
    behavior: Behavior,
    now: float,
) -> Step:
    """Pull the raw ask into the band the recent recommendations allow (step "stabilize")."""
    up_window = behavior.scale_up.stabilization_window_seconds
    down_window = behavior.scale_down.stabilization_window_seconds
    lowest_up = desired
    highest_down = desired
    for entry in history:
        if _within(entry.time, up_window, now):
            lowest_up = min(lowest_up, entry.replicas)
        if _within(entry.time, down_window, now):
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
    grown = -((-start * (100 + policy.value)) // 100)  # exact integer ceil
    return max(grown, start + 1)


def _allowed_down(start: int, policy: ScalingPolicy) -> int:
    if policy.type == "Pods":
        return start - policy.value
    return (start * (100 - policy.value)) // 100  # exact integer floor


def _describe(policy: ScalingPolicy) -> str:
    unit = "%" if policy.type == "Percent" else " pods"
    return f"{policy.value}{unit} per {seconds(policy.period_seconds)}"


def scale_up_limit(
    current_replicas: int, events: Iterable[TimedDelta], rules: ScalingRules, now: float
) -> int | None:
    """Most replicas the scale-up policies allow now; None when they set no limit."""
    if rules.select_policy == "Disabled":
        return current_replicas
    if not rules.policies:
        return None
    events = tuple(events)
    proposals = [
        _allowed_up(_period_start(current_replicas, events, policy, now), policy)
        for policy in rules.policies
    ]
    pick = max if rules.select_policy == "Max" else min
    # Changes already made in the period may exhaust the budget; never shrink because of it.
    return max(pick(proposals), current_replicas)


def scale_down_limit(
    current_replicas: int, events: Iterable[TimedDelta], rules: ScalingRules, now: float
) -> int | None:
    """Fewest replicas the scale-down policies allow now; None when they set no limit."""
    if rules.select_policy == "Disabled":
        return current_replicas
    if not rules.policies:
        return None
    events = tuple(events)
    proposals = [
        _allowed_down(_period_start(current_replicas, events, policy, now), policy)
        for policy in rules.policies
    ]
    # "Max" means the most change, which when shrinking is the lowest floor.
    pick = min if rules.select_policy == "Max" else max
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
        rules = behavior.scale_up
        limit = scale_up_limit(current_replicas, events, rules, now)
        if limit is None or desired <= limit:
            return Step(RATE, desired, WITHIN_RATE_LIMITS)
        if rules.select_policy == "Disabled":
            return Step(RATE, limit, SCALE_UP_DISABLED, "behavior.scaleUp.selectPolicy is Disabled")
        policies = ", ".join(_describe(p) for p in rules.policies)
        return Step(
            RATE,
            limit,
            SCALE_UP_RATE_LIMITED,
            f"scale-up limited to {limit} replicas by {policies} ({rules.select_policy})",
        )
    if desired < current_replicas:
        rules = behavior.scale_down
        limit = scale_down_limit(current_replicas, events, rules, now)
        if limit is None or desired >= limit:
            return Step(RATE, desired, WITHIN_RATE_LIMITS)
        if rules.select_policy == "Disabled":
            return Step(
                RATE, limit, SCALE_DOWN_DISABLED, "behavior.scaleDown.selectPolicy is Disabled"
            )
        policies = ", ".join(_describe(p) for p in rules.policies)
        return Step(
            RATE,
            limit,
            SCALE_DOWN_RATE_LIMITED,
            f"scale-down limited to {limit} replicas by {policies} ({rules.select_policy})",
        )
    return Step(RATE, desired, WITHIN_RATE_LIMITS)


def record_recommendation(
    history: Iterable[TimedReplicas], replicas: int, behavior: Behavior, now: float
) -> tuple[TimedReplicas, ...]:
    """The history with this tick's raw ask appended, pruned to what the windows still need."""
    longest = longest_window_seconds(behavior)
    entries = [*history, TimedReplicas(time=now, replicas=replicas)]
    kept: list[TimedReplicas] = []
    seen_values: set[int] = set()
    # Newest first: an older entry with a value already seen is covered by the newer one.
    for entry in sorted(entries, key=lambda e: e.time, reverse=True):
        if not _within(entry.time, longest, now) or entry.replicas in seen_values:
            continue
        seen_values.add(entry.replicas)
        kept.append(entry)
    return tuple(reversed(kept))


def record_scale_event(
    events: Iterable[TimedDelta], delta: int, behavior: Behavior, now: float
) -> tuple[TimedDelta, ...]:
    """The scale events with this tick's change (if any), pruned to the longest period."""
    longest = longest_period_seconds(behavior)
    entries = [*events]
    if delta != 0:
        entries.append(TimedDelta(time=now, delta=delta))
    return tuple(e for e in entries if _within(e.time, longest, now))
