"""Engine presets: the PromQL of every signal, from each serving engine's current metric names.

Role: turn ``spec.metrics`` (an engine, optional per-signal overrides) into one query per signal
the planner reads (``planner.observe.signal_names``), scoped to the pool's namespace and, when
``spec.model`` is set, to the engine's model label. Pure. Callers:
``controller.inferencepools.measure`` (the operator's tick and ``fleetscale explain``).

Every name below was checked against the engine's own metric definitions (docs/planner.md,
"Engine presets", cites file and version):

- vLLM (``vllm/v1/metrics/loggers.py``, ``PrometheusStatLogger``): gauges
  ``vllm:num_requests_waiting``, ``vllm:num_requests_running``, ``vllm:kv_cache_usage_perc`` (a
  fraction; ``vllm:gpu_cache_usage_perc`` before 0.9.2, hidden in 0.11, removed in 0.12),
  counters ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``, histograms
  ``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds``; label
  ``model_name``.
- SGLang (``python/sglang/srt/observability/metrics_collector.py``): ``sglang:num_queue_reqs``,
  ``sglang:num_running_reqs``, ``sglang:token_usage`` (a fraction), ``sglang:prompt_tokens_total``,
  ``sglang:generation_tokens_total``, ``sglang:time_to_first_token_seconds``,
  ``sglang:inter_token_latency_seconds``; label ``model_name``.
- TensorRT-LLM's ``trtllm-serve`` (``tensorrt_llm/metrics/collector.py``):
  ``trtllm_num_requests_waiting``, ``trtllm_num_requests_running``,
  ``trtllm_kv_cache_utilization`` (used / max blocks), ``trtllm_prompt_tokens_total``,
  ``trtllm_generation_tokens_total``, ``trtllm_time_to_first_token_seconds``,
  ``trtllm_time_per_output_token_seconds``; label ``model_name``.

Rates and quantiles use a one-minute window (``RATE_WINDOW``), the growth of the requests in
the system the last 30 s (``GROWTH_WINDOW``: two scrapes at Prometheus' usual 15 s); the
simulator reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetscale.api.inferencepool import Engine, InferencePoolSpec
from fleetscale.planner.observe import (
    GENERATION_TOKENS,
    GPU,
    ITL,
    KV_CACHE,
    LATENCY_QUERY_FIELDS,
    LOAD_QUERY_FIELDS,
    OFFERED,
    PROMPT_TOKENS,
    QUEUE,
    REFUSED,
    REQUEST_RATE,
    RUNNING,
    TTFT,
    WORK_GROWTH,
    signal_names,
)

RATE_WINDOW = "1m"
# The growth of the requests in the system is the fast overload term: its slope over the last
# two scrapes (15 s apart), not over the minute, which would average a flash crowd's first
# seconds away.
GROWTH_WINDOW = "30s"


@dataclass(frozen=True)
class EngineMetrics:
    """One engine's metric names (a histogram by its base name, without ``_bucket``)."""

    waiting: str
    running: str
    kv_cache_usage: str
    prompt_tokens: str
    generation_tokens: str
    ttft: str
    itl: str
    model_label: str = "model_name"


ENGINES: dict[str, EngineMetrics] = {
    "vllm": EngineMetrics(
        waiting="vllm:num_requests_waiting",
        running="vllm:num_requests_running",
        kv_cache_usage="vllm:kv_cache_usage_perc",
        prompt_tokens="vllm:prompt_tokens_total",
        generation_tokens="vllm:generation_tokens_total",
        ttft="vllm:time_to_first_token_seconds",
        itl="vllm:inter_token_latency_seconds",
    ),
    "sglang": EngineMetrics(
        waiting="sglang:num_queue_reqs",
        running="sglang:num_running_reqs",
        kv_cache_usage="sglang:token_usage",
        prompt_tokens="sglang:prompt_tokens_total",
        generation_tokens="sglang:generation_tokens_total",
        ttft="sglang:time_to_first_token_seconds",
        itl="sglang:inter_token_latency_seconds",
    ),
    "trtllm": EngineMetrics(
        waiting="trtllm_num_requests_waiting",
        running="trtllm_num_requests_running",
        kv_cache_usage="trtllm_kv_cache_utilization",
        prompt_tokens="trtllm_prompt_tokens_total",
        generation_tokens="trtllm_generation_tokens_total",
        ttft="trtllm_time_to_first_token_seconds",
        itl="trtllm_time_per_output_token_seconds",
    ),
}

# The spec field each signal's query comes from, as users see it in messages.
FIELD_NAMES: dict[str, str] = {
    QUEUE: "queueDepth",
    GPU: "gpuUtilization",
    RUNNING: "queries.running",
    KV_CACHE: "queries.kvCacheUsage",
    PROMPT_TOKENS: "queries.promptTokens",
    GENERATION_TOKENS: "queries.generationTokens",
    REQUEST_RATE: "queries.requestRate",
    WORK_GROWTH: "queries.workGrowth",
    TTFT: "queries.ttft",
    ITL: "queries.itl",
    OFFERED: "offeredLoad",
    REFUSED: "offeredLoad.refusedQuery",
}


def _quoted(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(namespace: str, namespace_label: str, model_label: str, model: str | None) -> str:
    """The label matchers every preset query carries."""
    matchers = [f"{namespace_label}={_quoted(namespace)}"]
    if model:
        matchers.append(f"{model_label}={_quoted(model)}")
    return "{" + ",".join(matchers) + "}"


def preset_queries(
    engine: Engine, namespace: str, namespace_label: str, model: str | None, percentile: float
) -> dict[str, str]:
    """Every signal's PromQL for one engine (empty for ``custom``)."""
    names = ENGINES.get(engine)
    if names is None:
        return {}
    sel = selector(namespace, namespace_label, names.model_label, model)
    window = RATE_WINDOW
    quantile = f"{percentile / 100:g}"

    def histogram_quantile(histogram: str) -> str:
        return (
            f"histogram_quantile({quantile}, sum by (le) (rate({histogram}_bucket{sel}[{window}])))"
        )

    return {
        QUEUE: f"sum({names.waiting}{sel})",
        RUNNING: f"sum({names.running}{sel})",
        KV_CACHE: f"avg({names.kv_cache_usage}{sel})",
        PROMPT_TOKENS: f"sum(rate({names.prompt_tokens}{sel}[{window}]))",
        GENERATION_TOKENS: f"sum(rate({names.generation_tokens}{sel}[{window}]))",
        REQUEST_RATE: f"sum(rate({names.ttft}_count{sel}[{window}]))",
        WORK_GROWTH: (
            f"sum(deriv({names.running}{sel}[{GROWTH_WINDOW}])) + "
            f"sum(deriv({names.waiting}{sel}[{GROWTH_WINDOW}]))"
        ),
        TTFT: histogram_quantile(names.ttft),
        ITL: histogram_quantile(names.itl),
    }


def spec_promql(
    spec: InferencePoolSpec, namespace: str, namespace_label: str
) -> dict[str, tuple[str, str]]:
    """The spec field and PromQL of every signal the planner reads for this pool.

    A query set in the spec wins over the preset's; ``queueDepth.query`` wins over
    ``queries.waiting``.
    """
    metrics = spec.metrics
    percentile = spec.slo.percentile if spec.slo is not None else 99.0
    preset = preset_queries(metrics.engine, namespace, namespace_label, spec.model, percentile)
    given: dict[str, str | None] = {
        QUEUE: metrics.queue_depth.query or metrics.queries.waiting,
        GPU: metrics.gpu_utilization.query if metrics.gpu_utilization is not None else None,
        OFFERED: metrics.offered_load.query if metrics.offered_load is not None else None,
        REFUSED: (metrics.offered_load.refused_query if metrics.offered_load is not None else None),
    }
    for name, field_name in {**LOAD_QUERY_FIELDS, **LATENCY_QUERY_FIELDS}.items():
        given[name] = getattr(metrics.queries, field_name)
    queries: dict[str, tuple[str, str]] = {}
    for name in signal_names(spec):
        promql = given.get(name) or preset.get(name)
        if promql is not None:
            queries[name] = (FIELD_NAMES[name], promql)
    return queries
