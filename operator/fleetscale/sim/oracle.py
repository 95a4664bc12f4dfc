"""The clairvoyant oracle: knows every future request, pays the same delays as everyone.

Role: the lower bound of GPU-hours that still meets the SLO, so every policy's cost reads as a
multiple of it. Its demand curve also sizes the static baseline and the fleet at time zero.
Callers: ``fleetscale.sim.runner``.

Demand: every request holds a batch slot for its prefill plus its decode at the speed of a
replica batched to ``slots_per_replica``; the busiest second of the next minute, divided by
``slots_per_replica``, is the replica count needed now. The oracle asks for that count as early
as capacity takes to arrive (node provisioning at its p90, plus the model load), and keeps it
through gaps shorter than that lead, since releasing and re-buying would arrive too late.
Nodes are released the moment they are empty: it never needs a safety delay.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from fleetscale.sim.model import SimConfig
from fleetscale.sim.policy import Action, FleetView, NodeMode
from fleetscale.sim.workload import Workload

P90_Z_SCORE = 1.2816


def sliding_max(values: Sequence[int], ahead: int) -> list[int]:
    """``out[t] = max(values[t : t + ahead + 1])`` in linear time (monotonic deque)."""
    out = [0] * len(values)
    window: deque[int] = deque()
    for index in range(len(values) - 1, -1, -1):
        while window and values[window[-1]] <= values[index]:
            window.pop()
        window.append(index)
        while window[0] > index + ahead:
            window.popleft()
        out[index] = values[window[0]]
    return out


def required_replicas(
    workload: Workload,
    config: SimConfig,
    slots_per_replica: float,
    prefill_utilization: float = 0.8,
    lookahead_seconds: int = 60,
    prefill_window_seconds: int = 10,
) -> list[int]:
    """Replicas needed at each second to serve every request without queueing: enough batch
    slots for the requests in flight, and enough prefill throughput for the prompts arriving."""
    model = config.model
    length = math.ceil(workload.duration_seconds + config.client_timeout_seconds) + 1
    delta = [0] * (length + 1)
    prompt_tokens = [0.0] * length
    speed = model.decode_tokens_per_second(round(slots_per_replica))
    for arrival, inputs, outputs in zip(
        workload.arrival_seconds, workload.input_tokens, workload.output_tokens, strict=True
    ):
        hold = inputs / model.prefill_tokens_per_second + outputs / speed
        start = int(arrival)
        stop = min(length, int(arrival + hold) + 1)
        delta[start] += 1
        delta[stop] -= 1
        prompt_tokens[start] += inputs
    need = []
    running = 0
    window_tokens = 0.0
    prefill_capacity = model.prefill_tokens_per_second * prefill_utilization
    for step in range(length):
        running += delta[step]
        window_tokens += prompt_tokens[step]
        if step >= prefill_window_seconds:
            window_tokens -= prompt_tokens[step - prefill_window_seconds]
        for_prefill = window_tokens / prefill_window_seconds / prefill_capacity
        need.append(math.ceil(max(running / slots_per_replica, for_prefill)))
    return [max(config.min_replicas, n) for n in sliding_max(need, lookahead_seconds)]


class Oracle:
    """Sizes replicas and nodes from the future demand, started exactly one lead time early."""

    node_mode: NodeMode = "ahead"
    node_scale_down_delay_seconds = 0.0
    name = "oracle"
    interval_seconds = 5

    def __init__(self, workload: Workload, config: SimConfig, slots_fraction: float = 0.75):
        slots = config.model.max_concurrency * slots_fraction
        self.required = required_replicas(workload, config, slots)
        self.lead_seconds = round(
            config.nodes.provisioning_quantile_seconds(P90_Z_SCORE)
            + config.model.model_load_seconds
        )
        self.planned = sliding_max(self.required, self.lead_seconds)
        self.replicas_per_node = config.replicas_per_node
        self.max_replicas = config.max_replicas

    @property
    def peak_replicas(self) -> int:
        return min(self.max_replicas, max(self.required))

    def initial_replicas(self, warmup_seconds: int = 300) -> int:
        return min(self.max_replicas, max(self.required[: warmup_seconds + 1]))

    def decide(self, view: FleetView) -> Action:
        step = min(int(view.now), len(self.planned) - 1)
        desired = min(self.max_replicas, self.planned[step])
        return Action(desired, node_target=math.ceil(desired / self.replicas_per_node))
