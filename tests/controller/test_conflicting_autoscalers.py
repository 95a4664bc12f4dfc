"""No fight with other controllers: a second InferencePool or an HPA (KEDA's included) on the
same workload makes the pool refuse to act, and say why; a human's `kubectl scale` is followed
and said once."""

from __future__ import annotations

import pytest
from test_reconcile import NOW, POOL, TARGET, World, spec

from fleetscale.controller.inferencepools.conflicts import Controller, InMemoryControllers

OLDER = NOW - 3600


def hpa(name: str) -> Controller:
    return Controller("HorizontalPodAutoscaler", "serving", name, created=OLDER)


def pool(name: str, created: float) -> Controller:
    return Controller("InferencePool", "serving", name, created=created)


@pytest.mark.parametrize(
    ("others", "refused_because_of"),
    [
        pytest.param([hpa("vllm")], "HorizontalPodAutoscaler serving/vllm", id="an-hpa"),
        pytest.param(
            [hpa("keda-hpa-llama")],
            "HorizontalPodAutoscaler serving/keda-hpa-llama",
            id="kedas-generated-hpa",
        ),
        pytest.param(
            [pool("llama-old", OLDER)], "InferencePool serving/llama-old", id="an-older-pool"
        ),
        pytest.param([pool("llama-new", NOW)], None, id="a-newer-pool-yields-to-this-one"),
        pytest.param([], None, id="alone"),
    ],
)
async def test_another_autoscaler_on_the_target_makes_the_pool_refuse_to_act(
    others: list[Controller], refused_because_of: str | None
) -> None:
    world = World(replicas=2)
    world.deps.controllers = InMemoryControllers(
        {(TARGET.namespace, "apps", "Deployment", "vllm"): [pool(POOL.name, NOW - 60), *others]}
    )
    result = await world.tick(spec(), NOW, queue=40)
    if refused_because_of is None:
        assert world.scaler.targets[TARGET].spec_replicas == 8
        assert result.reason == "ScaledUp"
        return
    assert world.scaler.targets[TARGET].spec_replicas == 2  # not touched
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ConflictingAutoscaler")
    assert refused_because_of in ready["message"]
    [event] = [e for e in world.events.events if e.reason == "ConflictingAutoscaler"]
    assert event.type == "Warning"
    assert refused_because_of in event.message


async def test_a_dry_run_pool_may_shadow_an_hpa() -> None:
    """DryRun writes nothing, so it fights nothing: it decides and reports beside the HPA."""
    world = World(replicas=2)
    world.deps.controllers = InMemoryControllers(
        {(TARGET.namespace, "apps", "Deployment", "vllm"): [hpa("vllm")]}
    )
    result = await world.tick(spec(mode="DryRun"), NOW, queue=40)
    assert result.decision is not None
    assert result.decision.desired_replicas == 8
    assert world.scaler.targets[TARGET].spec_replicas == 2
    assert world.condition("Ready")["reason"] == "DryRun"


async def test_a_human_scale_is_followed_and_said_once() -> None:
    world = World(replicas=2)
    await world.tick(spec(), NOW, queue=10)  # 10 waiting / 5 per replica: holds 2
    world.scaler.add(TARGET, 5, accelerators_per_replica=4)  # `kubectl scale --replicas 5`
    await world.tick(spec(), NOW + 15, queue=10)
    await world.tick(spec(), NOW + 30, queue=10)
    said = [e for e in world.events.events if e.reason == "ScaledExternally"]
    assert len(said) == 1
    assert "from 2 to 5" in said[0].message
