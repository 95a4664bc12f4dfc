"""The HAProxy agent: the ConfigMap's decision as HAProxy map entries, set through the
Runtime API (a recording stand-in for HAProxy's stats socket here; the e2e suite runs the real
HAProxy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes.client
import pytest

from fleetscale.gateways.base import GatewayError
from fleetscale.gateways.haproxy import (
    HAProxyShedAgent,
    RuntimeApiError,
    cli_word,
    map_values,
)
from support.kube_emulator import declare

NS = "serving"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(None, {"fraction": "0", "retry_after": "1"}, id="configmap-gone"),
        pytest.param(
            {"active": "false", "fraction": "0.40", "retryAfterSeconds": "9"},
            {"fraction": "0", "retry_after": "1"},
            id="flag-off-refuses-nothing",
        ),
        pytest.param(
            {"active": "true", "fraction": "0.35", "retryAfterSeconds": "7"},
            {"fraction": "350", "retry_after": "7"},
            id="on-in-per-mille",
        ),
        pytest.param(
            {"active": "true", "retryAfterSeconds": "7"},
            {"fraction": "1000", "retry_after": "7"},
            id="no-fraction-key-refuses-all",
        ),
        pytest.param(
            {"active": "true", "fraction": "nan", "retryAfterSeconds": "x"},
            {"fraction": "1000", "retry_after": "1"},
            id="unreadable-values",
        ),
        pytest.param(
            {"active": "true", "fraction": "7", "retryAfterSeconds": "0"},
            {"fraction": "1000", "retry_after": "1"},
            id="clamped",
        ),
    ],
)
def test_map_values(data: dict[str, str] | None, expected: dict[str, str]) -> None:
    assert map_values(data) == expected


@pytest.mark.parametrize(
    ("text", "word"),
    [
        pytest.param("busy", "busy", id="plain"),
        pytest.param("is busy", "is\\ busy", id="space"),
        pytest.param("a\\b", "a\\\\b", id="backslash"),
        pytest.param("x; show map\ny", "x\\ \\ show\\ map\\ y", id="no-second-command"),
    ],
)
def test_cli_word_cannot_split_or_chain_commands(text: str, word: str) -> None:
    assert cli_word(text) == word


class RuntimeApi:
    """A stand-in for HAProxy's stats socket: records commands, answers like HAProxy."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.commands: list[str] = []
        self.maps: dict[str, dict[str, str]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().rstrip("\n")
        self.commands.append(line)
        verb, _, path, key, value = line.split(" ", 4)
        entries = self.maps.setdefault(path, {})
        if verb == "set" and key not in entries:
            writer.write(b"entry not found.\n")
        else:
            entries[key] = value
        await writer.drain()
        writer.close()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[RuntimeApi]:
    api = RuntimeApi(tmp_path / "admin.sock")
    server = await asyncio.start_unix_server(api.handle, api.path)
    async with server:
        yield api


def config_map(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "llama-shed"},
        "data": data,
    }


async def test_the_agent_sets_the_maps_when_the_decision_changes_only(
    kmock: kmock.KubernetesEmulator, api_client: kubernetes.client.ApiClient, runtime: RuntimeApi
) -> None:
    declare(kmock, "v1/configmaps", "ConfigMap")
    kmock.objects["v1/configmaps", NS, "llama-shed"] = config_map(
        active="true", fraction="0.40", retryAfterSeconds="3", message="llama is busy"
    )
    agent = HAProxyShedAgent.build(
        api_client,
        namespace=NS,
        config_map="llama-shed",
        socket_path=runtime.path,
        map_path="/etc/haproxy/shed.map",
        text_map_path="/etc/haproxy/shed-text.map",
    )
    await agent.step()
    assert runtime.maps == {
        "/etc/haproxy/shed.map": {"fraction": "400", "retry_after": "3"},
        "/etc/haproxy/shed-text.map": {"message": "llama\\ is\\ busy"},
    }
    sent = len(runtime.commands)
    await agent.step()
    assert len(runtime.commands) == sent  # nothing changed: nothing sent

    kmock.objects["v1/configmaps", NS, "llama-shed"] = config_map(active="false", reason="x")
    await agent.step()
    assert runtime.maps["/etc/haproxy/shed.map"] == {"fraction": "0", "retry_after": "1"}


async def test_an_unreachable_haproxy_is_an_error_and_everything_is_set_again(
    kmock: kmock.KubernetesEmulator, api_client: kubernetes.client.ApiClient, tmp_path: Path
) -> None:
    declare(kmock, "v1/configmaps", "ConfigMap")
    agent = HAProxyShedAgent.build(
        api_client,
        namespace=NS,
        config_map="llama-shed",
        socket_path=str(tmp_path / "nothing.sock"),
        map_path="/m",
    )
    with pytest.raises(RuntimeApiError, match="cannot talk to HAProxy"):
        await agent.step()


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        pytest.param("../kube-system", "x", id="namespace"),
        pytest.param(NS, "../secrets/token", id="config-map"),
    ],
)
def test_names_that_could_leave_the_namespace_are_refused(
    api_client: kubernetes.client.ApiClient, namespace: str, name: str
) -> None:
    with pytest.raises(GatewayError, match="DNS-1123"):
        HAProxyShedAgent.build(
            api_client, namespace=namespace, config_map=name, socket_path="s", map_path="m"
        )
