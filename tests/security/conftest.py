"""Fixtures of the hostile-tenant tests: kmock's emulator with the core resources declared."""

from __future__ import annotations

import kmock
import pytest

from support.kube_emulator import declare


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """kmock's emulator serving Deployments (with /scale), ConfigMaps, Secrets and Events."""
    declare(kmock, "apps/v1/deployments", "Deployment", subresources=["scale", "status"])
    declare(kmock, "v1/pods", "Pod", subresources=["status"])
    declare(kmock, "v1/configmaps", "ConfigMap")
    declare(kmock, "v1/secrets", "Secret")
    declare(kmock, "v1/events", "Event")
    return kmock
