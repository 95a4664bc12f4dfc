"""The port of the caches (``WatchClient``) and the values that cross it.

Role: what a reflector needs from the API server, as plain data: a ``Listing`` of a
collection with the resourceVersion it is current at, and the ``WatchEvent`` stream from a
resourceVersion on (ADDED, MODIFIED, DELETED, BOOKMARK). ``Gone`` is the API server's 410
(the resourceVersion is too old: list again); ``CacheStale`` is what a reader of a cache gets
when the cache cannot vouch for its contents. Implementations: ``http.KubeWatchClient``,
``fake.FakeApiServer``. Callers: ``reflector``, ``controller.caches``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Json = Mapping[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class Collection:
    """A collection to list and watch: ``/apis/apps/v1/deployments`` (every namespace) or
    ``/apis/apps/v1/namespaces/serving/deployments``, optionally narrowed by labels."""

    path: str
    label_selector: str | None = None

    def __str__(self) -> str:
        return self.path + (f"?labelSelector={self.label_selector}" if self.label_selector else "")


@dataclass(frozen=True)
class Listing:
    """Every object of a collection, current at ``resource_version``."""

    items: Sequence[Json]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream (ERROR events are raised, never yielded)."""

    type: EventType
    object: Json

    @property
    def resource_version(self) -> str | None:
        version = (self.object.get("metadata") or {}).get("resourceVersion")
        return None if version is None else str(version)


class Gone(Exception):  # noqa: N818  (the API server's own word for it: 410 Gone)
    """The resourceVersion asked for is no longer in the API server's history: list again."""


class WatchFailed(Exception):  # noqa: N818  (reads as what happened)
    """The API server refused the list or watch (403, 404, 5xx, an ERROR event)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CacheStale(Exception):  # noqa: N818  (reads as the reason a tick holds)
    """A cache was asked for an object while it cannot vouch for what it holds: not listed
    yet, or no list, event or bookmark within its bound. The message stays the same while
    the cause does (conditions carry it); ``detail`` says how long, and the last error."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class CacheTiming:
    """How a cache follows its watch, and when it stops vouching for its contents.

    Each watch asks the API server to end it after ``watch_timeout_seconds``; the API server
    sends a bookmark about every minute and just before that end. A stream that stays silent
    ``watch_timeout_seconds + cut_margin_seconds`` is cut and the collection listed again; a
    cache that has had no list, event or bookmark for ``stale_after_seconds`` is stale (its
    readers hold) until a list or an event comes through again. The bound spans two of the
    API server's bookmarks: an operator whose own event loop runs late (thousands of pools
    starting at once) must not take its lateness for a stalled watch, and hold every pool.
    """

    watch_timeout_seconds: float = 60.0
    cut_margin_seconds: float = 30.0
    stale_after_seconds: float = 150.0
    first_retry_seconds: float = 0.5
    max_retry_seconds: float = 10.0
    page_size: int = 500

    def __post_init__(self) -> None:
        if not self.stale_after_seconds > self.watch_timeout_seconds + self.cut_margin_seconds:
            raise ValueError(
                "a cache must cut a silent watch (watch timeout + cut margin) before it goes "
                f"stale, got {self.watch_timeout_seconds:g} + {self.cut_margin_seconds:g} >= "
                f"{self.stale_after_seconds:g}"
            )

    def retry_seconds(self, failures: int) -> float:
        """Delay after the given number of failures in a row (1-based): doubling, capped."""
        return min(self.first_retry_seconds * 2.0 ** max(failures - 1, 0), self.max_retry_seconds)


class WatchClient(Protocol):
    """Lists and watches collections of the API server."""

    async def list(self, collection: Collection, page_size: int) -> Listing:
        """Every object, page by page. Raises WatchFailed, or a network error."""
        ...

    def watch(
        self, collection: Collection, resource_version: str, timeout_seconds: float
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version``, bookmarks asked for, until the API server ends
        the stream (about ``timeout_seconds``). Raises Gone (410, as a status or an ERROR
        event), WatchFailed, or a network error when the connection breaks."""
        ...

    async def close(self) -> None:
        """Release the connections."""
        ...
