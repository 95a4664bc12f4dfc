"""Fixtures for the Kubernetes adapters: kmock's emulator with the core resources declared."""

from __future__ import annotations

import kmock
import pytest

from support.kube_emulator import declare


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """kmock's pytest fixture (an emulator serving on 127.0.0.1) with core resources declared."""
    declare(kmock, "apps/v1/deployments", "Deployment", subresources=["scale", "status"])
    declare(kmock, "apps/v1/statefulsets", "StatefulSet", subresources=["scale", "status"])
    declare(kmock, "v1/pods", "Pod", subresources=["status"])
    declare(kmock, "v1/configmaps", "ConfigMap")
    declare(kmock, "v1/secrets", "Secret")
    declare(kmock, "v1/events", "Event")
    return kmock
