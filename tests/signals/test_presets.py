"""Engine presets: one query per signal, from each engine's current metric names."""

from __future__ import annotations

from typing import Any

import pytest

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner.observe import signal_names
from fleetscale.signals.presets import ENGINES, spec_promql

SEL = '{namespace="inference",model_name="meta-llama/Llama-3.1-70B"}'


def _spec(metrics: dict[str, Any] | None = None, **fields: Any) -> InferencePoolSpec:
    return InferencePoolSpec.model_validate(
        {
            "targetRef": {"name": "vllm"},
            "model": "meta-llama/Llama-3.1-70B",
            "replicas": {"max": 8},
            "metrics": metrics or {},
            **fields,
        }
    )


def _queries(spec: InferencePoolSpec, label: str = "namespace") -> dict[str, str]:
    return {name: promql for name, (_, promql) in spec_promql(spec, "inference", label).items()}


def test_the_vllm_preset_reads_every_load_signal_with_current_names() -> None:
    queries = _queries(_spec(slo={"ttftSeconds": 2, "itlSeconds": 0.05, "percentile": 99}))
    assert queries == {
        "queue": f"sum(vllm:num_requests_waiting{SEL})",
        "running": f"sum(vllm:num_requests_running{SEL})",
        "kv_cache": f"avg(vllm:kv_cache_usage_perc{SEL})",
        "prompt_tokens": f"sum(rate(vllm:prompt_tokens_total{SEL}[1m]))",
        "generation_tokens": f"sum(rate(vllm:generation_tokens_total{SEL}[1m]))",
        "request_rate": f"sum(rate(vllm:time_to_first_token_seconds_count{SEL}[1m]))",
        "work_growth": f"sum(deriv(vllm:num_requests_running{SEL}[30s])) + "
        f"sum(deriv(vllm:num_requests_waiting{SEL}[30s]))",
        "ttft": "histogram_quantile(0.99, sum by (le) "
        f"(rate(vllm:time_to_first_token_seconds_bucket{SEL}[1m])))",
        "itl": "histogram_quantile(0.99, sum by (le) "
        f"(rate(vllm:inter_token_latency_seconds_bucket{SEL}[1m])))",
    }
    assert not any("gpu_cache_usage_perc" in q for q in queries.values())


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        pytest.param(
            "sglang",
            {
                "queue": "sglang:num_queue_reqs",
                "running": "sglang:num_running_reqs",
                "kv_cache": "sglang:token_usage",
                "prompt_tokens": "sglang:prompt_tokens_total",
                "ttft": "sglang:time_to_first_token_seconds_bucket",
            },
            id="sglang",
        ),
        pytest.param(
            "trtllm",
            {
                "queue": "trtllm_num_requests_waiting",
                "running": "trtllm_num_requests_running",
                "kv_cache": "trtllm_kv_cache_utilization",
                "generation_tokens": "trtllm_generation_tokens_total",
                "ttft": "trtllm_time_to_first_token_seconds_bucket",
            },
            id="trtllm-serve",
        ),
    ],
)
def test_other_engines_use_their_own_names(engine: str, expected: dict[str, str]) -> None:
    queries = _queries(_spec({"engine": engine}, slo={"ttftSeconds": 2}))
    for signal, metric in expected.items():
        assert metric in queries[signal]


def test_custom_reads_only_what_it_is_given() -> None:
    spec = _spec(
        {
            "engine": "custom",
            "queueDepth": {"query": "sum(q)"},
            "queries": {"running": "sum(r)", "ttft": "my_p95"},
        },
        slo={"ttftSeconds": 2},
    )
    assert _queries(spec) == {"queue": "sum(q)", "running": "sum(r)", "ttft": "my_p95"}
    assert signal_names(spec) == ("queue", "running", "ttft")


def test_a_query_in_the_spec_replaces_the_presets() -> None:
    spec = _spec(
        {"queueDepth": {"query": "sum(mine)"}, "queries": {"waiting": "x", "kvCacheUsage": "kv"}}
    )
    queries = _queries(spec)
    assert queries["queue"] == "sum(mine)"  # queueDepth.query wins over queries.waiting
    assert queries["kv_cache"] == "kv"


def test_latency_is_read_only_for_the_targets_set() -> None:
    assert "ttft" not in _queries(_spec())
    with_ttft = _queries(_spec(slo={"ttftSeconds": 1}))
    assert "histogram_quantile(0.95," in with_ttft["ttft"]  # the default percentile
    assert "itl" not in with_ttft


def test_the_gateway_is_read_only_when_configured() -> None:
    spec = _spec({"offeredLoad": {"query": "sum(o)", "refusedQuery": "sum(x)"}})
    queries = _queries(spec)
    assert (queries["offered"], queries["refused"]) == ("sum(o)", "sum(x)")


def test_scoping_follows_the_namespace_label_and_quotes_the_model() -> None:
    spec = _spec(model='odd"name\\')
    assert _queries(spec, label="kubernetes_namespace")["queue"] == (
        'sum(vllm:num_requests_waiting{kubernetes_namespace="inference",'
        'model_name="odd\\"name\\\\"})'
    )
    no_model = InferencePoolSpec.model_validate(
        {"targetRef": {"name": "v"}, "replicas": {"max": 2}}
    )
    assert _queries(no_model)["queue"] == 'sum(vllm:num_requests_waiting{namespace="inference"})'


def test_every_engine_names_every_signal() -> None:
    for names in ENGINES.values():
        assert all(vars(names).values())


def test_custom_without_a_queue_is_rejected() -> None:
    with pytest.raises(ValueError, match="engine custom needs"):
        _spec({"engine": "custom"})
