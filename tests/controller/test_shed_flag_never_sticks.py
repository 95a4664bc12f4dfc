"""The shed flag never sticks on: every way a shedding pool stops being managed turns the flag
off everywhere gateways read it (status, ConfigMap, gauge), with the reason, and says so once.

Each row starts from a pool that sheds (Active, capped at its maximum, a deep queue) and then
leaves Active one way or another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_reconcile import NOW, TARGET, World, spec

from fleetscale.controller.inferencepools.tick import withdraw_shed_flag_of_deleted_pool
from fleetscale.controller.leadership import on_leadership_change

CONFIG_MAP = ("serving", "llama-shed")


def shedding_spec(**overrides: Any) -> dict[str, Any]:
    shed = {"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-shed"}
    return spec(**{"replicas": {"min": 1, "max": 3}, "shedLoad": shed, **overrides})


async def shedding_world() -> World:
    world = World(replicas=3)
    await world.tick(shedding_spec(), NOW, queue=300)
    await world.tick(shedding_spec(), NOW + 15, queue=300)
    assert world.publisher.current[CONFIG_MAP].active
    assert world.metric("fleetscale_shed_active") == 1
    return world


def invalid(world: World) -> dict[str, Any]:
    broken = shedding_spec()
    broken["replicas"] = {"min": 5, "max": 1}  # stored before the schema had the CEL rule
    return broken


def target_gone(world: World) -> dict[str, Any]:
    del world.scaler.targets[TARGET]
    return shedding_spec()


@pytest.mark.parametrize(
    ("leave", "reason"),
    [
        pytest.param(lambda world: shedding_spec(mode="Paused"), "Paused", id="paused"),
        pytest.param(lambda world: shedding_spec(mode="DryRun"), "DryRun", id="dry-run"),
        pytest.param(invalid, "InvalidSpec", id="invalid-spec"),
        pytest.param(target_gone, "TargetNotFound", id="target-gone"),
        pytest.param(
            lambda world: shedding_spec(shedLoad={"enabled": False, "configMapName": "llama-shed"}),
            "ShedLoadDisabled",
            id="shedding-disabled",
        ),
    ],
)
async def test_leaving_active_turns_the_flag_off_everywhere(
    leave: Callable[[World], dict[str, Any]], reason: str
) -> None:
    world = await shedding_world()
    published = len(world.publisher.published)
    new_spec = leave(world)
    await world.tick(new_spec, NOW + 30, queue=300)

    flag = world.publisher.current[CONFIG_MAP]
    assert not flag.active, "the ConfigMap still tells gateways to refuse traffic"
    assert flag.reason == reason
    assert world.status is not None
    assert world.status["shedLoad"]["active"] is False
    assert world.status["shedLoad"]["reason"] == reason
    assert world.metric("fleetscale_shed_active") == 0
    shed_condition = world.condition("ShedLoad")
    assert shed_condition["status"] == "False"
    # DryRun's condition says what it would do (DryRunWouldShed); the others say why it is off.
    assert shed_condition["reason"] == ("DryRunWouldShed" if reason == "DryRun" else reason)
    assert world.events.reasons().count("ShedLoadStopped") == 1

    # Said once: the next ticks write nothing more.
    await world.tick(new_spec, NOW + 45, queue=300)
    assert len(world.publisher.published) == published + 1
    assert world.events.reasons().count("ShedLoadStopped") == 1


async def test_a_renamed_config_map_does_not_leave_the_old_one_on() -> None:
    world = await shedding_world()
    renamed = shedding_spec(
        shedLoad={"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-429"}
    )
    await world.tick(renamed, NOW + 30, queue=300)
    assert world.publisher.current[("serving", "llama-429")].active
    assert not world.publisher.current[CONFIG_MAP].active


async def test_a_deleted_pool_turns_its_flag_off_before_the_config_map_goes() -> None:
    world = await shedding_world()
    assert world.status is not None
    metadata = {"namespace": "serving", "name": "llama", "uid": "uid-1"}
    body = {"metadata": metadata, "status": world.status}
    await withdraw_shed_flag_of_deleted_pool(("serving", "llama"), body, world.deps)
    flag = world.publisher.current[CONFIG_MAP]
    assert (flag.active, flag.reason) == (False, "Deleted")
    assert not [key for key in world.deps.published_flags if key[:2] == ("serving", "llama")]


async def test_a_replica_that_loses_leadership_leaves_the_flag_to_the_new_leader() -> None:
    """The old leader may not write any more (its writes are fenced): it drops its gauges and
    its memory of what it published; the new leader republishes at its first tick."""
    world = await shedding_world()
    on_leadership_change(world.metrics, world.deps.published_flags.clear)(False)
    assert world.metric("fleetscale_shed_active") is None
    assert world.metrics.registry.get_sample_value("fleetscale_leader") == 0
    assert world.deps.published_flags == {}

    successor = World(replicas=3)
    successor.status = world.status  # the new leader reads the pool's status from the watch
    # Demand fits again: nothing waits (3 waiting while 92% are refused would still be 37
    # offered, more than the 3 replicas carry).
    await successor.tick(shedding_spec(), NOW + 20, queue=0)
    assert not successor.publisher.current[CONFIG_MAP].active
    assert successor.metric("fleetscale_shed_active") == 0
