"""Fixtures of the integration suite; the harness itself is in ``harness``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import kmock
import pytest

from integration.harness import Cluster
from support.kube_emulator import serve_namespaces
from support.prometheus_server import PrometheusServer


@pytest.fixture
async def cluster(
    kmock: kmock.KubernetesEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cluster]:
    serve_namespaces(monkeypatch)
    emulated = Cluster(kmock)
    controller = asyncio.create_task(emulated.run_deployment_controller())
    yield emulated
    controller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await controller


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusServer]:
    async with PrometheusServer() as server:
        yield server
