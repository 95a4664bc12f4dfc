"""A reflector against an in-memory API server that breaks: killed connections, silence, 410.

The reflector runs as in the operator (a background task) over ``FakeApiServer``; looptime
makes its minutes of watching take milliseconds. What must hold: a cache that lost its watch
answers from memory only within its bound, then refuses (``CacheStale``) until a list comes
through again, and then holds what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fleetscale.caches import CacheStale, CacheTiming, Collection, Reflector
from fleetscale.caches.fake import FakeApiServer

PATH = "/apis/apps/v1/deployments"
COLLECTION = Collection(PATH)
TIMING = CacheTiming(
    watch_timeout_seconds=60, cut_margin_seconds=10, stale_after_seconds=90, max_retry_seconds=4
)


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "serving"}, "spec": {"replicas": replicas}}


def loop_time() -> float:
    """The running loop's clock (looptime's fake one in these tests)."""
    return asyncio.get_running_loop().time()


def replicas_of(obj: Any) -> int | None:
    return int(obj["spec"]["replicas"])


@pytest.fixture
def server() -> FakeApiServer:
    server = FakeApiServer()
    server.put(PATH, deployment("vllm", 2))
    return server


@contextlib.asynccontextmanager
async def running(server: FakeApiServer) -> AsyncIterator[Reflector[int]]:
    """A reflector started in the test's own (fake-time) loop, listed once."""
    cache: Reflector[int] = Reflector(
        server, COLLECTION, replicas_of, timing=TIMING, monotonic=loop_time
    )
    cache.start()
    try:
        assert await cache.wait_synced(5)
        yield cache
    finally:
        await cache.stop()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def wait_for(check: Callable[[], bool], seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.looptime
async def test_a_killed_watch_that_cannot_reconnect_holds_after_the_bound_then_recovers(
    server: FakeApiServer,
) -> None:
    async with running(server) as reflector:
        assert reflector.get(("serving", "vllm")) == 2
        server.refuse_next = 10**6  # the API server cannot be reached from here on
        assert server.break_watches() == 1  # and the open stream dies
        await asyncio.sleep(TIMING.stale_after_seconds - 5)
        assert reflector.get(("serving", "vllm")) == 2  # within the bound: still vouched for
        await asyncio.sleep(10)
        with pytest.raises(CacheStale, match="no list, event or bookmark for more than 90 s"):
            reflector.get(("serving", "vllm"))
        server.put(PATH, deployment("vllm", 5))  # changed while the operator could not see it
        server.refuse_next = 0
        await wait_for(reflector.fresh, TIMING.max_retry_seconds + 1)
        assert reflector.get(("serving", "vllm")) == 5


@pytest.mark.looptime
async def test_a_killed_watch_that_reconnects_lists_again_and_never_goes_stale(
    server: FakeApiServer,
) -> None:
    async with running(server) as reflector:
        lists = server.lists
        server.break_watches()
        server.put(PATH, deployment("vllm", 3))
        await wait_for(lambda: server.lists > lists and server.open_watches == 1, 5)
        assert reflector.get(("serving", "vllm")) == 3


@pytest.mark.looptime
async def test_a_silent_watch_is_cut_and_listed_again_before_the_bound(
    server: FakeApiServer,
) -> None:
    async with running(server) as reflector:
        lists = server.lists
        server.silent = True  # the connection stays open, nothing comes, not even bookmarks
        await asyncio.sleep(TIMING.watch_timeout_seconds + TIMING.cut_margin_seconds + 1)
        assert server.lists == lists + 1  # cut at the cut margin, listed again
        server.silent = False
        await asyncio.sleep(TIMING.stale_after_seconds - 10)
        assert reflector.fresh()


@pytest.mark.looptime
async def test_a_watch_stream_that_stays_silent_goes_stale_at_the_bound(
    server: FakeApiServer,
) -> None:
    async with running(server) as reflector:
        server.silent = True
        server.refuse_next = 10**6  # lists fail too: nothing vouches for the cache any more
        await asyncio.sleep(TIMING.stale_after_seconds + 1)
        assert not reflector.fresh()
        with pytest.raises(CacheStale):
            reflector.get(("serving", "vllm"))


@pytest.mark.looptime
async def test_bookmarks_keep_a_quiet_cache_fresh_without_listing(server: FakeApiServer) -> None:
    async with running(server) as reflector:
        lists = server.lists
        for _ in range(10):  # ten minutes with no change, a bookmark a minute
            await asyncio.sleep(TIMING.watch_timeout_seconds - 2)
            server.bookmark(PATH)
            await settle()
            server.end_watches()  # the API server ends each watch at its timeout
            await asyncio.sleep(2)
            assert reflector.fresh()
        assert server.lists == lists  # each watch resumed from the last version


@pytest.mark.looptime
async def test_a_resumed_watch_misses_nothing_and_410_lists_again(server: FakeApiServer) -> None:
    async with running(server) as reflector:
        server.end_watches()
        server.put(PATH, deployment("vllm", 4))
        server.put(PATH, deployment("other", 1))
        await wait_for(lambda: len(reflector) == 2, 5)
        assert reflector.get(("serving", "vllm")) == 4
        lists = server.lists
        server.compact()
        server.end_watches()
        server.delete(PATH, "serving", "other")
        await wait_for(lambda: server.lists == lists + 1, 5)
        assert reflector.get(("serving", "other")) is None
        assert reflector.get(("serving", "vllm")) == 4


@pytest.mark.looptime
async def test_a_cache_never_listed_is_stale_and_says_why() -> None:
    server = FakeApiServer(refuse_next=10**6)
    cache: Reflector[int] = Reflector(
        server, COLLECTION, replicas_of, timing=TIMING, monotonic=loop_time
    )
    cache.start()
    try:
        assert not await cache.wait_synced(3)
        with pytest.raises(CacheStale, match="has not listed it yet") as stale:
            cache.get(("serving", "vllm"))
        assert "ConnectionRefusedError" in stale.value.detail
    finally:
        await cache.stop()


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([("put", "a", 1)], {"a": 1}, id="added"),
        pytest.param([("put", "a", 1), ("put", "a", 3)], {"a": 3}, id="modified"),
        pytest.param([("put", "a", 1), ("delete", "a", 0)], {}, id="deleted"),
        pytest.param([("put", "a", 0)], {}, id="transformed-away"),
    ],
)
@pytest.mark.looptime
async def test_events_update_the_view(
    events: list[tuple[str, str, int]], expected: dict[str, int]
) -> None:
    server = FakeApiServer()

    def nonzero(obj: Any) -> int | None:  # a transform may drop what its readers never need
        return replicas_of(obj) or None

    cache: Reflector[int] = Reflector(
        server, COLLECTION, nonzero, timing=TIMING, monotonic=loop_time
    )
    cache.start()
    try:
        assert await cache.wait_synced(1)
        for verb, name, replicas in events:
            if verb == "put":
                server.put(PATH, deployment(name, replicas))
            else:
                server.delete(PATH, "serving", name)
        await settle()
        assert sorted(cache.values()) == sorted(expected.values())
        assert {name: cache.get(("serving", name)) for name in expected} == expected
    finally:
        await cache.stop()


def by_size(obj: Any) -> tuple[str, int]:
    return (str(obj["metadata"]["name"]), replicas_of(obj) or 0)


def size_class(view: tuple[str, int]) -> list[str]:
    """An indexer: a view is found under its size class (none for size 0)."""
    return [] if view[1] == 0 else ["small" if view[1] < 3 else "large"]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([("put", "a", 1)], {"small": ["a", "vllm"]}, id="added"),
        pytest.param([("put", "vllm", 5)], {"large": ["vllm"]}, id="moved-to-another-value"),
        pytest.param([("put", "vllm", 0)], {}, id="left-every-value"),
        pytest.param([("delete", "vllm", 0)], {}, id="deleted"),
        pytest.param([("put", "a", 4), ("relist", "", 0)], {"small": ["vllm"]}, id="relisted"),
    ],
)
@pytest.mark.looptime
async def test_the_index_follows_events_and_lists(
    server: FakeApiServer, events: list[tuple[str, str, int]], expected: dict[str, list[str]]
) -> None:
    cache: Reflector[tuple[str, int]] = Reflector(
        server,
        COLLECTION,
        by_size,
        timing=TIMING,
        monotonic=loop_time,
        indexers={"size": size_class},
    )
    cache.start()
    try:
        assert await cache.wait_synced(1)
        for verb, name, replicas in events:
            if verb == "put":
                server.put(PATH, deployment(name, replicas))
            elif verb == "delete":
                server.delete(PATH, "serving", name)
            else:  # gone unseen by the watch, which then gets 410 Gone: listed again
                del server.objects[PATH][("serving", "a")]
                server.compact()
                server.end_watches()
                lists = server.lists
                await wait_for(lambda: server.lists > lists, 5)  # noqa: B023
        await settle()
        found = {
            size: sorted(view[0] for view in cache.by_index("size", size))
            for size in ("small", "large")
        }
        assert {size: names for size, names in found.items() if names} == expected
    finally:
        await cache.stop()


@pytest.mark.looptime
async def test_the_index_refuses_to_answer_while_the_cache_is_stale() -> None:
    server = FakeApiServer(refuse_next=10**6)
    cache: Reflector[tuple[str, int]] = Reflector(
        server,
        COLLECTION,
        by_size,
        timing=TIMING,
        monotonic=loop_time,
        indexers={"size": size_class},
    )
    cache.start()
    try:
        assert not await cache.wait_synced(3)
        with pytest.raises(CacheStale, match="has not listed it yet"):
            cache.by_index("size", "small")
    finally:
        await cache.stop()
