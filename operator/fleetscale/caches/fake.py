"""An in-memory API server for the caches, that tests break at will.

Role: ``FakeApiServer`` implements ``WatchClient`` over collections held in memory, with the
API server's semantics that a reflector depends on (every write a new resourceVersion, a
watch resumes after the version it is given, a version older than the compacted history is
410 Gone, bookmarks on demand) and the faults it must survive: requests refused, open
streams broken, streams that go silent, history compacted. Callers: tests.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fleetscale.caches.base import Collection, EventType, Gone, Json, Listing, WatchEvent


@dataclass
class _Watcher:
    collection: str
    queue: asyncio.Queue[WatchEvent | BaseException | None] = field(default_factory=asyncio.Queue)


@dataclass
class FakeApiServer:
    """``WatchClient`` in memory; see the module docstring."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    history: list[tuple[str, WatchEvent]] = field(default_factory=list)
    refuse_next: int = 0  # the next this many lists or watches raise ConnectionError
    silent: bool = False  # open and new watches send nothing at all
    lists: int = 0
    watches: int = 0
    _compacted_below: int = 0
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _version: int = 0
    _watchers: list[_Watcher] = field(default_factory=list)

    # ----------------------------------------------------------------- the API
    async def list(self, collection: Collection, page_size: int) -> Listing:
        self.lists += 1
        self._maybe_refuse()
        items = [copy.deepcopy(o) for o in self.objects.get(collection.path, {}).values()]
        return Listing(items, str(self._version))

    async def watch(
        self, collection: Collection, resource_version: str, timeout_seconds: float
    ) -> AsyncIterator[WatchEvent]:
        self.watches += 1
        self._maybe_refuse()
        since = int(resource_version or 0)
        if since < self._compacted_below:
            raise Gone(f"too old resource version: {since} ({self._compacted_below})")
        watcher = _Watcher(collection.path)
        for path, event in self.history:
            if path == collection.path and int(event.resource_version or 0) > since:
                watcher.queue.put_nowait(event)
        self._watchers.append(watcher)
        try:
            while True:
                if self.silent:
                    await asyncio.Event().wait()  # a stream that stays open and says nothing
                item = await watcher.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._watchers.remove(watcher)

    async def close(self) -> None:
        return None

    # ----------------------------------------------------------------- changes
    def put(self, collection: str, obj: Json) -> dict[str, Any]:
        """Create or replace an object; its watchers get ADDED or MODIFIED."""
        stored = copy.deepcopy(dict(obj))
        metadata = stored.setdefault("metadata", {})
        key = (str(metadata.get("namespace") or ""), str(metadata["name"]))
        existed = key in self.objects.get(collection, {})
        metadata["resourceVersion"] = self._next_version()
        self.objects.setdefault(collection, {})[key] = stored
        self._emit(collection, "MODIFIED" if existed else "ADDED", stored)
        return stored

    def delete(self, collection: str, namespace: str, name: str) -> None:
        stored = self.objects.get(collection, {}).pop((namespace, name))
        stored["metadata"]["resourceVersion"] = self._next_version()
        self._emit(collection, "DELETED", stored)

    def bookmark(self, collection: str) -> None:
        """Every watcher of the collection hears that it is current at this version."""
        self._emit(collection, "BOOKMARK", {"metadata": {"resourceVersion": str(self._version)}})

    # ----------------------------------------------------------------- faults
    def break_watches(self) -> int:
        """Every open stream fails as a reset connection does; how many there were."""
        for watcher in self._watchers:
            watcher.queue.put_nowait(ConnectionResetError("connection reset by peer"))
        return len(self._watchers)

    def end_watches(self) -> None:
        """Every open stream ends cleanly, as at the API server's timeout."""
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)

    def compact(self) -> None:
        """The history moves on and is forgotten: a watch from any version seen so far gets
        410 Gone; a list (at the new current version) is good to watch from again."""
        self._next_version()
        self._compacted_below = self._version
        self.history.clear()

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    # ----------------------------------------------------------------- inside
    def _maybe_refuse(self) -> None:
        if self.refuse_next > 0:
            self.refuse_next -= 1
            raise ConnectionRefusedError("the API server cannot be reached")

    def _next_version(self) -> str:
        self._version = next(self._versions)
        return str(self._version)

    def _emit(self, collection: str, type_: EventType, obj: Json) -> None:
        event = WatchEvent(type_, copy.deepcopy(dict(obj)))
        if type_ != "BOOKMARK":
            self.history.append((collection, event))
        for watcher in self._watchers:
            if watcher.collection == collection:
                watcher.queue.put_nowait(event)
