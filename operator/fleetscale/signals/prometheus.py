"""Prometheus as a signal source: instant queries, read once per distinct query per tick.

Role: implement ``SignalSource`` on Prometheus's HTTP API (``GET /api/v1/query``). Callers: the
controller's reconcile, ``fleetscale explain``.

The URL and the query come from tenants' InferencePools, so the server may be hostile, and
every limit is enforced here, on the event loop, with aiohttp (#11):
- **a total deadline per query** (the endpoint's timeout) covers waiting for a connection,
  connecting, the headers and the whole body. When it passes, the request is cancelled and its
  connection closed: nothing keeps running in the background. (The previous transport,
  prometheus-api-client on requests in a thread pool, could only abandon a query: its socket
  timeouts apply per read, so a server dripping one byte at a time kept the thread, and all of
  them in the end, forever. It also read whole bodies and followed redirects, with no hook to
  stop either; that is why it was replaced rather than wrapped.)
- **per-URL concurrency**: each base URL has its own slots (16 queries at a time), so a slow
  or hostile server only queues its own queries, never another endpoint's;
- **no redirects**, no retries (the next tick is the retry), no decompression;
- **a body cap** (1 MiB; an instant query that aggregates to one series needs well under 1 KiB);
- **fixed, short failure reasons** (``HTTP 503``, ``HTTP 400 (bad_data)``, ``Timeout``,
  ``BodyTooLarge``, ``Redirect refused (HTTP 302)``, ``Connection failed``, ``TLS verification
  failed``, ``Unreadable answer``): these reach conditions and Events that tenants read, so they
  never quote the remote body; the only remote text kept is Prometheus's ``errorType`` when it
  is one of Prometheus's own values;
- **no label sets in messages**: several series are reported by their count only;
- the base URL is checked again (``signals.endpoints``) before any request.

Each base URL gets one aiohttp session; the bearer token goes in each request's header and the
CA bundle, when given, is the only trust anchor of that request's TLS context (kept in memory,
never written to disk: operator pods usually run with a read-only root filesystem).

Reads are single-flight per (query, tick): every pool that polls on the same tick shares one
HTTP call, also when their reads overlap in time. Results of the last few ticks are kept so a
pool that runs late in a tick still reuses the answer.

What a reading means: the value of the single series (or scalar) the query returned, with the
timestamp Prometheus reported. No data, several series, NaN/Inf and negative values become
``MetricProblem``s here; staleness is left to the planner, which owns the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint, Refusal
from fleetscale.signals.endpoints import normalize_base_url

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_QUERIES_PER_URL = 16
_READ_CHUNK_BYTES = 64 << 10
# An error answer is read only to find Prometheus's errorType; a few KiB hold it.
_ERROR_BODY_MAX_BYTES = 16 << 10
# Prometheus's own errorType values (web/api/v1): the only remote words a reading may carry.
_PROMETHEUS_ERROR_TYPES = frozenset(
    {"timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found"}
)
_TLS_CONTEXTS_PER_URL = 8

TIMEOUT = "Timeout"
BODY_TOO_LARGE = "BodyTooLarge"
UNREADABLE = "Unreadable answer"
CONNECTION_FAILED = "Connection failed"
TLS_FAILED = "TLS verification failed"
INVALID_CA = "the CA bundle is not valid PEM certificates"


class QueryError(Exception):
    """A query failed; ``reason`` is one of the fixed short texts above, never remote text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reading_from_result(result: Any) -> MetricReading:
    """Classify the ``data.result`` of an instant query into one reading.

    Pure: the shapes are Prometheus's (``[ts, "v"]`` for a scalar, a list of
    ``{"metric": ..., "value": [ts, "v"]}`` for an instant vector, ``"values"`` for a matrix).
    Details never quote the answer: the labels of other series are none of the pool's business.
    """
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _reading_from_sample(result, what="scalar")
    if not isinstance(result, list):
        return MetricReading.failed(MetricProblem.QUERY_FAILED, UNREADABLE)
    if not result:
        return MetricReading.failed(MetricProblem.NO_DATA, "the query returned no series")
    if not all(isinstance(series, dict) for series in result):
        return MetricReading.failed(MetricProblem.QUERY_FAILED, UNREADABLE)
    if any("value" not in series for series in result):
        if all("values" in series for series in result):
            return MetricReading.failed(
                MetricProblem.QUERY_FAILED,
                "the query returned a range vector; an instant vector or a scalar is needed",
            )
        return MetricReading.failed(MetricProblem.QUERY_FAILED, UNREADABLE)
    if len(result) > 1:
        return MetricReading.failed(
            MetricProblem.MULTIPLE_SERIES,
            f"the query returned {len(result)} series; "
            "aggregate it to one, e.g. with sum() or avg()",
        )
    return _reading_from_sample(result[0]["value"], what="sample")


def _reading_from_sample(sample: Sequence[Any], *, what: str) -> MetricReading:
    try:
        sampled_at = float(sample[0])
        value = float(sample[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return MetricReading.failed(MetricProblem.QUERY_FAILED, UNREADABLE)
    if not math.isfinite(sampled_at):
        return MetricReading.failed(MetricProblem.QUERY_FAILED, UNREADABLE)
    if math.isnan(value):
        return MetricReading.failed(MetricProblem.NOT_A_NUMBER, f"the {what} is NaN")
    if math.isinf(value):
        sign = "+" if value > 0 else "-"
        return MetricReading.failed(MetricProblem.NOT_A_NUMBER, f"the {what} is {sign}Inf")
    if value < 0:
        return MetricReading.failed(MetricProblem.NEGATIVE, f"the {what} is {value:g}, below zero")
    return MetricReading.ok(value, sampled_at)


def result_from_body(body: bytes) -> Any:
    """The ``data.result`` of a 200 answer; QueryError when it is not Prometheus's JSON."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise QueryError(UNREADABLE) from None
    if not isinstance(payload, dict):
        raise QueryError(UNREADABLE)
    if payload.get("status") != "success":
        raise QueryError(_with_error_type("Prometheus error", payload))
    data = payload.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise QueryError(UNREADABLE)
    return data["result"]


def error_reason(status: int, body: bytes) -> str:
    """``HTTP <status>``, with Prometheus's errorType when the body carries a known one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    return _with_error_type(f"HTTP {status}", payload)


def _with_error_type(reason: str, payload: Any) -> str:
    error_type = payload.get("errorType") if isinstance(payload, dict) else None
    if isinstance(error_type, str) and error_type in _PROMETHEUS_ERROR_TYPES:
        return f"{reason} ({error_type})"
    return reason


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, or QueryError(BodyTooLarge) as soon as it is known to exceed ``max_bytes``.

    A declared Content-Length over the cap is refused before reading; otherwise reading stops
    at the first chunk past it, so memory never holds more than the cap and one chunk.
    """
    if response.content_length is not None and response.content_length > max_bytes:
        raise QueryError(BODY_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise QueryError(BODY_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


class _Server:
    """Everything shared by the queries to one base URL: its slots, session and TLS contexts."""

    def __init__(self, base_url: str, slots: int) -> None:
        self.query_url = URL(f"{base_url}/api/v1/query")
        self.https = self.query_url.scheme == "https"
        self.slots = asyncio.Semaphore(slots)
        self.in_flight = 0
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=slots, limit_per_host=slots),
            # The caller's deadline bounds everything; aiohttp's own timeouts stay out of it.
            timeout=aiohttp.ClientTimeout(total=None),
            # A compressed body could inflate past the cap before it is counted.
            auto_decompress=False,
        )
        # CA bundle (None: the system's trust store) -> context; a few, least recently used out.
        self._tls: OrderedDict[str | None, ssl.SSLContext] = OrderedDict()

    def tls_context(self, ca_pem: str | None) -> ssl.SSLContext:
        context = self._tls.get(ca_pem)
        if context is None:
            try:
                # With cadata, only that CA is trusted: not the public bundle as well.
                context = ssl.create_default_context(cadata=ca_pem)
            except (ssl.SSLError, ValueError):
                raise QueryError(INVALID_CA) from None
            self._tls[ca_pem] = context
            while len(self._tls) > _TLS_CONTEXTS_PER_URL:
                self._tls.popitem(last=False)
        self._tls.move_to_end(ca_pem)
        return context


class PrometheusSignalSource:
    """Reads PromQL instant queries from Prometheus, one HTTP call per (query, tick)."""

    def __init__(
        self,
        *,
        recent_ticks: int = 4,
        max_concurrent_queries_per_url: int = DEFAULT_QUERIES_PER_URL,
        max_urls: int = 64,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if min(recent_ticks, max_concurrent_queries_per_url, max_urls, max_body_bytes) < 1:
            raise ValueError("the limits of the Prometheus signal source must be at least 1")
        self._recent_ticks = recent_ticks
        self._slots_per_url = max_concurrent_queries_per_url
        self._max_urls = max_urls
        self._max_body_bytes = max_body_bytes
        # Least recently used first; idle servers beyond max_urls are closed.
        self._servers: OrderedDict[str, _Server] = OrderedDict()
        # tick -> query -> the one task that reads it; oldest ticks are dropped first.
        self._flights: dict[float, dict[MetricQuery, asyncio.Task[MetricReading]]] = {}
        self._closed = False

    async def read(
        self, queries: Collection[MetricQuery], tick: float
    ) -> Mapping[MetricQuery, MetricReading]:
        if self._closed:
            raise RuntimeError("the signal source is closed")
        distinct = list(dict.fromkeys(queries))
        flights = [self._flight(query, tick) for query in distinct]
        # Shielded: a cancelled caller must not cancel a read that other pools are waiting for.
        readings = await asyncio.gather(*(asyncio.shield(flight) for flight in flights))
        return dict(zip(distinct, readings, strict=True))

    def _flight(self, query: MetricQuery, tick: float) -> asyncio.Task[MetricReading]:
        per_tick = self._flights.get(tick)
        if per_tick is None:
            per_tick = self._flights[tick] = {}
            while len(self._flights) > self._recent_ticks:
                del self._flights[min(self._flights)]
        flight = per_tick.get(query)
        if flight is None:
            flight = per_tick[query] = asyncio.create_task(
                self._query(query), name=f"prometheus query at {tick}: {query.promql}"
            )
        return flight

    async def _query(self, query: MetricQuery) -> MetricReading:
        endpoint = query.endpoint
        base_url = normalize_base_url(endpoint.url)
        if isinstance(base_url, Refusal):
            return MetricReading.failed(
                MetricProblem.QUERY_REFUSED, f"the Prometheus URL is refused: {base_url.reason}"
            )
        server = await self._server(base_url)
        server.in_flight += 1
        try:
            async with asyncio.timeout(endpoint.timeout_seconds):
                result = await self._fetch(server, endpoint, query.promql)
        except TimeoutError:
            return self._failed(query, TIMEOUT)
        except QueryError as failure:
            return self._failed(query, failure.reason)
        except aiohttp.ClientSSLError:  # also an untrusted or mismatched certificate
            return self._failed(query, TLS_FAILED)
        except (aiohttp.ClientError, OSError):
            return self._failed(query, CONNECTION_FAILED)
        finally:
            server.in_flight -= 1
        return reading_from_result(result)

    async def _fetch(self, server: _Server, endpoint: PrometheusEndpoint, promql: str) -> Any:
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if endpoint.bearer_token and endpoint.bearer_token.strip():
            # Secrets made with `kubectl create secret --from-file` keep the file's last newline.
            headers["Authorization"] = f"Bearer {endpoint.bearer_token.strip()}"
        # Built also for http, so a bad CA bundle is reported wherever it is given.
        tls = server.tls_context(endpoint.ca_pem) if server.https or endpoint.ca_pem else None
        # Prometheus stops evaluating at the same deadline (float seconds, as its API accepts).
        params = {"query": promql, "timeout": f"{endpoint.timeout_seconds:g}"}
        async with (
            server.slots,
            server.session.get(
                server.query_url,
                params=params,
                headers=headers,
                ssl=tls if tls is not None else True,
                allow_redirects=False,
            ) as response,
        ):
            if 300 <= response.status < 400:
                raise QueryError(f"Redirect refused (HTTP {response.status})")
            if response.status != 200:
                try:
                    body = await read_capped(response, _ERROR_BODY_MAX_BYTES)
                except QueryError:
                    body = b""
                raise QueryError(error_reason(response.status, body))
            body = await read_capped(response, self._max_body_bytes)
        return result_from_body(body)

    def _failed(self, query: MetricQuery, reason: str) -> MetricReading:
        logger.warning(
            "Prometheus query failed: %s",
            reason,
            extra={"promql": query.promql, "url": query.endpoint.url},
        )
        return MetricReading.failed(MetricProblem.QUERY_FAILED, reason)

    async def _server(self, base_url: str) -> _Server:
        server = self._servers.get(base_url)
        if server is None:
            server = self._servers[base_url] = _Server(base_url, self._slots_per_url)
            idle = [url for url, s in self._servers.items() if s.in_flight == 0 and s is not server]
            # Taken out of the map before the first await, so no query can pick one up while
            # the others are being closed; a busy server stays until a later call.
            surplus = max(0, len(self._servers) - self._max_urls)
            retired = [self._servers.pop(url) for url in idle[:surplus]]
            for old in retired:
                await old.session.close()
        self._servers.move_to_end(base_url)
        return server

    async def close(self) -> None:
        self._closed = True
        for per_tick in self._flights.values():
            for flight in per_tick.values():
                flight.cancel()
        self._flights.clear()
        for server in self._servers.values():
            await server.session.close()
        self._servers.clear()
