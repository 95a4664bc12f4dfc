"""Helpers for the provider tests (their `api_client` fixture is in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import kmock

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec


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
