"""The InferencePool models: defaults, bounds and cross-field rules, as the operator sees them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fleetscale.api import InferencePoolSpec


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "vllm-llama"},
        "replicas": {"min": 1, "max": 8},
        "metrics": {"queueDepth": {"query": "sum(vllm:num_requests_waiting)"}},
    }
    spec.update(overrides)
    return spec


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = InferencePoolSpec.model_validate(_spec())
    assert spec.target_ref.api_version == "apps/v1"
    assert spec.target_ref.kind == "Deployment"
    assert spec.mode == "Active"
    assert spec.poll_interval_seconds == 15
    assert spec.metrics.max_staleness_seconds == 60
    assert spec.metrics.queue_depth.target_per_replica == 2
    # behavior fields left out stay unset in the spec (the API server stores what was written);
    # the planner resolves them to the HPA's defaults (tests/planner/test_hpa_upstream_tables.py).
    assert spec.behavior.scale_down.stabilization_window_seconds is None
    assert spec.behavior.scale_down.policies is None
    assert spec.behavior.scale_up.tolerance is None
    assert spec.shed_load.queue_per_replica_threshold == 10
    assert spec.shed_load.enabled is True
    assert spec.shed_load.release_threshold == spec.shed_load.queue_per_replica_threshold / 2
    assert spec.shed_load.release_after_seconds == 30


def test_wire_form_round_trips() -> None:
    spec = InferencePoolSpec.model_validate(_spec(priority=7, mode="DryRun"))
    again = InferencePoolSpec.model_validate(spec.to_wire())
    assert again == spec
    assert spec.to_wire()["targetRef"]["name"] == "vllm-llama"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"replicas": {"min": 5, "max": 2}}, "replicas.min must be less than", id="min-above-max"
        ),
        pytest.param({"replicas": {"min": 0, "max": 0}}, "greater than or equal to 1", id="max-0"),
        pytest.param({"mode": "Sometimes"}, "'Active', 'DryRun' or 'Paused'", id="unknown-mode"),
        pytest.param({"pollIntervalSeconds": 0}, "greater than or equal to 1", id="poll-0"),
        pytest.param(
            {"metrics": {"queueDepth": {"query": ""}}}, "at least 1 character", id="empty-query"
        ),
        pytest.param(
            {"metrics": {"queueDepth": {"query": "q", "targetPerReplica": 0}}},
            "greater than 0",
            id="target-0",
        ),
        pytest.param(
            {"shedLoad": {"queuePerReplicaThreshold": 10, "releaseQueuePerReplica": 10}},
            "releaseQueuePerReplica must be below",
            id="release-not-below-threshold",
        ),
        pytest.param(
            {"shedLoad": {"releaseAfterSeconds": -1}},
            "greater than or equal to 0",
            id="release-after-negative",
        ),
        pytest.param(
            {"shedLoad": {"releaseAfterSeconds": 3601}},
            "less than or equal to 3600",
            id="release-after-over-an-hour",
        ),
        pytest.param({"replicsa": {"max": 3}}, "Extra inputs are not permitted", id="typo-field"),
        pytest.param(
            {"metrics": {"prometheus": {"url": "prometheus:9090"}, "queueDepth": {"query": "q"}}},
            "String should match pattern",
            id="url-without-scheme",
        ),
    ],
)
def test_invalid_specs_are_rejected_with_a_clear_message(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        InferencePoolSpec.model_validate(_spec(**overrides))
    assert message in str(error.value)
