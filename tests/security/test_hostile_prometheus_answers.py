"""The Prometheus adapter against servers that answer like an attacker would (#11).

A tenant who may create InferencePools chooses the URL the operator reads and the PromQL it
sends. Whatever the server at that URL does, the operator must not follow it elsewhere, must not
be held past the query's deadline, must not read an unbounded body, must not let one slow
endpoint stall the reads of another, and must never copy the remote body or other series' label
sets into the reading, which ends up in conditions and Events the tenant can read.

All against the real adapter and real local HTTP servers (tests/support/prometheus_server.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint
from fleetscale.signals.prometheus import PrometheusSignalSource
from support.prometheus_server import PrometheusServer

QUEUE = 'sum(vllm:num_requests_waiting{namespace="team-a"})'
TICK = 1_800_000_000.0
SECRET = "AKIA-SECRET-4f1c9e"  # what a hostile or internal endpoint might echo back
HUGE_BODY_BYTES = 128 << 20
# Loopback socket buffers let a server push a few MiB before a client that stopped reading
# blocks it; anything near the whole body means the client read it all.
BYTES_SENT_BOUND = 24 << 20
ODD_SHAPE = {"status": "success", "data": {"resultType": "x", "result": SECRET}}
ODD_SAMPLE = {"status": "success", "data": {"resultType": "scalar", "result": [1, SECRET]}}


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusServer]:
    async with PrometheusServer() as server:
        yield server


@pytest.fixture
async def source() -> AsyncIterator[PrometheusSignalSource]:
    signal_source = PrometheusSignalSource()
    yield signal_source
    await signal_source.close()


def at(url: str, promql: str = QUEUE, timeout_seconds: float = 5.0) -> MetricQuery:
    return MetricQuery(PrometheusEndpoint(url=url, timeout_seconds=timeout_seconds), promql)


async def read_one(source: PrometheusSignalSource, query: MetricQuery) -> MetricReading:
    return (await source.read([query], TICK))[query]


async def test_a_redirect_to_another_server_is_not_followed(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    async with PrometheusServer() as elsewhere:
        elsewhere.set_value(QUEUE, 42, TICK)
        prometheus.set_redirect(QUEUE, f"{elsewhere.url}/api/v1/query?query={QUEUE}")
        reading = await read_one(source, at(prometheus.url))
    assert elsewhere.paths == []
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert reading.detail == "Redirect refused (HTTP 302)"


@pytest.mark.parametrize(
    ("answer", "expected_detail"),
    [
        pytest.param(
            lambda s: s.set_raw(QUEUE, 500, f"internal config: password={SECRET}".encode()),
            "HTTP 500",
            id="error-page-with-a-secret",
        ),
        pytest.param(
            lambda s: s.set_error(QUEUE, status=400, error_type="bad_data", error=SECRET),
            "HTTP 400 (bad_data)",
            id="prometheus-error-echoing-a-secret",
        ),
        pytest.param(
            lambda s: s.set_error(QUEUE, status=503, error_type=SECRET, error="unavailable"),
            "HTTP 503",
            id="unknown-error-type",
        ),
        pytest.param(
            lambda s: s.set_raw(QUEUE, 200, f"<html>{SECRET}</html>".encode()),
            "Unreadable answer",
            id="200-that-is-not-prometheus",
        ),
        pytest.param(
            lambda s: s.set_raw(QUEUE, 200, json.dumps(ODD_SHAPE).encode()),
            "Unreadable answer",
            id="unexpected-result-shape",
        ),
        pytest.param(
            lambda s: s.set_raw(QUEUE, 200, json.dumps(ODD_SAMPLE).encode()),
            "Unreadable answer",
            id="unparsable-sample",
        ),
    ],
)
async def test_the_remote_body_never_reaches_the_reading(
    prometheus: PrometheusServer,
    source: PrometheusSignalSource,
    answer: object,
    expected_detail: str,
) -> None:
    answer(prometheus)  # type: ignore[operator]
    reading = await read_one(source, at(prometheus.url))
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert reading.detail == expected_detail
    assert SECRET not in reading.detail


async def test_other_series_label_sets_never_reach_the_reading(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    series = [({"namespace": f"team-{i}", "api_key": f"{SECRET}-{i}"}, i) for i in range(5)]
    prometheus.set_series(QUEUE, series, TICK)
    reading = await read_one(source, at(prometheus.url))
    assert reading.problem is MetricProblem.MULTIPLE_SERIES
    assert "5 series" in reading.detail
    for labels, _value in series:
        for value in labels.values():
            assert value not in reading.detail


@pytest.mark.parametrize(
    "declare_length",
    [
        pytest.param(True, id="content-length"),
        pytest.param(False, id="chunked"),
    ],
)
async def test_a_huge_body_is_cut_off_at_the_cap(
    prometheus: PrometheusServer, source: PrometheusSignalSource, declare_length: bool
) -> None:
    prometheus.set_huge_body(QUEUE, HUGE_BODY_BYTES, declare_length=declare_length)
    reading = await read_one(source, at(prometheus.url, timeout_seconds=20))
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert reading.detail == "BodyTooLarge"
    [stream] = await prometheus.wait_for_streams_to_end(timeout_seconds=5)
    assert stream.client_gone
    assert stream.bytes_sent < BYTES_SENT_BOUND


async def test_a_slow_drip_server_is_cut_off_at_the_deadline(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    # The server drips for 10 s; a deadline of 0.5 s must end the read long before that. The
    # bound is loose on purpose (the suite shares two cores): what it tells apart is "cut at
    # the deadline" from "held until the server gives up".
    prometheus.set_drip(QUEUE, interval_seconds=0.05)
    started = time.monotonic()
    reading = await read_one(source, at(prometheus.url, timeout_seconds=0.5))
    assert time.monotonic() - started < 3.0
    assert (reading.problem, reading.detail) == (MetricProblem.QUERY_FAILED, "Timeout")
    # The connection is closed at the deadline, not left to drip on in the background.
    [stream] = await prometheus.wait_for_streams_to_end(timeout_seconds=5)
    assert stream.client_gone
    assert stream.held_seconds is not None
    assert stream.held_seconds < 3.0


async def test_a_slow_endpoint_does_not_stall_another_endpoints_reads(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    deadline_seconds = 1.0
    # More concurrent slow queries than the adapter runs at once, so a shared pool of
    # workers would be full of them.
    slow_promqls = [f"sum(drip_{i})" for i in range(40)]
    for promql in slow_promqls:
        prometheus.set_drip(promql, interval_seconds=0.05)
    async with PrometheusServer() as healthy:
        healthy.set_value(QUEUE, 7, TICK)
        slow = asyncio.create_task(
            source.read([at(prometheus.url, q, deadline_seconds) for q in slow_promqls], TICK)
        )
        await prometheus.wait_for_streams_to_start(4, timeout_seconds=2)  # slow reads in flight
        started = time.monotonic()
        reading = await read_one(source, at(healthy.url, timeout_seconds=deadline_seconds))
        healthy_seconds = time.monotonic() - started
        slow_readings = await slow
    assert reading == MetricReading.ok(7.0, TICK)
    assert healthy_seconds < 0.5, "the healthy endpoint waited for the slow one"
    assert {r.detail for r in slow_readings.values()} == {"Timeout"}
    # No slow query held its connection past its deadline.
    streams = await prometheus.wait_for_streams_to_end(timeout_seconds=3)
    assert all(s.client_gone for s in streams)
    assert max(s.held_seconds or 99.0 for s in streams) < deadline_seconds + 0.5


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param("/secret#", id="fragment"),
        pytest.param("/secret?x=", id="query"),
    ],
)
async def test_a_url_that_would_neutralise_the_api_path_is_refused_by_the_adapter(
    prometheus: PrometheusServer, source: PrometheusSignalSource, suffix: str
) -> None:
    reading = await read_one(source, at(prometheus.url + suffix))
    assert reading.problem is MetricProblem.QUERY_REFUSED
    assert prometheus.paths == []
