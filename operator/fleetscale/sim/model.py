"""Parameters of the simulated fleet: served-model profiles, GPU nodes, gateway and monitoring.

Role: plain, frozen configuration read by the replica model, the engine, the oracle, the
validation harness and the report. Every number is derived from a cited figure (sources in
docs/benchmark.md, "Profiles and their sources"). Callers: ``fleetscale.sim.replica``,
``fleetscale.sim.engine``, ``fleetscale.sim.scenarios``, ``fleetscale.sim.validation``.

A ``ModelProfile`` is one vLLM V1 server (one pod, ``tensor_parallel`` GPUs) serving one model:
- scheduler limits as vLLM sets them on an H100-class GPU for the OpenAI server
  (``max_num_seqs`` 1024, ``max_num_batched_tokens`` 8192, ``block_size`` 16);
- KV-cache capacity from the GPU memory left after the weights: ``gpu_memory_utilization`` of
  the reported HBM, minus the weights, minus the activation and CUDA-graph reserve, divided by
  the bytes one token's keys and values take (layers x KV heads x head size x 2 x dtype bytes);
- the time of one scheduler step (roofline): a fixed overhead plus the larger of the memory
  time (weights and the KV cache read by attention, over the effective HBM bandwidth) and the
  compute time (2 x parameters FLOPs per token plus prefill attention, over the effective
  peak). Decode is memory-bound, prefill compute-bound, so long contexts slow decode and long
  prompts slow everyone sharing the step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

GIB = 1024**3

LoadBalancer = Literal["round-robin", "least-outstanding"]
# How the gateway acts on the shed flag: "queue-cap" refuses arrivals while the pods' waiting
# requests exceed the threshold per Ready pod (a gateway that sees the queue); "all" refuses
# every arrival while the flag is up (a gateway that reads the flag alone); "fraction" refuses
# the share the planner decided, lower-priority requests first.
GatewayMode = Literal["queue-cap", "all", "fraction"]


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator: memory as the driver reports it, bandwidth and dense peak FLOPs."""

    name: str
    memory_bytes: float  # what torch.cuda reports as total memory
    bandwidth_bytes_per_second: float
    peak_flops_bf16: float  # dense tensor-core peak
    peak_flops_fp8: float


# NVIDIA H100 SXM5 80GB datasheet: 3.35 TB/s HBM3, 989 TFLOPS BF16 and 1,979 TFLOPS FP8 dense;
# vLLM logs its total memory as 79.19 GiB.
H100_SXM = GpuSpec("H100 SXM 80GB", 79.19 * GIB, 3.35e12, 989e12, 1979e12)
# NVIDIA A100 40GB SXM datasheet: 1,555 GB/s, 312 TFLOPS BF16 (no FP8). Used only to check the
# memory model against a published vLLM BF16 figure on that GPU.
A100_40GB = GpuSpec("A100 SXM 40GB", 39.39 * GIB, 1.555e12, 312e12, 312e12)


@dataclass(frozen=True)
class ModelSpec:
    """A model's shape, from its Hugging Face config.json and model card."""

    name: str
    parameters: float
    layers: int
    hidden_size: int
    kv_heads: int
    head_dim: int


LLAMA_3_1_8B = ModelSpec("Llama-3.1-8B", 8.03e9, 32, 4096, 8, 128)
LLAMA_3_1_70B = ModelSpec("Llama-3.1-70B", 70.6e9, 80, 8192, 8, 128)


@dataclass(frozen=True)
class ModelProfile:
    """One vLLM V1 replica: a model on ``tensor_parallel`` GPUs, its limits and its speed."""

    name: str
    model: ModelSpec
    gpu: GpuSpec
    tensor_parallel: int
    weight_bytes_per_parameter: float = 2.0  # BF16; 1.0 for FP8 weights
    kv_bytes_per_element: float = 2.0  # BF16 KV cache; 1.0 for an FP8 KV cache
    # vLLM V1 defaults for the OpenAI server on a GPU with >= 70 GiB (vllm/engine/arg_utils.py).
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    # Activation peak, non-torch memory and CUDA graphs per GPU (vLLM's memory profile log).
    reserved_bytes_per_gpu: float = 2.54 * GIB
    # Calibrated on NVIDIA NIM's published single-stream latency and prefill time (see docs).
    bandwidth_efficiency: float = 0.8
    flops_efficiency: float = 0.45
    step_overhead_seconds: float = 0.0016
    # Pod scheduled -> Ready: lognormal, median and sigma (weights, torch.compile, CUDA graphs).
    model_load_median_seconds: float = 60.0
    model_load_sigma: float = 0.35

    @property
    def accelerators_per_replica(self) -> int:
        return self.tensor_parallel

    @property
    def fp8_compute(self) -> bool:
        return self.weight_bytes_per_parameter < 2.0

    @property
    def kv_bytes_per_token(self) -> float:
        """Keys and values of one token across all layers (whole replica)."""
        model = self.model
        return 2 * model.layers * model.kv_heads * model.head_dim * self.kv_bytes_per_element

    @property
    def weight_bytes(self) -> float:
        return self.model.parameters * self.weight_bytes_per_parameter

    @property
    def kv_cache_bytes(self) -> float:
        usable = self.gpu.memory_bytes * self.gpu_memory_utilization * self.tensor_parallel
        return usable - self.weight_bytes - self.reserved_bytes_per_gpu * self.tensor_parallel

    @property
    def num_gpu_blocks(self) -> int:
        """KV-cache blocks (vLLM's ``num_gpu_blocks``)."""
        return int(self.kv_cache_bytes // (self.kv_bytes_per_token * self.block_size))

    @property
    def kv_cache_tokens(self) -> int:
        return self.num_gpu_blocks * self.block_size

    @property
    def memory_bytes_per_second(self) -> float:
        """Effective HBM bandwidth of the whole replica."""
        return (
            self.gpu.bandwidth_bytes_per_second * self.bandwidth_efficiency * self.tensor_parallel
        )

    @property
    def flops_per_second(self) -> float:
        """Effective dense compute of the whole replica."""
        peak = self.gpu.peak_flops_fp8 if self.fp8_compute else self.gpu.peak_flops_bf16
        return peak * self.flops_efficiency * self.tensor_parallel

    @property
    def flops_per_token(self) -> float:
        return 2.0 * self.model.parameters

    @property
    def attention_flops_per_token_pair(self) -> float:
        """QK^T and AV of one query token against one cached token, all layers."""
        return 4.0 * self.model.layers * self.model.hidden_size

    @property
    def model_load_seconds(self) -> float:
        """Median load time: what a policy expects (Retry-After, the oracle's lead)."""
        return self.model_load_median_seconds

    def model_load_quantile_seconds(self, z_score: float) -> float:
        return self.model_load_median_seconds * math.exp(z_score * self.model_load_sigma)

    def draw_model_load_seconds(self, rng: random.Random) -> float:
        return self.model_load_median_seconds * math.exp(rng.gauss(0.0, self.model_load_sigma))

    def step_seconds(
        self, tokens: int, kv_tokens: float, prefill_attention_pairs: float = 0.0
    ) -> float:
        """One scheduler step: ``tokens`` scheduled (decodes plus prefill chunks), attention
        over ``kv_tokens`` cached tokens, plus prefill attention over token pairs."""
        memory = (self.weight_bytes + kv_tokens * self.kv_bytes_per_token) / (
            self.memory_bytes_per_second
        )
        compute = (
            tokens * self.flops_per_token
            + prefill_attention_pairs * self.attention_flops_per_token_pair
        ) / self.flops_per_second
        return self.step_overhead_seconds + max(memory, compute)

    def single_stream_tokens_per_second(self, context_tokens: int = 0) -> float:
        return 1.0 / self.step_seconds(1, context_tokens)

    def prefill_tokens_per_second(self, prompt_tokens: int = 2048) -> float:
        """Prefill throughput of a lone prompt, in full steps of the token budget."""
        seconds = 0.0
        done = 0
        while done < prompt_tokens:
            chunk = min(self.max_num_batched_tokens, prompt_tokens - done)
            seconds += self.step_seconds(chunk, done, chunk * (done + chunk / 2))
            done += chunk
        return prompt_tokens / seconds


# Tensor-parallel all-reduces add to the single-GPU 1.6 ms; 140 GB of weights load slower.
TP_STEP_OVERHEAD_SECONDS = 0.0053
LOAD_70B_MEDIAN_SECONDS = 180.0

# Llama-3.1-8B, BF16, one H100 80GB.
LLAMA_8B_H100 = ModelProfile("8B on 1xH100", LLAMA_3_1_8B, H100_SXM, tensor_parallel=1)
# Llama-3.1-8B with FP8 weights and KV cache on one H100: matches the FP8 published figures.
LLAMA_8B_FP8_H100 = ModelProfile(
    "8B FP8 on 1xH100",
    LLAMA_3_1_8B,
    H100_SXM,
    tensor_parallel=1,
    weight_bytes_per_parameter=1.0,
    kv_bytes_per_element=1.0,
)
# Llama-3.1-70B, BF16, four H100 80GB with tensor parallelism.
LLAMA_70B_4XH100 = ModelProfile(
    "70B on 4xH100",
    LLAMA_3_1_70B,
    H100_SXM,
    tensor_parallel=4,
    step_overhead_seconds=TP_STEP_OVERHEAD_SECONDS,
    model_load_median_seconds=LOAD_70B_MEDIAN_SECONDS,
)
# Llama-3.3-70B (same shape as 3.1) FP8 on two H100 (NIM's published configuration).
LLAMA_70B_FP8_2XH100 = ModelProfile(
    "70B FP8 on 2xH100",
    LLAMA_3_1_70B,
    H100_SXM,
    tensor_parallel=2,
    weight_bytes_per_parameter=1.0,
    kv_bytes_per_element=1.0,
    step_overhead_seconds=TP_STEP_OVERHEAD_SECONDS,
    model_load_median_seconds=LOAD_70B_MEDIAN_SECONDS,
)
# Llama-3.1-8B, BF16, one A100 40GB: only to check the memory model against vLLM on that GPU.
LLAMA_8B_A100_40GB = ModelProfile(
    "8B on 1xA100-40GB",
    LLAMA_3_1_8B,
    A100_40GB,
    tensor_parallel=1,
    max_num_seqs=256,  # vLLM's defaults below 70 GiB
    max_num_batched_tokens=2048,
)

MODEL_PROFILES = {
    "8b": LLAMA_8B_H100,
    "8b-fp8": LLAMA_8B_FP8_H100,
    "70b": LLAMA_70B_4XH100,
    "70b-fp8": LLAMA_70B_FP8_2XH100,
}


@dataclass(frozen=True)
class NodeProfile:
    """GPU nodes: size, time from request to Ready (lognormal), and stock-outs.

    A provisioning attempt fails with ``stockout_probability`` (the zone has no GPUs left); the
    failure is seen after ``stockout_detect_seconds`` and the offering is retried once the node
    autoscaler's unavailable-offerings cache expires (``stockout_retry_seconds``).
    """

    accelerators_per_node: int = 8
    provisioning_median_seconds: float = 240.0
    provisioning_sigma: float = 0.45  # p90 about 1.8x, p99 about 2.8x the median
    max_nodes: int = 32
    stockout_probability: float = 0.1
    stockout_detect_seconds: float = 20.0
    stockout_retry_seconds: float = 180.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.stockout_probability < 1.0:
            raise ValueError("stockout_probability must be in [0, 1)")

    def draw_provisioning_seconds(self, rng: random.Random) -> float:
        return self.provisioning_median_seconds * math.exp(rng.gauss(0.0, self.provisioning_sigma))

    def draw_attempts(self, rng: random.Random) -> tuple[float, float]:
        """(seconds lost to stock-outs, seconds the successful attempt takes): attempts are
        retried until one succeeds."""
        lost = 0.0
        while rng.random() < self.stockout_probability:
            lost += self.stockout_detect_seconds + self.stockout_retry_seconds
        return lost, self.draw_provisioning_seconds(rng)

    def provisioning_quantile_seconds(self, z_score: float) -> float:
        """Provisioning time at a standard-normal quantile (1.2816 is p90), stock-outs aside."""
        return self.provisioning_median_seconds * math.exp(z_score * self.provisioning_sigma)


@dataclass(frozen=True)
class SimConfig:
    """Everything besides the workload and the policy that shapes one run."""

    model: ModelProfile = LLAMA_70B_4XH100
    nodes: NodeProfile = field(default_factory=NodeProfile)
    max_replicas: int = 64
    min_replicas: int = 1
    load_balancer: LoadBalancer = "least-outstanding"
    gateway: GatewayMode = "queue-cap"
    low_priority_share: float = 0.0  # requests marked lower priority (a stable draw per request)
    ttft_target_seconds: float = 2.0  # the SLO: time to first token
    client_timeout_seconds: float = 60.0  # a request without its first token gives up after this
    scrape_interval_seconds: int = 15  # Prometheus scrape; the policy sees one interval late
    cluster_autoscaler_scan_seconds: int = 10
    cluster_autoscaler_unneeded_seconds: float = 600.0  # CA --scale-down-unneeded-time
    record_every_seconds: int = 10  # resolution of the timeline kept for plots
    seed: int = 1

    @property
    def replicas_per_node(self) -> int:
        return max(1, self.nodes.accelerators_per_node // self.model.accelerators_per_replica)
