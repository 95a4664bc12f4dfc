"""Events, the shed-flag ConfigMap and Secret reads against kmock's Kubernetes emulator."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta, timezone

import kmock
import pytest
from kubernetes.client import ApiClient

from fleetscale.actuators.base import ActuatorError, InvolvedObject, SecretNotFound, ShedFlag
from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher, flag_data
from fleetscale.actuators.events import MESSAGE_MAX_CHARS, KubernetesEventSink
from fleetscale.actuators.rest import RetryPolicy
from fleetscale.actuators.secrets import KubernetesSecretReader

NS = "models"
FAST_RETRY = RetryPolicy(attempts=2, first_backoff_seconds=0.01, request_timeout_seconds=5)
POOL = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "llama", "uid-llama")
APOOL = InvolvedObject("fleetscale.io/v1alpha1", "AcceleratorPool", None, "h100", "uid-h100")
SINCE = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stored_events(emulator: kmock.KubernetesEmulator) -> list[dict[str, object]]:
    return [
        dict(obj.raw)
        for (resource, _, _), obj in emulator.objects.items()
        if resource == kmock.resource("v1/events") and not obj.deleted
    ]


# ----- Events -----


async def test_an_event_carries_the_object_reason_and_source(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    sink = KubernetesEventSink(api_client, instance="fleetscale-0", clock=Clock(), retry=FAST_RETRY)
    await sink.post(POOL, "Normal", "ScaledUp", "Scaled up from 2 to 4: queue 40 > 2 x 5")
    [event] = stored_events(emulator)
    assert event["metadata"]["namespace"] == NS  # type: ignore[index]
    assert str(event["metadata"]["name"]).startswith("llama.")  # type: ignore[index]
    assert event["involvedObject"] == {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "InferencePool",
        "name": "llama",
        "namespace": NS,
        "uid": "uid-llama",
    }
    assert (event["type"], event["reason"], event["count"]) == ("Normal", "ScaledUp", 1)
    assert event["message"] == "Scaled up from 2 to 4: queue 40 > 2 x 5"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2027-01-15T08:00:00Z"
    assert event["source"] == {"component": "fleetscale"}
    assert event["reportingInstance"] == "fleetscale-0"


async def test_repeats_within_the_window_bump_the_count(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    clock = Clock()
    sink = KubernetesEventSink(
        api_client, clock=clock, aggregate_window_seconds=600, retry=FAST_RETRY
    )
    for _ in range(3):
        await sink.post(POOL, "Warning", "ScalingLimited", "At max replicas 8")
        clock.now += 60
    [event] = stored_events(emulator)
    assert event["count"] == 3
    assert event["lastTimestamp"] == "2027-01-15T08:02:00Z"
    assert len(emulator[kmock.method.POST]) == 1
    assert len(emulator[kmock.method.PATCH]) == 2


async def test_different_messages_and_expired_windows_make_new_events(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    clock = Clock()
    sink = KubernetesEventSink(
        api_client, clock=clock, aggregate_window_seconds=600, retry=FAST_RETRY
    )
    await sink.post(POOL, "Normal", "ScaledUp", "Scaled up from 2 to 4")
    await sink.post(POOL, "Normal", "ScaledUp", "Scaled up from 4 to 8")
    clock.now += 601
    await sink.post(POOL, "Normal", "ScaledUp", "Scaled up from 2 to 4")
    assert sorted(e["count"] for e in stored_events(emulator)) == [1, 1, 1]  # type: ignore[type-var]
    assert len(stored_events(emulator)) == 3


async def test_an_expired_event_is_posted_anew(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    sink = KubernetesEventSink(api_client, clock=Clock(), retry=FAST_RETRY)
    await sink.post(POOL, "Normal", "ShedLoadStarted", "Shedding: at max replicas")
    [first] = stored_events(emulator)
    del emulator.objects["v1/events", NS, first["metadata"]["name"]]  # type: ignore[index]  # TTL
    await sink.post(POOL, "Normal", "ShedLoadStarted", "Shedding: at max replicas")
    [second] = stored_events(emulator)
    assert second["count"] == 1
    assert second["metadata"]["name"] != first["metadata"]["name"]  # type: ignore[index]


async def test_events_about_cluster_scoped_objects_go_to_default(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    sink = KubernetesEventSink(api_client, clock=Clock(), retry=FAST_RETRY)
    await sink.post(APOOL, "Normal", "NodesRequested", "Requested 2 more nodes")
    [event] = stored_events(emulator)
    assert event["metadata"]["namespace"] == "default"  # type: ignore[index]
    assert "namespace" not in event["involvedObject"]  # type: ignore[operator]


async def test_long_messages_are_truncated(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    sink = KubernetesEventSink(api_client, clock=Clock(), retry=FAST_RETRY)
    await sink.post(POOL, "Warning", "InvalidSpec", "x" * 5000)
    [event] = stored_events(emulator)
    assert len(str(event["message"])) == MESSAGE_MAX_CHARS
    assert str(event["message"]).endswith("...")


async def test_a_failed_post_is_logged_not_raised(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    emulator[kmock.method.POST, kmock.resource("v1/events")] << kmock.KubernetesError(
        status=403, reason="Forbidden", message="cannot create events"
    )
    sink = KubernetesEventSink(api_client, clock=Clock(), retry=FAST_RETRY)
    with caplog.at_level(logging.WARNING):
        await sink.post(POOL, "Normal", "ScaledUp", "Scaled up")
    # (kmock stores a created object even when a reaction answers the request instead.)
    assert len(emulator[kmock.method.POST]) == 1  # a 403 is not retried
    assert "cannot create events" in caplog.text


# ----- Shed flag ConfigMap -----

_UNSET: dict[str, str | None] = {
    "message": None,
    "lowPriorityHeader": None,
    "lowPriorityValue": None,
}


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        pytest.param(
            ShedFlag(True, "MaxReplicas", SINCE, 30),
            {
                "active": "true",
                "fraction": "0.00",
                "reason": "MaxReplicas",
                "retryAfterSeconds": "30",
                "since": "2026-11-26T12:00:00Z",
                **_UNSET,
            },
            id="on",
        ),
        pytest.param(
            ShedFlag(True, "MaxReplicas", SINCE, 30, 0.35, "busy", ("x-priority", "low")),
            {
                "active": "true",
                "fraction": "0.35",
                "reason": "MaxReplicas",
                "retryAfterSeconds": "30",
                "since": "2026-11-26T12:00:00Z",
                "message": "busy",
                "lowPriorityHeader": "x-priority",
                "lowPriorityValue": "low",
            },
            id="on-with-fraction-message-and-priority",
        ),
        pytest.param(
            ShedFlag(False, "NotLimited", SINCE, None, 0.4),
            {
                "active": "false",
                "fraction": "0.00",
                "reason": "NotLimited",
                "retryAfterSeconds": None,
                "since": None,
                **_UNSET,
            },
            id="off-drops-since-and-retry-and-the-fraction",
        ),
        pytest.param(
            ShedFlag(True, "NodesProvisioning", SINCE.astimezone(timezone(timedelta(hours=2))), 5),
            {
                "active": "true",
                "fraction": "0.00",
                "reason": "NodesProvisioning",
                "retryAfterSeconds": "5",
                "since": "2026-11-26T12:00:00Z",
                **_UNSET,
            },
            id="since-in-utc",
        ),
    ],
)
def test_flag_data(flag: ShedFlag, expected: dict[str, str | None]) -> None:
    assert flag_data(flag) == expected


async def test_the_flag_configmap_is_created_owned_then_patched(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    await publisher.publish(POOL, "llama-shed", ShedFlag(True, "MaxReplicas", SINCE, 30))
    stored = emulator.objects["v1/configmaps", NS, "llama-shed"]
    assert dict(stored["data"]) == {
        "active": "true",
        "fraction": "0.00",
        "reason": "MaxReplicas",
        "retryAfterSeconds": "30",
        "since": "2026-11-26T12:00:00Z",
    }
    assert stored["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "fleetscale.io/v1alpha1",
            "kind": "InferencePool",
            "name": "llama",
            "uid": "uid-llama",
            "controller": True,
        }
    ]
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "fleetscale"}
    assert stored["metadata"]["annotations"] == {"fleetscale.io/inference-pool": "llama"}

    await publisher.publish(POOL, "llama-shed", ShedFlag(False, "NotLimited", None, None))
    stored = emulator.objects["v1/configmaps", NS, "llama-shed"]
    # Removed keys are gone (merge patch with null), not left behind stale.
    assert dict(stored["data"]) == {"active": "false", "fraction": "0.00", "reason": "NotLimited"}
    assert len(emulator[kmock.method.POST]) == 1
    assert len(emulator[kmock.method.PATCH]) == 1


async def test_an_unchanged_flag_is_not_written_again(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    flag = ShedFlag(True, "MaxReplicas", SINCE, 30)
    for _ in range(3):
        await publisher.publish(POOL, "llama-shed", flag)
    assert len(emulator[kmock.method.POST]) == 1
    assert len(emulator[kmock.method.PATCH]) == 0


async def test_the_pools_own_configmap_is_patched_keeping_other_keys(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    """A ConfigMap an earlier release created (managed-by label and controller reference, no
    annotation yet) is the pool's: it is patched, and keys gateways added stay."""
    emulator.objects["v1/configmaps", NS, "llama-shed"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "llama-shed",
            "namespace": NS,
            "labels": {"app.kubernetes.io/managed-by": "fleetscale"},
            "ownerReferences": [
                {
                    "apiVersion": "fleetscale.io/v1alpha1",
                    "kind": "InferencePool",
                    "name": "llama",
                    "uid": "uid-llama",
                    "controller": True,
                }
            ],
        },
        "data": {"routes": "a,b", "active": "false"},
    }
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    await publisher.publish(POOL, "llama-shed", ShedFlag(True, "MaxNodes", SINCE, 60))
    stored = emulator.objects["v1/configmaps", NS, "llama-shed"]
    assert stored["data"]["routes"] == "a,b"
    assert stored["data"]["active"] == "true"
    assert [o["uid"] for o in stored["metadata"]["ownerReferences"]] == ["uid-llama"]


async def test_publish_errors_are_actuator_errors(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    emulator[kmock.method.POST, kmock.resource("v1/configmaps")] << kmock.KubernetesError(
        status=403, reason="Forbidden", message="configmaps is forbidden"
    )
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    with pytest.raises(ActuatorError, match=f"ConfigMap {NS}/llama-shed: HTTP 403"):
        await publisher.publish(POOL, "llama-shed", ShedFlag(True, "MaxReplicas", SINCE, 30))


async def test_an_owner_without_namespace_or_uid_is_refused(api_client: ApiClient) -> None:
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    with pytest.raises(ValueError, match="not namespaced"):
        await publisher.publish(APOOL, "x", ShedFlag(False, "NotLimited", None, None))
    no_uid = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "llama", None)
    with pytest.raises(ValueError, match="no uid"):
        await publisher.publish(no_uid, "x", ShedFlag(False, "NotLimited", None, None))


# ----- Secrets -----


def secret(name: str, **data: str) -> dict[str, object]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": encoded,
    }


async def test_reads_a_secret_key(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    emulator.objects["v1/secrets", NS, "prom"] = secret("prom", token="abc\n", **{"ca.crt": "PEM"})
    reader = KubernetesSecretReader(api_client, retry=FAST_RETRY)
    assert await reader.read_key(NS, "prom", "token") == "abc\n"
    assert await reader.read_key(NS, "prom", "ca.crt") == "PEM"


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        pytest.param("nope", "token", f"Secret {NS}/nope not found", id="missing-secret"),
        pytest.param(
            "prom",
            "tokn",
            f"Secret {NS}/prom has no key 'tokn' (its keys: ca.crt, token)",
            id="typo",
        ),
    ],
)
async def test_missing_secrets_and_keys_are_named(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, name: str, key: str, message: str
) -> None:
    emulator.objects["v1/secrets", NS, "prom"] = secret("prom", token="abc", **{"ca.crt": "PEM"})
    reader = KubernetesSecretReader(api_client, retry=FAST_RETRY)
    with pytest.raises(SecretNotFound) as caught:
        await reader.read_key(NS, name, key)
    assert str(caught.value) == message


async def test_forbidden_secret_is_an_actuator_error(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    emulator[kmock.method.GET, kmock.resource("v1/secrets")] << kmock.KubernetesError(
        status=403, reason="Forbidden", message='secrets "prom" is forbidden'
    )
    reader = KubernetesSecretReader(api_client, retry=FAST_RETRY)
    with pytest.raises(ActuatorError, match="HTTP 403"):
        await reader.read_key(NS, "prom", "token")
