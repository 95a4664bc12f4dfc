"""Fixtures for the provider tests: the official client pointed at kmock's emulated API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kmock
import kubernetes.client
import pytest

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec


@pytest.fixture
def api_client(kmock: kmock.KubernetesEmulator) -> Iterator[kubernetes.client.ApiClient]:
    configuration = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    with kubernetes.client.ApiClient(configuration) as client:
        yield client


def pool_spec(provider: dict[str, Any], **overrides: Any) -> AcceleratorPoolSpec:
    wire: dict[str, Any] = {
        "provider": provider,
        "nodeLabels": {"example.com/gpu": "h100"},
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": 8},
    }
    wire.update(overrides)
    return AcceleratorPoolSpec.model_validate(wire)


def live(kmock: kmock.KubernetesEmulator, resource: str) -> dict[str, dict[str, Any]]:
    """The objects of one resource the emulator holds now (not deleted), by name."""
    found: dict[str, dict[str, Any]] = {}
    for key in list(kmock.objects):
        res, _namespace, name = key
        obj = kmock.objects[key]
        if not obj.deleted and str(res) == str(kmock.resource(resource)):
            found[name] = obj.raw
    return found
