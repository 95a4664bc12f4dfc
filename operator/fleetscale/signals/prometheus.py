"""Prometheus as a signal source: instant queries, read once per distinct query per tick.

Role: implement ``SignalSource`` on Prometheus's HTTP API (``/api/v1/query``) through
prometheus-api-client. The client is synchronous, so each query runs on a small thread pool of
our own (kopf's and the Kubernetes client's threads are never starved by a slow Prometheus) and
is bounded by the endpoint's timeout. Each endpoint gets its own ``requests.Session`` carrying
the bearer token and trusting only the endpoint's CA when one is given (kept in memory, never
written to disk: operator pods usually run with a read-only root filesystem).

Reads are single-flight per (query, tick): every pool that polls on the same tick shares one
HTTP call, also when their reads overlap in time. Results of the last few ticks are kept so a
pool that runs late in a tick still reuses the answer. Callers: the controller's reconcile.

What a reading means: the value of the single series (or scalar) the query returned, with the
timestamp Prometheus reported. No data, several series, NaN/Inf and negative values become
``MetricProblem``s here; staleness is left to the planner, which owns the clock.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import re
import ssl
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint

logger = logging.getLogger(__name__)

# How many label sets a MultipleSeries detail lists before "and N more".
_SERIES_SHOWN_IN_DETAIL = 3
_DETAIL_MAX_CHARS = 500
_THREAD_TIMEOUT_MARGIN_SECONDS = 1.0
# The exception text prometheus-api-client raises for a non-200 answer.
_HTTP_ERROR_PATTERN = re.compile(r"^HTTP Status Code (\d+) \((b(?:'.*'|\".*\"))\)$", re.DOTALL)


def reading_from_result(result: Any) -> MetricReading:
    """Classify the ``data.result`` of an instant query into one reading.

    Pure: the shapes are Prometheus's (``[ts, "v"]`` for a scalar, a list of
    ``{"metric": ..., "value": [ts, "v"]}`` for an instant vector, ``"values"`` for a matrix).
    """
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _reading_from_sample(result, what="scalar")
    if not isinstance(result, list):
        return MetricReading.failed(
            MetricProblem.QUERY_FAILED, f"unexpected result shape: {_truncate(repr(result))}"
        )
    if not result:
        return MetricReading.failed(MetricProblem.NO_DATA, "the query returned no series")
    if any(not isinstance(series, dict) or "value" not in series for series in result):
        return MetricReading.failed(
            MetricProblem.QUERY_FAILED,
            "the query returned a range vector; an instant vector or a scalar is needed",
        )
    if len(result) > 1:
        shown = ", ".join(
            _labels_text(s.get("metric", {})) for s in result[:_SERIES_SHOWN_IN_DETAIL]
        )
        more = len(result) - _SERIES_SHOWN_IN_DETAIL
        suffix = f" and {more} more" if more > 0 else ""
        return MetricReading.failed(
            MetricProblem.MULTIPLE_SERIES,
            f"the query returned {len(result)} series ({shown}{suffix}); "
            "aggregate it to one, e.g. with sum() or avg()",
        )
    return _reading_from_sample(result[0]["value"], what="sample")


def _reading_from_sample(sample: Sequence[Any], *, what: str) -> MetricReading:
    try:
        sampled_at = float(sample[0])
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        return MetricReading.failed(
            MetricProblem.QUERY_FAILED, f"unparsable {what}: {_truncate(repr(sample))}"
        )
    if not math.isfinite(value):
        return MetricReading.failed(MetricProblem.NOT_A_NUMBER, f"the {what} is {sample[1]}")
    if value < 0:
        return MetricReading.failed(MetricProblem.NEGATIVE, f"the {what} is {value:g}, below zero")
    return MetricReading.ok(value, sampled_at)


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _truncate(text: str) -> str:
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 3] + "..."


def describe_failure(exc: BaseException) -> str:
    """A short, plain explanation of why a query failed, for conditions and Events."""
    if isinstance(exc, TimeoutError | requests.Timeout) or _is_read_timeout(exc):
        return "Prometheus did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS verification failed: {_truncate(str(exc))}"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to Prometheus: {_truncate(str(exc))}"
    match = _HTTP_ERROR_PATTERN.match(str(exc))
    if match is None:
        return _truncate(f"{type(exc).__name__}: {exc}")
    status, body_literal = match.groups()
    try:
        body = ast.literal_eval(body_literal).decode("utf-8", "replace")
    except (ValueError, SyntaxError, UnicodeDecodeError):
        body = body_literal
    try:
        payload = json.loads(body)
        message = f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"
    except (ValueError, AttributeError):
        message = body.strip()
    return _truncate(f"Prometheus answered HTTP {status}: {message}")


def _is_read_timeout(exc: BaseException) -> bool:
    # Without urllib3 retries, a read timeout surfaces as ConnectionError(MaxRetryError(...)).
    reason = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


class _EndpointAdapter(HTTPAdapter):
    """Connections to one endpoint: pooled for concurrent queries, optionally a pinned CA.

    With a CA, servers are verified against that CA only, not the public bundle as well.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None, **kwargs: Any) -> None:
        self._ssl_context = ssl_context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._ssl_context is not None:
            kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if self._ssl_context is not None:
            # requests would add the public bundle to our context; trust the given CA only.
            conn.ca_certs = None
            conn.ca_cert_dir = None


def _no_retries() -> Retry:
    # The next tick is the retry: a retrying client would only push answers past the timeout.
    return Retry(total=0, connect=0, read=0, status=0, raise_on_status=False)


def build_client(endpoint: PrometheusEndpoint, pool_size: int = 16) -> PrometheusConnect:
    """A PrometheusConnect with its own session: bearer token, pinned CA, no hidden retries."""
    session = requests.Session()
    if endpoint.bearer_token and endpoint.bearer_token.strip():
        # Secrets made with `kubectl create secret --from-file` keep the file's last newline.
        session.headers["Authorization"] = f"Bearer {endpoint.bearer_token.strip()}"
    url = endpoint.url.rstrip("/")
    client = PrometheusConnect(
        url=url,
        session=session,
        retry=_no_retries(),
        # Only bounds the worker thread; the caller's own timeout (asyncio) decides and reports.
        timeout=endpoint.timeout_seconds + _THREAD_TIMEOUT_MARGIN_SECONDS,  # type: ignore[arg-type,unused-ignore]
    )
    context = None
    if endpoint.ca_pem:
        try:
            context = ssl.create_default_context(cadata=endpoint.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"the CA bundle is not valid PEM certificates ({exc})") from exc
    # Mounted after PrometheusConnect's own adapter, on the same prefix, so it replaces it.
    adapter = _EndpointAdapter(
        context, max_retries=_no_retries(), pool_connections=1, pool_maxsize=pool_size
    )
    session.mount(url, adapter)
    return client


class PrometheusSignalSource:
    """Reads PromQL instant queries from Prometheus, one HTTP call per (query, tick)."""

    def __init__(
        self,
        *,
        recent_ticks: int = 4,
        max_concurrent_queries: int = 16,
        max_endpoints: int = 64,
    ) -> None:
        if recent_ticks < 1 or max_endpoints < 1:
            raise ValueError("recent_ticks and max_endpoints must be at least 1")
        self._recent_ticks = recent_ticks
        self._max_endpoints = max_endpoints
        self._pool_size = max_concurrent_queries
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent_queries, thread_name_prefix="prometheus-query"
        )
        # Least recently used first: a rotated token makes a new endpoint; the old one ages out.
        self._clients: OrderedDict[PrometheusEndpoint, PrometheusConnect] = OrderedDict()
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
        loop = asyncio.get_running_loop()
        try:
            client = self._client(endpoint)  # inside: a bad CA bundle is a failed reading too
            result = await asyncio.wait_for(
                loop.run_in_executor(self._executor, client.custom_query, query.promql),
                timeout=endpoint.timeout_seconds,
            )
        except Exception as exc:  # every failure is a reading, never an exception
            detail = describe_failure(exc)
            logger.warning(
                "Prometheus query failed: %s",
                detail,
                extra={"promql": query.promql, "url": endpoint.url},
            )
            return MetricReading.failed(MetricProblem.QUERY_FAILED, detail)
        return reading_from_result(result)

    def _client(self, endpoint: PrometheusEndpoint) -> PrometheusConnect:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = build_client(endpoint, self._pool_size)
            while len(self._clients) > self._max_endpoints:
                # Closing only drops idle pooled connections; a query still using it finishes.
                self._clients.popitem(last=False)[1].close()
        self._clients.move_to_end(endpoint)
        return client

    async def close(self) -> None:
        self._closed = True
        for per_tick in self._flights.values():
            for flight in per_tick.values():
                flight.cancel()
        self._flights.clear()
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
