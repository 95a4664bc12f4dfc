"""The load model: replicas from the work in the system, over the capacity per replica.

Role: the signal steps of the replica pipeline for a pool that reads load signals (an engine
preset, or ``custom`` queries for token rates or running requests). Each function is one step
returning a ``Step`` with a CamelCase reason. Callers: ``pipeline.plan``.

vLLM admits requests into the running batch until KV memory runs out, so the waiting queue is
zero over most of the load range and explodes at saturation. Demand is therefore measured as
work, in one of two units, over the capacity per replica learned by ``learn``:

- ``tokens`` (when prompt and generation token rates are read): the fleet serves
  ``T = prompt + generated`` tokens per second; it needs ``T / (kappa * rho)`` replicas, with
  ``kappa`` the tokens per second one replica serves within the latency targets and ``rho``
  the target utilization. Token rates measure arrivals of work without inflating when replicas
  slow down, and are nearly indifferent to the mix of prompt and output lengths (a step of the
  engine costs about the same per scheduled token).
- ``concurrency`` (running plus waiting requests): the primary unit when token rates are not
  read; otherwise a guard that never lets the fleet shrink below what the work now in the
  system needs (concurrency inflates under overload, so it holds replicas but never adds them).

Then the fast and the slow terms:

- ``queue``: served work understates demand while the queue grows. With ``g`` the queue's
  growth (requests per second) and ``r`` the requests started per second, demand is the served
  work times ``1 + g / r`` (at most ``1 + MAX_WORK_GROWTH``); a backlog beyond
  ``queueDepth.targetPerReplica`` per ready replica adds the work to drain it over
  ``DRAIN_SECONDS``.
- ``offered`` (with ``metrics.offeredLoad``): while the gateway refuses requests, demand is
  the served work times offered / admitted (at most ``MAX_OFFERED_FACTOR``).
- ``load``: the HPA's tolerance band on the fractional ask, with hysteresis: within
  ``1 - scaleDown.tolerance <= ask / last <= 1 + scaleUp.tolerance`` the ask stays at ``last``,
  the previous tick's ask (the current size on a pool's first tick). A load that drifts down
  therefore moves the ask once it has left the band, not by one replica each tick, so the
  stabilization window releases it in one step instead of one replica per expiring ask.
- ``kvcache``: KV-cache usage at or above ``capacity.kvCacheSaturationPercent`` asks for at
  least one replica more than are ready (and for ``ready * usage / saturation``); it never
  lets the fleet shrink.
- ``latency`` (with ``spec.slo``): over target asks for at least one replica more than are
  ready; near target (or unknown while requests flow) holds the size.

A configured signal that cannot be used never shrinks the fleet: its step holds the current
size and reports a problem, so ``MetricsAvailable`` is False with the reason. With no replica
ready (models still loading), nothing is measured per replica and the size holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import latency
from fleetscale.planner.behavior import Tolerances
from fleetscale.planner.latency import LatencyVerdict
from fleetscale.planner.learn import UNKNOWN as CAPACITY_UNKNOWN
from fleetscale.planner.readings import ReadingCheck, check_reading
from fleetscale.planner.signals import NO_READY_REPLICAS, ceil_replicas
from fleetscale.planner.text import number
from fleetscale.planner.types import LoadReadings, MetricReading, Step

TOKENS = "tokens"
CONCURRENCY = "concurrency"
QUEUE = "queue"
OFFERED = "offered"
LOAD = "load"
KV_CACHE = "kvcache"
LATENCY = "latency"

TOKEN_LOAD = "TokenLoad"
TOKENS_UNAVAILABLE = "TokenRatesUnavailable"
CONCURRENCY_LOAD = "ConcurrencyLoad"
CONCURRENCY_UNAVAILABLE = "ConcurrencyUnavailable"
CONCURRENCY_HOLDS = "ConcurrencyHolds"
CONCURRENCY_WITHIN_LOAD = "ConcurrencyWithinLoad"
QUEUE_GROWING = "QueueGrowing"
QUEUE_BACKLOG = "QueueBacklog"
QUEUE_STEADY = "QueueSteady"
SCALE_FROM_ZERO = "ScaleFromZero"
OFFERED_LOAD = "OfferedLoad"
GATEWAY_NOT_SHEDDING = "GatewayNotShedding"
OFFERED_UNAVAILABLE = "OfferedLoadUnavailable"
LOAD_ABOVE_TARGET = "LoadAboveTarget"
LOAD_BELOW_TARGET = "LoadBelowTarget"
LOAD_AT_TARGET = "LoadAtTarget"
WITHIN_TOLERANCE = "WithinTolerance"
KV_SATURATED = "KvCacheSaturated"
KV_BELOW_SATURATION = "KvCacheBelowSaturation"
KV_UNAVAILABLE = "KvCacheUnavailable"

# The growth may at most multiply the served work by 1 + this (it is a slope over two scrapes).
MAX_WORK_GROWTH = 4.0
# A backlog beyond queueDepth.targetPerReplica per replica is sized to drain in this time.
DRAIN_SECONDS = 120.0
# Offered over admitted requests is trusted up to this factor.
MAX_OFFERED_FACTOR = 10.0
# Fewer requests per second than this say nothing about the growth relative to them.
MIN_RATE = 1e-3


@dataclass(frozen=True)
class Problem:
    """A configured signal that could not be used: ``MetricsAvailable=False`` with the reason."""

    reason: str
    message: str


@dataclass(frozen=True)
class Demand:
    """What a step asks: fractional replicas (None: unknown, hold) and the step itself."""

    fraction: float | None
    step: Step
    problem: Problem | None = None


@dataclass(frozen=True)
class Readings:
    """The load readings of one tick, each judged usable or not at ``now``."""

    prompt: ReadingCheck | None
    generation: ReadingCheck | None
    running: ReadingCheck | None
    kv_cache: ReadingCheck | None
    request_rate: ReadingCheck | None
    work_growth: ReadingCheck | None
    offered: ReadingCheck | None
    refused: ReadingCheck | None

    @property
    def tokens_read(self) -> bool:
        return self.prompt is not None and self.generation is not None

    @property
    def tokens(self) -> float | None:
        """Tokens per second served (prompt plus generated); None when not usable."""
        if self.prompt is None or self.generation is None:
            return None
        if self.prompt.value is None or self.generation.value is None:
            return None
        return self.prompt.value + self.generation.value

    @property
    def started(self) -> float | None:
        """Requests that got a first token per second; None when not usable."""
        return self.request_rate.value if self.request_rate is not None else None


def judge_readings(load: LoadReadings, *, now: float, max_staleness_seconds: float) -> Readings:
    """Each configured load reading judged usable or not (see ``readings.check_reading``)."""

    def judge(
        reading: MetricReading | None, signal: str, allow_negative: bool = False
    ) -> ReadingCheck | None:
        if reading is None:
            return None
        return check_reading(
            reading,
            signal=signal,
            now=now,
            max_staleness_seconds=max_staleness_seconds,
            allow_negative=allow_negative,
        )

    return Readings(
        prompt=judge(load.prompt_tokens, "prompt tokens/s"),
        generation=judge(load.generation_tokens, "generated tokens/s"),
        running=judge(load.running, "running requests"),
        kv_cache=judge(load.kv_cache_usage, "KV-cache usage"),
        request_rate=judge(load.request_rate, "requests started/s"),
        work_growth=judge(load.work_growth, "requests added/s", allow_negative=True),
        offered=judge(load.offered, "offered requests/s"),
        refused=judge(load.refused, "refused requests/s"),
    )


def _hold(name: str, current: int, reason: str, message: str, problem: bool, ready: int) -> Demand:
    """A step that cannot size the fleet: the current size holds."""
    if ready == 0:
        return Demand(
            None,
            Step(name, current, NO_READY_REPLICAS, f"{message}; no replica is ready yet"),
        )
    step = Step(name, current, reason, f"{message}; the size holds")
    return Demand(None, step, Problem(reason, message) if problem else None)


def tokens_step(
    readings: Readings, kappa: float | None, rho: float, current: int, ready: int
) -> Demand:
    """Replicas the served token rate needs (step "tokens")."""
    total = readings.tokens
    if total is None:
        bad = [
            c.message
            for c in (readings.prompt, readings.generation)
            if c is not None and not c.usable
        ]
        return _hold(TOKENS, current, TOKENS_UNAVAILABLE, "; ".join(bad), True, ready)
    if ready == 0:
        return _hold(TOKENS, current, NO_READY_REPLICAS, "nothing served", False, ready)
    served = f"{number(total)} tokens/s served ({number(total / ready)} per ready replica)"
    if kappa is None:
        return Demand(
            None,
            Step(
                TOKENS,
                current,
                CAPACITY_UNKNOWN,
                f"{served}; capacity per replica unknown until the fleet serves: the size holds",
            ),
        )
    fraction = total / (kappa * rho)
    return Demand(
        fraction,
        Step(
            TOKENS,
            ceil_replicas(fraction),
            TOKEN_LOAD,
            f"{served} over {number(kappa)} per replica at {number(rho * 100)}%: "
            f"{number(fraction)} replicas",
        ),
    )


def concurrency_fraction(
    readings: Readings, queue_depth: float, kappa: float | None, rho: float
) -> tuple[float | None, float | None]:
    """(requests in the system, replicas they need); None where unknown."""
    if readings.running is None or readings.running.value is None:
        return None, None
    work = readings.running.value + queue_depth
    if kappa is None:
        return work, None
    return work, work / (kappa * rho)


def concurrency_step(
    readings: Readings,
    queue_depth: float,
    kappa: float | None,
    rho: float,
    current: int,
    ready: int,
) -> Demand:
    """Replicas the requests in the system need, as the primary unit (step "concurrency")."""
    if readings.running is None or readings.running.value is None:
        message = readings.running.message if readings.running is not None else "not read"
        return _hold(CONCURRENCY, current, CONCURRENCY_UNAVAILABLE, message, True, ready)
    if ready == 0:
        return _hold(CONCURRENCY, current, NO_READY_REPLICAS, "nothing served", False, ready)
    work, fraction = concurrency_fraction(readings, queue_depth, kappa, rho)
    assert work is not None
    held = f"{number(work)} requests in the system ({number(work / ready)} per ready replica)"
    if fraction is None or kappa is None:
        return Demand(
            None,
            Step(
                CONCURRENCY,
                current,
                CAPACITY_UNKNOWN,
                f"{held}; capacity per replica unknown until the fleet serves: the size holds",
            ),
        )
    return Demand(
        fraction,
        Step(
            CONCURRENCY,
            ceil_replicas(fraction),
            CONCURRENCY_LOAD,
            f"{held} over {number(kappa)} per replica at {number(rho * 100)}%: "
            f"{number(fraction)} replicas",
        ),
    )


def queue_step(
    primary: Demand,
    readings: Readings,
    queue_depth: float,
    *,
    spec: InferencePoolSpec,
    kappa: float | None,
    tokens_primary: bool,
    overloaded: bool,
    current: int,
    ready: int,
) -> Demand:
    """The primary ask raised by work piling up and a backlog (step "queue")."""
    waiting = f"queue {number(queue_depth)} waiting"
    if primary.fraction is None:
        if current == 0 and queue_depth > 0:
            return Demand(
                1.0, Step(QUEUE, 1, SCALE_FROM_ZERO, f"{waiting} with no replica: start one")
            )
        return Demand(None, Step(QUEUE, primary.step.replicas, primary.step.reason, waiting))
    fraction = primary.fraction
    started = readings.started
    factor = 1.0
    notes: list[str] = []
    growth = readings.work_growth
    if overloaded and growth is not None and not growth.usable:
        # An optional term: without it the served work alone asks (never fewer replicas).
        notes.append(f"{growth.message}: growth not counted")
    if overloaded and growth is not None and growth.value is not None and growth.value > 0:
        if started is not None and started >= MIN_RATE:
            factor = 1 + min(growth.value / started, MAX_WORK_GROWTH)
            notes.append(
                f"requests in the system growing {number(growth.value)}/s against "
                f"{number(started)} started/s (x{number(factor)})"
            )
        elif queue_depth > 0:
            factor = 1 + MAX_WORK_GROWTH
            notes.append(f"requests in the system growing {number(growth.value)}/s, none started")
    backlog = 0.0
    excess = queue_depth - spec.metrics.queue_depth.target_per_replica * ready
    total = readings.tokens
    if (
        tokens_primary
        and excess > 0
        and kappa is not None
        and total is not None
        and started is not None
        and started >= MIN_RATE
    ):
        per_request = total / started
        backlog = excess * per_request / DRAIN_SECONDS / (kappa * spec.capacity.target_utilization)
        notes.append(
            f"{number(excess)} beyond {number(spec.metrics.queue_depth.target_per_replica)} per "
            f"ready replica to drain in {number(DRAIN_SECONDS)} s (+{number(backlog)})"
        )
    asked = fraction * factor + backlog
    if current == 0 and queue_depth > 0:
        asked = max(asked, 1.0)
    if factor > 1:
        reason = QUEUE_GROWING
    elif backlog > 0:
        reason = QUEUE_BACKLOG
    else:
        reason = SCALE_FROM_ZERO if current == 0 and queue_depth > 0 else QUEUE_STEADY
    detail = "; ".join(notes) if notes else "not growing"
    return Demand(
        asked,
        Step(QUEUE, ceil_replicas(asked), reason, f"{waiting}, {detail}: {number(asked)} replicas"),
    )


def offered_step(previous: Demand, readings: Readings) -> tuple[Demand, bool]:
    """Demand including what the gateway refused (step "offered"); also whether the gateway's
    reading was usable (if not, the censored-queue rule of ``censor`` applies instead)."""
    offered = readings.offered
    replicas = previous.step.replicas
    if offered is None or offered.value is None:
        message = offered.message if offered is not None else "offeredLoad not read"
        return Demand(
            previous.fraction,
            Step(OFFERED, replicas, OFFERED_UNAVAILABLE, f"{message}; ignored"),
        ), False
    refused = readings.refused
    if refused is not None:
        if refused.value is None:
            return Demand(
                previous.fraction,
                Step(OFFERED, replicas, OFFERED_UNAVAILABLE, f"{refused.message}; ignored"),
            ), False
        admitted = offered.value - refused.value
    else:
        admitted = readings.started if readings.started is not None else offered.value
    if previous.fraction is None or admitted < MIN_RATE or offered.value <= admitted:
        return Demand(
            previous.fraction,
            Step(
                OFFERED,
                replicas,
                GATEWAY_NOT_SHEDDING,
                f"{number(offered.value)} requests/s offered, {number(admitted)} admitted",
            ),
        ), True
    factor = min(offered.value / admitted, MAX_OFFERED_FACTOR)
    asked = previous.fraction * factor
    return Demand(
        asked,
        Step(
            OFFERED,
            ceil_replicas(asked),
            OFFERED_LOAD,
            f"{number(offered.value)} requests/s offered, {number(admitted)} admitted: "
            f"demand x{number(factor)}, {number(asked)} replicas",
        ),
    ), True


def load_step(previous: Demand, current: int, last: int, tolerances: Tolerances) -> Step:
    """The fractional ask through the HPA's tolerance band around the last ask (step
    "load")."""
    if previous.fraction is None:
        return Step(LOAD, current, previous.step.reason, previous.step.message)
    asked = previous.fraction
    if last > 0:
        ratio = asked / last
        if tolerances.within(ratio):
            return Step(
                LOAD,
                last,
                WITHIN_TOLERANCE,
                f"{number(asked)} replicas of load, within -{number(tolerances.down * 100)}%/"
                f"+{number(tolerances.up * 100)}% of {last}",
            )
    desired = ceil_replicas(asked)
    if desired > current:
        reason = LOAD_ABOVE_TARGET
    elif desired < current:
        reason = LOAD_BELOW_TARGET
    else:
        reason = LOAD_AT_TARGET
    return Step(LOAD, desired, reason, f"{number(asked)} replicas of load on {current}")


def concurrency_guard(
    ask: Step,
    readings: Readings,
    queue_depth: float,
    *,
    kappa: float | None,
    rho: float,
    tolerances: Tolerances,
    current: int,
    ready: int,
) -> Demand:
    """Never below what the requests in the system need, never above the current size
    (step "concurrency" when token rates size the fleet)."""
    running = readings.running
    if running is None or running.value is None:
        message = running.message if running is not None else "not read"
        if ready == 0:
            return Demand(None, Step(CONCURRENCY, ask.replicas, NO_READY_REPLICAS, message))
        held = max(ask.replicas, current)
        return Demand(
            None,
            Step(CONCURRENCY, held, CONCURRENCY_UNAVAILABLE, f"{message}; no scale-down"),
            Problem(CONCURRENCY_UNAVAILABLE, message),
        )
    work, fraction = concurrency_fraction(readings, queue_depth, kappa, rho)
    assert work is not None
    if fraction is None:
        return Demand(None, Step(CONCURRENCY, ask.replicas, CAPACITY_UNKNOWN, "not learned yet"))
    guard = (
        current
        if current > 0 and tolerances.within(fraction / current)
        else (ceil_replicas(fraction))
    )
    floor = min(guard, current)
    words = f"{number(work)} requests in the system need {number(fraction)} replicas"
    if floor > ask.replicas:
        return Demand(fraction, Step(CONCURRENCY, floor, CONCURRENCY_HOLDS, words))
    return Demand(fraction, Step(CONCURRENCY, ask.replicas, CONCURRENCY_WITHIN_LOAD, words))


def kv_cache_step(
    ask: Step, readings: Readings, saturation_percent: float, current: int, ready: int
) -> Demand:
    """The saturation guard (step "kvcache")."""
    kv = readings.kv_cache
    assert kv is not None
    if kv.value is None:
        if ready == 0:
            return Demand(None, Step(KV_CACHE, ask.replicas, NO_READY_REPLICAS, kv.message))
        held = max(ask.replicas, current)
        return Demand(
            None,
            Step(KV_CACHE, held, KV_UNAVAILABLE, f"{kv.message}; no scale-down"),
            Problem(KV_UNAVAILABLE, kv.message),
        )
    usage = kv.value * 100
    saturation = saturation_percent
    words = f"KV-cache usage {number(usage)}%"
    if usage >= saturation and ready > 0:
        needed = max(ready + 1, math.ceil(ready * usage / saturation - 1e-9))
        held = max(ask.replicas, current, needed)
        return Demand(
            None,
            Step(
                KV_CACHE,
                held,
                KV_SATURATED,
                f"{words}, at or over {number(saturation)}%: at least {needed} replicas",
            ),
        )
    return Demand(
        None,
        Step(KV_CACHE, ask.replicas, KV_BELOW_SATURATION, f"{words}, under {number(saturation)}%"),
    )


def latency_step(ask: Step, verdict: LatencyVerdict, current: int, ready: int) -> Demand:
    """The latency targets (step "latency")."""
    if verdict.over:
        held = max(ask.replicas, current, ready + 1)
        return Demand(None, Step(LATENCY, held, verdict.state, verdict.message))
    if verdict.state == latency.UNAVAILABLE:
        held = max(ask.replicas, current)
        return Demand(
            None,
            Step(LATENCY, held, verdict.state, verdict.message),
            Problem(verdict.state, verdict.message),
        )
    if verdict.state == latency.NEAR_TARGET:
        return Demand(
            None, Step(LATENCY, max(ask.replicas, current), verdict.state, verdict.message)
        )
    return Demand(None, Step(LATENCY, ask.replicas, verdict.state, verdict.message))
