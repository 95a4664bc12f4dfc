"""The in-memory actuators keep the promises of the real ones that the controller relies on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetscale.actuators.base import (
    ActuatorError,
    EventSink,
    InvolvedObject,
    ScaleActuator,
    ScaleStatus,
    ScaleTargetRef,
    SecretNotFound,
    SecretReader,
    ShedFlag,
    ShedFlagPublisher,
    TargetNotFound,
)
from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.actuators.events import KubernetesEventSink
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
    FakeSecretReader,
    FakeShedFlagPublisher,
    SetReplicasCall,
)
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.secrets import KubernetesSecretReader
from support.protocols import protocol_mismatches

TARGET = ScaleTargetRef("models", "apps/v1", "Deployment", "vllm")
OTHER = ScaleTargetRef("models", "apps/v1", "Deployment", "tgi")
POOL = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", "models", "llama", "uid-1")


@pytest.mark.parametrize(
    ("implementation", "protocol"),
    [
        pytest.param(FakeScaleActuator, ScaleActuator, id="fake-scale"),
        pytest.param(KubernetesScaleActuator, ScaleActuator, id="kubernetes-scale"),
        pytest.param(FakeEventSink, EventSink, id="fake-events"),
        pytest.param(KubernetesEventSink, EventSink, id="kubernetes-events"),
        pytest.param(FakeShedFlagPublisher, ShedFlagPublisher, id="fake-shed-flag"),
        pytest.param(ConfigMapShedFlagPublisher, ShedFlagPublisher, id="configmap-shed-flag"),
        pytest.param(FakeSecretReader, SecretReader, id="fake-secrets"),
        pytest.param(KubernetesSecretReader, SecretReader, id="kubernetes-secrets"),
    ],
)
def test_fakes_and_adapters_implement_the_protocols(implementation: type, protocol: type) -> None:
    assert protocol_mismatches(implementation, protocol) == []


async def test_reads_and_writes_like_a_deployment() -> None:
    fake = FakeScaleActuator()
    fake.add(TARGET, 2, accelerators_per_replica=4)
    assert await fake.read(TARGET) == ScaleStatus(2, 2, 2, None, 4)
    after = await fake.set_replicas(TARGET, 5)
    assert (after.spec_replicas, after.status_replicas, after.ready_replicas) == (5, 2, 2)
    fake.settle(TARGET, ready=4)
    assert (await fake.read(TARGET)).ready_replicas == 4
    assert fake.set_calls == [SetReplicasCall(TARGET, 5)]
    assert fake.read_calls == [TARGET, TARGET]


async def test_follow_immediately_makes_pods_ready_at_once() -> None:
    fake = FakeScaleActuator(follow_immediately=True)
    fake.add(TARGET, 1)
    assert await fake.set_replicas(TARGET, 3) == ScaleStatus(3, 3, 3, None, None)


async def test_same_size_is_not_a_write() -> None:
    fake = FakeScaleActuator()
    fake.add(TARGET, 2)
    await fake.set_replicas(TARGET, 2)
    assert len(fake.set_calls) == 1
    assert fake.writes == []


async def test_unknown_targets_are_not_found() -> None:
    fake = FakeScaleActuator()
    with pytest.raises(TargetNotFound, match="vllm not found"):
        await fake.read(TARGET)
    with pytest.raises(TargetNotFound):
        await fake.set_replicas(TARGET, 1)


async def test_conflicts_are_retried_up_to_the_limit() -> None:
    fake = FakeScaleActuator(conflict_attempts=3)
    fake.add(TARGET, 1)
    fake.conflict_next(TARGET, times=2)
    assert (await fake.set_replicas(TARGET, 2)).spec_replicas == 2
    fake.conflict_next(TARGET, times=3)
    with pytest.raises(ActuatorError, match="kept changing"):
        await fake.set_replicas(TARGET, 3)
    assert (await fake.read(TARGET)).spec_replicas == 2


async def test_injected_failures_per_target_and_for_all() -> None:
    fake = FakeScaleActuator()
    fake.add(TARGET, 1)
    fake.add(OTHER, 1)
    fake.fail_next(ActuatorError("etcd timeout"), TARGET)
    with pytest.raises(ActuatorError, match="etcd timeout"):
        await fake.read(TARGET)
    assert (await fake.read(TARGET)).spec_replicas == 1  # one-shot
    fake.fail_always(ActuatorError("API down"))
    for target in (TARGET, OTHER):
        with pytest.raises(ActuatorError, match="API down"):
            await fake.set_replicas(target, 4)
    fake.recover()
    assert (await fake.set_replicas(OTHER, 4)).spec_replicas == 4


async def test_event_sink_records_and_never_raises() -> None:
    sink = FakeEventSink()
    await sink.post(POOL, "Normal", "ScaledUp", "from 1 to 2")
    sink.failing = True
    await sink.post(POOL, "Warning", "TargetNotFound", "vllm not found")
    assert sink.reasons() == ["ScaledUp"]
    assert [e.reason for e in sink.dropped] == ["TargetNotFound"]


async def test_shed_flag_publisher_keeps_the_latest_flag() -> None:
    publisher = FakeShedFlagPublisher()
    on = ShedFlag(True, "MaxReplicas", datetime(2026, 1, 1, tzinfo=UTC), 30)
    off = ShedFlag(False, "NotLimited", None, None)
    await publisher.publish(POOL, "shed", on)
    await publisher.publish(POOL, "shed", off)
    assert publisher.current == {("models", "shed"): off}
    assert [p.flag for p in publisher.published] == [on, off]
    publisher.fail_next()
    with pytest.raises(ActuatorError):
        await publisher.publish(POOL, "shed", on)
    assert publisher.current[("models", "shed")] == off


async def test_secret_reader_names_what_is_missing() -> None:
    reader = FakeSecretReader()
    reader.set_secret("models", "prom", {"token": "abc"})
    assert await reader.read_key("models", "prom", "token") == "abc"
    with pytest.raises(SecretNotFound, match="Secret models/nope not found"):
        await reader.read_key("models", "nope", "token")
    with pytest.raises(SecretNotFound, match=r"has no key 'ca\.crt' \(its keys: token\)"):
        await reader.read_key("models", "prom", "ca.crt")
    assert reader.reads[0] == ("models", "prom", "token")
