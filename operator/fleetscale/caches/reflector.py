"""One collection, listed and then watched into memory, and whether it can be trusted now.

Role: ``Reflector`` keeps the objects of one collection (each reduced by a ``transform`` to
what its readers need) current the way client-go's reflector does: list, remember the list's
resourceVersion, watch from it with bookmarks; when the API server ends a stream, watch again
from the last resourceVersion seen; on 410 Gone, list again at once; on anything else (a
refused request, a broken connection, a stream silent past its timeout) list again after a
backoff. Every list, event and bookmark is progress; a reflector with no progress for
``CacheTiming.stale_after_seconds`` (or never listed) is stale, and ``get`` then raises
``CacheStale`` instead of answering from memory, so a reader holds rather than acts on what
may be old. Like client-go's indexer, a reflector can also keep its views by the values
``indexers`` derive from them (``by_index``: the pools that draw on an AcceleratorPool, the
controllers of a workload), rebuilt with each list and kept with each event. Time is the
injected monotonic clock. Callers: ``controller.caches``, tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from fleetscale.caches.base import (
    CacheStale,
    CacheTiming,
    Collection,
    Gone,
    Json,
    WatchClient,
    WatchEvent,
)
from fleetscale.logs import get_logger

T = TypeVar("T")
Key = tuple[str, str]  # (namespace or "", name)
# A view -> the values it is found under in one index (none: not in that index).
Indexer = Callable[[T], Iterable[Hashable]]


def key_of(obj: Json) -> Key:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


class SilentWatch(Exception):  # noqa: N818  (reads as what happened)
    """A watch stream sent nothing, not even a bookmark, past the time it should have ended."""


class Reflector(Generic[T]):
    """A watch-fed cache of one collection; see the module docstring."""

    def __init__(
        self,
        client: WatchClient,
        collection: Collection,
        transform: Callable[[Json], T | None],
        *,
        timing: CacheTiming | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        indexers: Mapping[str, Indexer[T]] | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.timing = timing or CacheTiming()
        self._transform = transform
        self._monotonic = monotonic
        self._items: dict[Key, T] = {}
        self._indexers = dict(indexers or {})
        # index name -> value -> the views found under it, by object
        self._indices: dict[str, dict[Hashable, dict[Key, T]]] = {n: {} for n in self._indexers}
        self._synced = asyncio.Event()
        self._progress_at: float | None = None
        self._last_error: str | None = None
        self._reported_stale = False
        self._task: asyncio.Task[None] | None = None
        self.lists = 0  # how many times the collection was listed (tests, logs)
        self._log = get_logger("fleetscale.cache", collection=str(collection))

    # ----------------------------------------------------------------- reading
    def fresh(self) -> bool:
        """Listed, and a list, event or bookmark came within the bound."""
        return (
            self._progress_at is not None
            and self._monotonic() - self._progress_at < self.timing.stale_after_seconds
        )

    def problem(self) -> str | None:
        """Why the cache cannot vouch for its contents now, in words that stay the same while
        the cause does (a condition's message); None while it is fresh."""
        if self.fresh():
            return None
        if self._progress_at is None:
            return f"the watch of {self.collection} has not listed it yet"
        return (
            f"the watch of {self.collection} has had no list, event or bookmark for more than "
            f"{self.timing.stale_after_seconds:g} s"
        )

    def detail(self) -> str:
        """The problem with how long it has lasted and the last error (for logs)."""
        silent = (
            "never listed"
            if self._progress_at is None
            else f"{self._monotonic() - self._progress_at:.0f} s since the last list, event or "
            "bookmark"
        )
        return f"{silent}; last error: {self._last_error or 'none'}"

    def _check(self) -> None:
        problem = self.problem()
        if problem is not None:
            if not self._reported_stale:
                self._reported_stale = True
                self._log.warning("cache_stale", reason="CacheStale", detail=self.detail())
            raise CacheStale(problem, self.detail())

    def get(self, key: Key) -> T | None:
        """The object's view, None when the collection has no such object. Raises
        CacheStale while the cache is stale."""
        self._check()
        return self._items.get(key)

    def values(self) -> list[T]:
        """Every object's view. Raises CacheStale while the cache is stale."""
        self._check()
        return list(self._items.values())

    def by_index(self, index: str, value: Hashable) -> list[T]:
        """The views found under ``value`` in the index ``index``. Raises CacheStale while the
        cache is stale."""
        self._check()
        return list(self._indices[index].get(value, {}).values())

    def __len__(self) -> int:
        return len(self._items)

    async def wait_synced(self, timeout_seconds: float) -> bool:
        """Wait until the first list is in, at most ``timeout_seconds``; whether it is."""
        if not self._synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._synced.wait(), timeout_seconds)
        return self._synced.is_set()

    # ----------------------------------------------------------------- running
    def start(self) -> None:
        """Run in the background until ``stop``."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"fleetscale-cache-{self.collection}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """List and watch until cancelled; never raises otherwise."""
        version: str | None = None
        failures = expired = 0
        while True:
            try:
                if version is None:
                    version = await self._relist()
                version = await self._follow(version)  # the API server ended the stream
                failures = expired = 0
            except asyncio.CancelledError:
                raise
            except Gone:
                # Once is routine (the history moved on); again right after a list is not.
                expired += 1
                self._log.debug("watch_expired", reason="Gone")
                version = None
                if expired > 1:
                    await asyncio.sleep(self.timing.retry_seconds(expired - 1))
                continue
            except Exception as error:  # refused, broken, silent: list again after a pause
                failures += 1
                version = None
                self._last_error = f"{type(error).__name__}: {error}"
                level = self._log.warning if failures == 1 else self._log.debug
                level("watch_failed", reason="WatchFailed", detail=self._last_error)
                await asyncio.sleep(self.timing.retry_seconds(failures))

    async def _relist(self) -> str:
        listing = await self.client.list(self.collection, self.timing.page_size)
        self.lists += 1
        items: dict[Key, T] = {}
        for obj in listing.items:
            view = self._transform(obj)
            if view is not None:
                items[key_of(obj)] = view
        indices: dict[str, dict[Hashable, dict[Key, T]]] = {n: {} for n in self._indexers}
        for key, view in items.items():
            self._index(indices, key, view)
        # Swapped whole: a reader sees the last complete list or this one, never a part of it.
        self._items, self._indices = items, indices
        self._synced.set()
        self._progressed()
        return listing.resource_version

    async def _follow(self, version: str) -> str:
        timing = self.timing
        cut_seconds = timing.watch_timeout_seconds + timing.cut_margin_seconds
        loop = asyncio.get_running_loop()
        stream = self.client.watch(self.collection, version, timing.watch_timeout_seconds)
        try:
            async with asyncio.timeout(cut_seconds) as deadline:
                async for event in stream:
                    deadline.reschedule(loop.time() + cut_seconds)
                    version = self._apply(event) or version
        except TimeoutError as error:
            raise SilentWatch(f"nothing from the watch for {cut_seconds:g} s") from error
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        return version

    def _apply(self, event: WatchEvent) -> str | None:
        if event.type in ("ADDED", "MODIFIED", "DELETED"):
            key = key_of(event.object)
            view = None if event.type == "DELETED" else self._transform(event.object)
            old = self._items.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            if view is not None:
                self._items[key] = view
                self._index(self._indices, key, view)
        self._progressed()
        return event.resource_version

    def _index(self, indices: dict[str, dict[Hashable, dict[Key, T]]], key: Key, view: T) -> None:
        for name, indexer in self._indexers.items():
            for value in indexer(view):
                indices[name].setdefault(value, {})[key] = view

    def _unindex(self, key: Key, view: T) -> None:
        for name, indexer in self._indexers.items():
            index = self._indices[name]
            for value in indexer(view):
                found = index.get(value)
                if found is not None:
                    found.pop(key, None)
                    if not found:
                        del index[value]

    def _progressed(self) -> None:
        self._progress_at = self._monotonic()
        self._last_error = None
        if self._reported_stale:
            self._reported_stale = False
            self._log.info("cache_fresh", reason="CacheFresh")
