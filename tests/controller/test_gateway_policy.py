"""The shed decision reaches the gateway's own policy: written while an Active pool sheds,
withdrawn on every way out, never written over someone else's object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_reconcile import NOW, POOL, TARGET, World, spec

from fleetscale.controller.inferencepools.tick import withdraw_shed_flag_of_deleted_pool
from fleetscale.gateways.base import GatewayError, ShedOrder
from fleetscale.gateways.fake import FakeGatewayWriter

POLICY = ("serving", "llama-shed")
GATEWAY = {
    "envoyGateway": {"routeRef": {"name": "llama-route"}},
    "message": "llama is busy",
}


def shedding_spec(**overrides: Any) -> dict[str, Any]:
    shed = {"enabled": True, "queuePerReplicaThreshold": 20, "gateway": GATEWAY}
    return spec(**{"replicas": {"min": 1, "max": 3}, "shedLoad": shed, **overrides})


def gateway_world() -> tuple[World, FakeGatewayWriter]:
    world = World(replicas=3)
    writer = FakeGatewayWriter()
    world.deps.gateway = writer
    return world, writer


async def shedding() -> tuple[World, FakeGatewayWriter]:
    world, writer = gateway_world()
    await world.tick(shedding_spec(), NOW, queue=300)
    return world, writer


async def test_a_shedding_pool_writes_its_fraction_retry_after_and_message() -> None:
    world, writer = await shedding()
    assert world.status is not None
    shed = world.status["shedLoad"]
    # 3 ready replicas at a threshold of 20 carry 60 of the 300 waiting: 80% refused.
    assert writer.order(*POLICY) == ShedOrder(
        fraction=0.8,
        retry_after_seconds=shed["retryAfterSeconds"],
        message="llama is busy",
        reason="MaxReplicas",
    )
    assert shed["gatewayPolicy"] == "EnvoyGateway/llama-shed"
    [call] = writer.calls
    assert call.owner.uid == POOL.uid
    assert call.target.route is not None
    assert call.target.route.name == "llama-route"
    assert world.condition("Ready")["status"] == "True"
    [started] = [e for e in world.events.events if e.reason == "ShedLoadStarted"]
    assert "to 80% of requests, lower priority first (MaxReplicas)" in started.message
    assert "refusing 80%: 300 offered for 60 servable" in started.message

    await world.tick(shedding_spec(), NOW + 15, queue=60)  # the same order: not written again
    assert len(writer.calls) == 1


async def test_the_policy_is_withdrawn_when_the_flag_goes_off() -> None:
    world, writer = await shedding()
    await world.tick(shedding_spec(), NOW + 15, queue=3)
    assert world.status is not None
    assert world.status["shedLoad"]["active"] is False
    assert writer.order(*POLICY) is None
    assert [call.verb for call in writer.calls] == ["write", "withdraw"]
    await world.tick(shedding_spec(), NOW + 30, queue=3)
    assert len(writer.calls) == 2  # nothing recorded, nothing more to withdraw


def _invalid(world: World) -> dict[str, Any]:
    broken = shedding_spec()
    broken["replicas"] = {"min": 5, "max": 1}
    return broken


def _target_gone(world: World) -> dict[str, Any]:
    del world.scaler.targets[TARGET]
    return shedding_spec()


@pytest.mark.parametrize(
    ("leave", "reason"),
    [
        pytest.param(lambda world: shedding_spec(mode="Paused"), "Paused", id="paused"),
        pytest.param(lambda world: shedding_spec(mode="DryRun"), "DryRun", id="dry-run"),
        pytest.param(_invalid, "InvalidSpec", id="invalid-spec"),
        pytest.param(_target_gone, "TargetNotFound", id="target-gone"),
        pytest.param(
            lambda world: shedding_spec(shedLoad={"enabled": True, "queuePerReplicaThreshold": 20}),
            "GatewayUnnamed",
            id="gateway-no-longer-named",
        ),
    ],
)
async def test_leaving_active_withdraws_the_policy(
    leave: Callable[[World], dict[str, Any]], reason: str
) -> None:
    world, writer = await shedding()
    await world.tick(leave(world), NOW + 15, queue=300)
    assert writer.order(*POLICY) is None, "the gateway still refuses traffic"
    assert writer.calls[-1].verb == "withdraw"


async def test_a_renamed_policy_does_not_leave_the_old_one_aborting() -> None:
    world, writer = await shedding()
    renamed = {**GATEWAY, "envoyGateway": {"routeRef": {"name": "llama-route"}, "policyName": "p2"}}
    shed = {"enabled": True, "queuePerReplicaThreshold": 20, "gateway": renamed}
    await world.tick(spec(replicas={"min": 1, "max": 3}, shedLoad=shed), NOW + 15, queue=300)
    assert writer.order(*POLICY) is None
    assert writer.order("serving", "p2") is not None


async def test_a_deleted_pool_withdraws_its_policy() -> None:
    world, writer = await shedding()
    assert world.status is not None
    body = {"metadata": {"namespace": "serving", "name": "llama", "uid": POOL.uid}}
    await withdraw_shed_flag_of_deleted_pool(
        ("serving", "llama"), {**body, "status": world.status}, world.deps
    )
    assert writer.order(*POLICY) is None
    assert not [key for key in world.deps.gateway_orders if key[:2] == ("serving", "llama")]


async def test_someone_elses_policy_is_left_alone_with_a_condition_and_a_warning() -> None:
    world, writer = gateway_world()
    writer.foreign(*POLICY)
    await world.tick(shedding_spec(), NOW, queue=300)

    assert writer.policies[POLICY] == (None, None), "fleetscale wrote over a foreign policy"
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GatewayPolicyConflict")
    assert "was not created by fleetscale" in ready["message"]
    [event] = [e for e in world.events.events if e.reason == "GatewayPolicyConflict"]
    assert event.type == "Warning"
    assert (
        world.metrics.registry.get_sample_value(
            "fleetscale_reconcile_errors_total",
            {"namespace": "serving", "pool": "llama", "reason": "GatewayPolicyConflict"},
        )
        == 1
    )
    # The flag itself is still published everywhere else.
    assert world.status is not None
    assert world.status["shedLoad"]["active"] is True
    assert world.metric("fleetscale_shed_active") == 1

    # Withdrawing it later leaves it alone too.
    await world.tick(shedding_spec(), NOW + 15, queue=3)
    assert writer.policies[POLICY] == (None, None)


async def test_a_failed_write_is_retried_at_the_next_tick() -> None:
    world, writer = gateway_world()
    writer.fail_next(GatewayError("HTTP 503"))
    await world.tick(shedding_spec(), NOW, queue=300)
    assert world.condition("Ready")["reason"] == "GatewayPolicyFailed"
    assert writer.order(*POLICY) is None
    await world.tick(shedding_spec(), NOW + 15, queue=300)
    assert writer.order(*POLICY) is not None
    assert world.condition("Ready")["status"] == "True"


async def test_a_failed_withdrawal_keeps_the_record_and_retries() -> None:
    world, writer = await shedding()
    writer.fail_next(GatewayError("HTTP 503"))
    await world.tick(shedding_spec(), NOW + 15, queue=3)
    assert writer.order(*POLICY) is not None
    assert world.status is not None
    assert world.status["shedLoad"]["gatewayPolicy"] == "EnvoyGateway/llama-shed"
    await world.tick(shedding_spec(), NOW + 30, queue=3)
    assert writer.order(*POLICY) is None


async def test_dry_run_never_writes_a_policy() -> None:
    world, writer = gateway_world()
    await world.tick(shedding_spec(mode="DryRun"), NOW, queue=300)
    await world.tick(shedding_spec(mode="DryRun"), NOW + 15, queue=300)
    assert writer.calls == []
