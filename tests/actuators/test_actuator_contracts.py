"""One behaviour, two implementations: the fakes and the Kubernetes adapters pass the same tests.

The controller's unit tests trust the fakes; these tests are why they may.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from fleetscale.actuators.base import (
    ActuatorError,
    ScaleActuator,
    ScaleStatus,
    ScaleTargetRef,
    SecretNotFound,
    SecretReader,
    TargetNotFound,
)
from fleetscale.actuators.fake import FakeScaleActuator, FakeSecretReader
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.rest import RetryPolicy
from fleetscale.actuators.secrets import KubernetesSecretReader
from support.kube_emulator import ScaleSubresource

NS = "models"
FAST_RETRY = RetryPolicy(attempts=2, first_backoff_seconds=0.01, request_timeout_seconds=5)
TARGET = ScaleTargetRef(NS, "apps/v1", "Deployment", "vllm")
MISSING = ScaleTargetRef(NS, "apps/v1", "Deployment", "nope")
CONFLICT_ATTEMPTS = 3


@dataclass
class ScaleWorld:
    actuator: ScaleActuator
    add: Callable[[int, int], None]  # (replicas, ready) of TARGET, 4 GPUs per replica
    conflict: Callable[[int], None]  # the next N writes meet a concurrent change
    stored_replicas: Callable[[], int]


def _deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": TARGET.name, "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "vllm"}},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": "4"}}}
                    ]
                }
            },
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


@pytest.fixture(params=["fake", "kubernetes"])
def world(request: pytest.FixtureRequest) -> ScaleWorld:
    if request.param == "fake":
        fake = FakeScaleActuator(conflict_attempts=CONFLICT_ATTEMPTS)
        return ScaleWorld(
            actuator=fake,
            add=lambda replicas, ready: fake.add(
                TARGET, replicas, ready=ready, accelerators_per_replica=4, selector="app=vllm"
            ),
            conflict=lambda times: fake.conflict_next(TARGET, times),
            stored_replicas=lambda: fake.targets[TARGET].spec_replicas,
        )
    emulator = request.getfixturevalue("emulator")
    api_client = request.getfixturevalue("api_client")
    scale = ScaleSubresource(emulator, "apps/v1/deployments")
    key = ("apps/v1/deployments", NS, TARGET.name)

    def add(replicas: int, ready: int) -> None:
        emulator.objects[key] = _deployment(replicas, ready)

    return ScaleWorld(
        actuator=KubernetesScaleActuator(
            api_client, retry=FAST_RETRY, conflict_attempts=CONFLICT_ATTEMPTS
        ),
        add=add,
        conflict=scale.interfere,
        stored_replicas=lambda: int(emulator.objects[key]["spec"]["replicas"]),
    )


async def test_read(world: ScaleWorld) -> None:
    world.add(3, 2)
    assert await world.actuator.read(TARGET) == ScaleStatus(3, 3, 2, "app=vllm", 4)


async def test_set_replicas_changes_the_spec_before_the_pods(world: ScaleWorld) -> None:
    world.add(3, 3)
    assert await world.actuator.set_replicas(TARGET, 5) == ScaleStatus(5, 3, 3, "app=vllm", 4)
    assert world.stored_replicas() == 5
    assert (await world.actuator.read(TARGET)).spec_replicas == 5


async def test_missing_targets(world: ScaleWorld) -> None:
    with pytest.raises(TargetNotFound, match=r"Deployment\.apps/v1 models/nope not found"):
        await world.actuator.read(MISSING)
    with pytest.raises(TargetNotFound):
        await world.actuator.set_replicas(MISSING, 1)


async def test_conflicts_are_retried_then_given_up(world: ScaleWorld) -> None:
    world.add(1, 1)
    world.conflict(CONFLICT_ATTEMPTS - 1)
    assert (await world.actuator.set_replicas(TARGET, 2)).spec_replicas == 2
    world.conflict(CONFLICT_ATTEMPTS)
    with pytest.raises(ActuatorError, match="kept changing"):
        await world.actuator.set_replicas(TARGET, 3)
    assert world.stored_replicas() == 2


async def test_negative_replicas(world: ScaleWorld) -> None:
    world.add(1, 1)
    with pytest.raises(ValueError, match="negative"):
        await world.actuator.set_replicas(TARGET, -2)


@pytest.fixture(params=["fake", "kubernetes"])
def secret_reader(request: pytest.FixtureRequest) -> SecretReader:
    data = {"token": "abc\n", "ca.crt": "-----BEGIN CERTIFICATE-----"}
    if request.param == "fake":
        fake = FakeSecretReader()
        fake.set_secret(NS, "prom", data)
        return fake
    emulator = request.getfixturevalue("emulator")
    emulator.objects["v1/secrets", NS, "prom"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prom", "namespace": NS},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    return KubernetesSecretReader(request.getfixturevalue("api_client"), retry=FAST_RETRY)


async def test_secret_reads(secret_reader: SecretReader) -> None:
    assert await secret_reader.read_key(NS, "prom", "token") == "abc\n"
    with pytest.raises(SecretNotFound) as missing_secret:
        await secret_reader.read_key(NS, "other", "token")
    with pytest.raises(SecretNotFound) as missing_key:
        await secret_reader.read_key(NS, "prom", "tok")
    assert str(missing_secret.value) == "Secret models/other not found"
    assert str(missing_key.value) == "Secret models/prom has no key 'tok' (its keys: ca.crt, token)"
