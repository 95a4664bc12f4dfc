"""An HTTP API server for list and watch, over the caches' in-memory fake, that can be cut.

Role: serve ``FakeApiServer``'s collections the way kube-apiserver serves them on the wire
(paged lists with ``limit``/``continue``, newline-delimited JSON watch streams, 410 as an ERROR
event, a bearer token required), so ``caches.http.KubeWatchClient`` is tested over real
sockets; and let a test kill the TCP connection of every open watch (``kill_watches``), or
refuse every request (``refusing``). Callers: tests/caches, tests/controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fleetscale.caches.base import Collection, Gone
from fleetscale.caches.fake import FakeApiServer

TOKEN = "test-token"


@dataclass
class WatchServer:
    """kube-apiserver's list and watch of ``FakeApiServer``'s collections, over HTTP."""

    fake: FakeApiServer = field(default_factory=FakeApiServer)
    refusing: bool = False  # answer every request 503, as an API server that is down
    user_agents: list[str] = field(default_factory=list)
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.kill_watches()
        self.fake.end_watches()  # the handlers of killed streams still wait on the store
        if self._runner is not None:
            await self._runner.cleanup()

    def kill_watches(self) -> int:
        """Abort the TCP connection of every open watch (an RST, no clean end); how many."""
        killed = 0
        for transport in self._transports:
            if not transport.is_closing():
                transport.abort()
                killed += 1
        self._transports.clear()
        return killed

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.user_agents.append(request.headers.get("User-Agent", ""))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if self.refusing:
            return web.json_response({"message": "the server is down"}, status=503)
        collection = Collection("/" + request.match_info["path"])
        if request.query.get("watch") == "true":
            return await self._watch(request, collection)
        listing = await self.fake.list(collection, 0)
        limit = int(request.query.get("limit", "0")) or len(listing.items) or 1
        start = int(request.query.get("continue", "0"))
        page = listing.items[start : start + limit]
        metadata: dict[str, Any] = {"resourceVersion": listing.resource_version}
        if start + limit < len(listing.items):
            metadata["continue"] = str(start + limit)
        return web.json_response({"kind": "List", "metadata": metadata, "items": page})

    async def _watch(self, request: web.Request, collection: Collection) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if request.transport is not None:
            self._transports.append(request.transport)
        stream = self.fake.watch(collection, request.query.get("resourceVersion", "0"), 60)
        try:
            async for event in stream:
                line = {"type": event.type, "object": dict(event.object)}
                await response.write(json.dumps(line).encode() + b"\n")
        except Gone as error:
            status = {"kind": "Status", "code": 410, "reason": "Expired", "message": str(error)}
            await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionResetError, ConnectionError):
            await response.write_eof()
        return response
