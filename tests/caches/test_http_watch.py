"""The caches' HTTP client over real sockets: a killed TCP connection, pages, 410, credentials.

``KubeWatchClient`` talks to ``WatchServer`` (the API server's list and watch on the wire over
the caches' in-memory fake) as it talks to kube-apiserver, through a reflector as the operator
runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes.client import Configuration

from fleetscale.caches import CacheStale, CacheTiming, Collection, Reflector
from fleetscale.caches.base import WatchFailed
from fleetscale.caches.http import KubeWatchClient
from support.watch_server import TOKEN, WatchServer

PATH = "/apis/apps/v1/namespaces/serving/deployments"
TIMING = CacheTiming(
    watch_timeout_seconds=60,
    cut_margin_seconds=10,
    stale_after_seconds=90,
    first_retry_seconds=1,
    max_retry_seconds=4,
    page_size=2,
)


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "serving"}, "spec": {"replicas": replicas}}


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def configuration(url: str, token: str = TOKEN) -> Configuration:
    config = Configuration(host=url)
    config.api_key = {"authorization": f"Bearer {token}"}
    return config


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[WatchServer, Reflector[int], KubeWatchClient]]:
    server = WatchServer()
    for index in range(5):  # three pages of two
        server.fake.put(PATH, deployment(f"vllm-{index}", index + 1))
    await server.start()
    client = KubeWatchClient(configuration(server.url), user_agent="fleetscale/test (replica-a)")
    cache: Reflector[int] = Reflector(
        client,
        Collection(PATH),
        lambda obj: int(obj["spec"]["replicas"]),
        timing=TIMING,
        monotonic=loop_time,
    )
    cache.start()
    try:
        yield server, cache, client
    finally:
        await cache.stop()
        await client.close()
        await server.stop()


async def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.looptime(noop_cycles=100)
async def test_a_killed_watch_connection_holds_the_cache_past_its_bound_then_it_recovers() -> None:
    async with serving() as (server, cache, _):
        assert await cache.wait_synced(5)
        await wait_for(lambda: server.fake.open_watches == 1)
        assert cache.get(("serving", "vllm-0")) == 1
        server.refusing = True  # the API server cannot serve a list or a watch
        assert server.kill_watches() == 1  # and the watch's connection is cut (RST)
        await asyncio.sleep(TIMING.stale_after_seconds - 5)
        assert cache.get(("serving", "vllm-0")) == 1  # within its bound
        await asyncio.sleep(10)
        with pytest.raises(CacheStale, match="no list, event or bookmark") as stale:
            cache.get(("serving", "vllm-0"))
        assert "HTTP 503" in stale.value.detail
        server.fake.put(PATH, deployment("vllm-0", 7))  # changed while nothing could be read
        server.refusing = False
        await wait_for(cache.fresh, TIMING.max_retry_seconds + 2)
        assert cache.get(("serving", "vllm-0")) == 7


@pytest.mark.looptime(noop_cycles=100)
async def test_lists_every_page_and_follows_the_stream_with_the_operators_identity() -> None:
    async with serving() as (server, cache, _):
        assert await cache.wait_synced(5)
        assert len(cache) == 5
        await wait_for(lambda: server.fake.open_watches == 1)
        server.fake.put(PATH, deployment("vllm-9", 9))
        server.fake.delete(PATH, "serving", "vllm-1")
        await wait_for(lambda: len(cache) == 5 and cache.get(("serving", "vllm-9")) == 9)
        assert cache.get(("serving", "vllm-1")) is None
        assert set(server.user_agents) == {"fleetscale/test (replica-a)"}


@pytest.mark.looptime(noop_cycles=100)
async def test_a_410_in_the_stream_lists_again() -> None:
    async with serving() as (server, cache, _):
        await wait_for(lambda: server.fake.open_watches == 1)
        lists = cache.lists
        server.fake.compact()
        server.fake.end_watches()  # the next watch asks for a version now compacted away
        await wait_for(lambda: cache.lists == lists + 1)
        assert cache.fresh()


@pytest.mark.parametrize(
    ("token", "match"),
    [
        pytest.param("wrong", "HTTP 401: Unauthorized", id="bad-token"),
        pytest.param(TOKEN, None, id="good-token"),
    ],
)
@pytest.mark.looptime(noop_cycles=100)
async def test_requests_carry_the_configurations_token(token: str, match: str | None) -> None:
    server = WatchServer()
    await server.start()
    client = KubeWatchClient(configuration(server.url, token))
    try:
        if match is None:
            assert (await client.list(Collection(PATH), 10)).items == []
        else:
            with pytest.raises(WatchFailed, match=match):
                await client.list(Collection(PATH), 10)
    finally:
        await client.close()
        await server.stop()
