"""Parameters of the simulated fleet: model classes, GPU nodes, gateway and monitoring.

Role: plain, frozen configuration read by the simulator engine, the oracle and the report.
Callers: ``fleetscale.sim.engine``, ``fleetscale.sim.scenarios``, ``fleetscale simulate``.

Throughput model of one replica (continuous batching, processor sharing): with ``n`` sequences
in flight, each decodes at ``aggregate_decode_tokens_per_second / (n + n_half)`` tokens/s,
where ``n_half`` makes a lone sequence decode at ``single_stream_tokens_per_second``. The
fleet's aggregate throughput thus rises with batch size and saturates, as measured for vLLM and
TensorRT-LLM (sources in docs/benchmark.md). Prefill is compute-bound: a replica prefills
the requests it admitted one after another at ``prefill_tokens_per_second``, and a request's
first token comes when its own prefill ends (it holds its batch slot meanwhile).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    """One model class served by one replica (one pod, possibly several accelerators)."""

    name: str
    accelerators_per_replica: int
    max_concurrency: int  # continuous batching slots (vLLM --max-num-seqs, KV-cache bound)
    single_stream_tokens_per_second: float  # decode speed of a lone sequence
    aggregate_decode_tokens_per_second: float  # asymptotic decode throughput of the replica
    prefill_tokens_per_second: float
    model_load_seconds: float  # pod scheduled -> Ready (weights, CUDA graphs, warm-up)

    @property
    def half_batch(self) -> float:
        return self.aggregate_decode_tokens_per_second / self.single_stream_tokens_per_second - 1

    def decode_tokens_per_second(self, in_flight: int) -> float:
        """Per-sequence decode speed with ``in_flight`` sequences batched."""
        return self.aggregate_decode_tokens_per_second / (max(in_flight, 1) + self.half_batch)


# Llama-3.1-8B class, BF16, one H100 80GB.
LLAMA_8B_H100 = ModelProfile(
    name="8B on 1xH100",
    accelerators_per_replica=1,
    max_concurrency=64,
    single_stream_tokens_per_second=120.0,
    aggregate_decode_tokens_per_second=8000.0,
    prefill_tokens_per_second=20000.0,
    model_load_seconds=60.0,
)

# Llama-3.1-70B class, BF16, four H100 80GB with tensor parallelism.
LLAMA_70B_4XH100 = ModelProfile(
    name="70B on 4xH100",
    accelerators_per_replica=4,
    max_concurrency=64,
    single_stream_tokens_per_second=45.0,
    aggregate_decode_tokens_per_second=3000.0,
    prefill_tokens_per_second=8000.0,
    model_load_seconds=180.0,
)

MODEL_PROFILES = {"8b": LLAMA_8B_H100, "70b": LLAMA_70B_4XH100}


@dataclass(frozen=True)
class NodeProfile:
    """GPU nodes: size and the time from request to Ready (lognormal: a median and a tail)."""

    accelerators_per_node: int = 8
    provisioning_median_seconds: float = 240.0
    provisioning_sigma: float = 0.45  # p90 about 1.8x, p99 about 2.8x the median
    max_nodes: int = 32

    def draw_provisioning_seconds(self, rng: random.Random) -> float:
        return self.provisioning_median_seconds * math.exp(rng.gauss(0.0, self.provisioning_sigma))

    def provisioning_quantile_seconds(self, z_score: float) -> float:
        """Provisioning time at a standard-normal quantile (1.2816 is p90)."""
        return self.provisioning_median_seconds * math.exp(z_score * self.provisioning_sigma)


@dataclass(frozen=True)
class SimConfig:
    """Everything besides the workload and the policy that shapes one run."""

    model: ModelProfile = LLAMA_70B_4XH100
    nodes: NodeProfile = NodeProfile()
    max_replicas: int = 64
    min_replicas: int = 1
    ttft_target_seconds: float = 2.0  # the SLO: time to first token
    client_timeout_seconds: float = 60.0  # a queued request gives up after this
    scrape_interval_seconds: int = 15  # Prometheus scrape; the policy sees one interval late
    cluster_autoscaler_scan_seconds: int = 10
    cluster_autoscaler_unneeded_seconds: float = 600.0  # CA --scale-down-unneeded-time
    record_every_seconds: int = 10  # resolution of the timeline kept for plots
    seed: int = 1

    @property
    def replicas_per_node(self) -> int:
        return max(1, self.nodes.accelerators_per_node // self.model.accelerators_per_replica)
