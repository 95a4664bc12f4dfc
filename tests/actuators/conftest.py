"""Fixtures for the Kubernetes adapters: kmock's emulator and an official client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import kmock
import pytest
from kubernetes.client import ApiClient

from support.kube_emulator import api_client_for, declare


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


@pytest.fixture
def api_client(emulator: kmock.KubernetesEmulator) -> Iterator[ApiClient]:
    client = api_client_for(emulator)
    yield client
    client.close()
