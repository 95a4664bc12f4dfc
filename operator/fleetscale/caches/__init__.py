"""Watch-fed caches of Kubernetes objects: list once, then follow a watch.

Role: keep an in-memory view of one kind of object current from the API server the way
client-go's reflector does, so that a tick reads memory instead of sending a GET. ``base``
holds the port (``WatchClient``: list and watch a collection) and the values that cross it,
``reflector`` the loop (list with a resourceVersion, watch from it with bookmarks, list again
on 410 Gone or any broken or silent stream) and the freshness rule (no list, event or bookmark
within a bound: stale), ``http`` the port over aiohttp with the operator's credentials, ``fake``
an in-memory API server that tests break at will. Callers: ``controller.caches`` (targets and
GPU nodes), tests.
"""

from fleetscale.caches.base import CacheStale, CacheTiming, Collection, WatchClient
from fleetscale.caches.reflector import Reflector

__all__ = ["CacheStale", "CacheTiming", "Collection", "Reflector", "WatchClient"]
