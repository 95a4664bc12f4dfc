"""PrometheusSignalSource against a real HTTP server speaking Prometheus's query API."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint
from fleetscale.signals.prometheus import PrometheusSignalSource
from support.prometheus_server import PrometheusServer, make_tls

QUEUE = 'sum(vllm:num_requests_waiting{model="llama"})'
GPU = 'avg(DCGM_FI_DEV_GPU_UTIL{model="llama"})'
TICK = 1_800_000_000.0
SAMPLED_AT = 1_799_999_990.5


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusServer]:
    async with PrometheusServer() as server:
        yield server


@pytest.fixture
async def source() -> AsyncIterator[PrometheusSignalSource]:
    signal_source = PrometheusSignalSource()
    yield signal_source
    await signal_source.close()


def at(server: PrometheusServer, promql: str, **endpoint: object) -> MetricQuery:
    return MetricQuery(PrometheusEndpoint(url=server.url, **endpoint), promql)  # type: ignore[arg-type]


async def read_one(
    source: PrometheusSignalSource, query: MetricQuery, tick: float = TICK
) -> MetricReading:
    return (await source.read([query], tick))[query]


@pytest.mark.parametrize(
    ("answer", "expected_value", "expected_problem", "detail_part"),
    [
        pytest.param(lambda s: s.set_value(QUEUE, 12, SAMPLED_AT), 12.0, None, "", id="vector"),
        pytest.param(lambda s: s.set_value(QUEUE, 0, SAMPLED_AT), 0.0, None, "", id="zero"),
        pytest.param(lambda s: s.set_scalar(QUEUE, 3.25, SAMPLED_AT), 3.25, None, "", id="scalar"),
        pytest.param(
            lambda s: s.set_empty(QUEUE), None, MetricProblem.NO_DATA, "no series", id="empty"
        ),
        pytest.param(
            lambda s: s.set_series(QUEUE, [({"pod": "a"}, 1), ({"pod": "b"}, 2)], SAMPLED_AT),
            None,
            MetricProblem.MULTIPLE_SERIES,
            "returned 2 series; aggregate it to one",
            id="several-series",
        ),
        pytest.param(
            lambda s: s.set_series(QUEUE, [({"pod": str(i)}, i) for i in range(5)], SAMPLED_AT),
            None,
            MetricProblem.MULTIPLE_SERIES,
            "returned 5 series",
            id="many-series-counted",
        ),
        pytest.param(
            lambda s: s.set_value(QUEUE, math.nan, SAMPLED_AT),
            None,
            MetricProblem.NOT_A_NUMBER,
            "NaN",
            id="nan",
        ),
        pytest.param(
            lambda s: s.set_value(QUEUE, math.inf, SAMPLED_AT),
            None,
            MetricProblem.NOT_A_NUMBER,
            "+Inf",
            id="infinity",
        ),
        pytest.param(
            lambda s: s.set_value(QUEUE, -1, SAMPLED_AT),
            None,
            MetricProblem.NEGATIVE,
            "below zero",
            id="negative",
        ),
        pytest.param(
            lambda s: s.set_matrix(QUEUE, {"pod": "a"}, [(SAMPLED_AT, 1)]),
            None,
            MetricProblem.QUERY_FAILED,
            "range vector",
            id="range-vector",
        ),
        pytest.param(
            lambda s: s.set_error(QUEUE, status=400, error='parse error at char 5: unexpected "}"'),
            None,
            MetricProblem.QUERY_FAILED,
            "HTTP 400 (bad_data)",
            id="bad-query",
        ),
        pytest.param(
            lambda s: s.set_error(
                QUEUE, status=503, error_type="unavailable", error="shutting down"
            ),
            None,
            MetricProblem.QUERY_FAILED,
            "HTTP 503 (unavailable)",
            id="unavailable",
        ),
        pytest.param(
            lambda s: s.set_raw(QUEUE, 502, b"<html>Bad Gateway</html>"),
            None,
            MetricProblem.QUERY_FAILED,
            "HTTP 502",
            id="proxy-error-page",
        ),
    ],
)
async def test_answers_are_classified(
    prometheus: PrometheusServer,
    source: PrometheusSignalSource,
    answer: object,
    expected_value: float | None,
    expected_problem: MetricProblem | None,
    detail_part: str,
) -> None:
    answer(prometheus)  # type: ignore[operator]
    reading = await read_one(source, at(prometheus, QUEUE))
    assert reading.problem == expected_problem
    assert reading.value == expected_value
    assert detail_part in reading.detail
    if expected_problem is None:
        assert reading.sampled_at == SAMPLED_AT
        assert reading.usable


async def test_sampled_at_is_what_prometheus_reported(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 4)  # the server stamps the sample with its evaluation time
    reading = await read_one(source, at(prometheus, QUEUE))
    [request] = prometheus.requests
    assert reading == MetricReading.ok(4.0, request.evaluated_at)


@pytest.mark.looptime
async def test_slow_answer_times_out_after_the_endpoint_timeout(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 1, SAMPLED_AT)
    prometheus.hold(QUEUE)  # never answered while the reader waits: only its timeout ends it
    loop = asyncio.get_running_loop()
    started = loop.time()
    reading = await read_one(source, at(prometheus, QUEUE, timeout_seconds=0.2))
    # Loop time: the endpoint's 0.2 s exactly, however long the machine took in real time.
    assert loop.time() - started == pytest.approx(0.2)
    assert prometheus.query_count(QUEUE) == 1  # it was asked, and gave up on
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert reading.detail == "Timeout"


async def test_unreachable_prometheus_is_a_failed_reading(source: PrometheusSignalSource) -> None:
    server = PrometheusServer()
    await server.start()
    url = server.url
    await server.stop()  # the port is now closed
    query = MetricQuery(PrometheusEndpoint(url=url, timeout_seconds=2), QUEUE)
    reading = await read_one(source, query)
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert reading.detail == "Connection failed"


async def test_bearer_token_is_sent_and_required() -> None:
    async with PrometheusServer(bearer_token="s3cret") as prometheus:
        prometheus.set_value(QUEUE, 7, SAMPLED_AT)
        source = PrometheusSignalSource()
        try:
            without = await read_one(source, at(prometheus, QUEUE), tick=TICK)
            wrong = await read_one(source, at(prometheus, QUEUE, bearer_token="nope"), tick=TICK)
            right = await read_one(source, at(prometheus, QUEUE, bearer_token="s3cret"), tick=TICK)
            from_file = await read_one(
                source, at(prometheus, QUEUE, bearer_token="s3cret\n"), tick=TICK
            )
        finally:
            await source.close()
    assert without.problem is MetricProblem.QUERY_FAILED
    assert "HTTP 401" in without.detail
    assert wrong.problem is MetricProblem.QUERY_FAILED
    assert right == from_file == MetricReading.ok(7.0, SAMPLED_AT)
    assert [r.authorization for r in prometheus.requests] == [
        None,
        "Bearer nope",
        "Bearer s3cret",
        "Bearer s3cret",
    ]


async def test_token_is_not_printed_in_endpoint_repr() -> None:
    endpoint = PrometheusEndpoint(url="https://prom", bearer_token="s3cret", ca_pem="PEM")
    assert "s3cret" not in repr(endpoint)
    assert "PEM" not in repr(endpoint)


async def test_tls_with_the_endpoint_ca() -> None:
    tls = make_tls()
    other_ca = make_tls(common_name="someone-else").ca_pem
    async with PrometheusServer(tls=tls) as prometheus:
        assert prometheus.url.startswith("https://")
        prometheus.set_value(QUEUE, 9, SAMPLED_AT)
        source = PrometheusSignalSource()
        try:
            trusted = await read_one(source, at(prometheus, QUEUE, ca_pem=tls.ca_pem))
            untrusted = await read_one(source, at(prometheus, QUEUE, ca_pem=other_ca))
            system_roots = await read_one(source, at(prometheus, QUEUE))
        finally:
            await source.close()
    assert trusted == MetricReading.ok(9.0, SAMPLED_AT)
    for reading in (untrusted, system_roots):
        assert reading.problem is MetricProblem.QUERY_FAILED
        assert "TLS verification failed" in reading.detail
    assert prometheus.query_count(QUEUE) == 1  # the failed handshakes never reached the handler


async def test_concurrent_reads_of_one_query_and_tick_share_one_call(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 5, SAMPLED_AT)
    prometheus.set_delay(QUEUE, 0.2)  # keeps the first call in flight while the others arrive
    query = at(prometheus, QUEUE)
    readings = await asyncio.gather(*(source.read([query], TICK) for _ in range(10)))
    assert prometheus.query_count(QUEUE) == 1
    assert all(r[query] == MetricReading.ok(5.0, SAMPLED_AT) for r in readings)


async def test_equal_queries_from_several_pools_share_one_call(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 5, SAMPLED_AT)
    # Two pools build equal queries independently: equal values, distinct objects.
    first, second = at(prometheus, QUEUE), at(prometheus, QUEUE)
    readings = await source.read([first, second], TICK)
    assert prometheus.query_count(QUEUE) == 1
    assert readings[first] == readings[second] == MetricReading.ok(5.0, SAMPLED_AT)


async def test_a_later_read_in_the_same_tick_reuses_the_answer(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 5, SAMPLED_AT)
    first = await read_one(source, at(prometheus, QUEUE))
    prometheus.set_value(QUEUE, 6, SAMPLED_AT)
    second = await read_one(source, at(prometheus, QUEUE))
    assert first == second
    assert prometheus.query_count(QUEUE) == 1


async def test_each_tick_queries_again(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 5, SAMPLED_AT)
    first = await read_one(source, at(prometheus, QUEUE), tick=TICK)
    prometheus.set_value(QUEUE, 6, SAMPLED_AT + 15)
    second = await read_one(source, at(prometheus, QUEUE), tick=TICK + 15)
    assert (first.value, second.value) == (5.0, 6.0)
    assert prometheus.query_count(QUEUE) == 2


async def test_same_promql_on_different_endpoints_is_queried_on_each() -> None:
    async with PrometheusServer() as one, PrometheusServer() as two:
        one.set_value(QUEUE, 1, SAMPLED_AT)
        two.set_value(QUEUE, 2, SAMPLED_AT)
        on_one, on_two = at(one, QUEUE), at(two, QUEUE)
        source = PrometheusSignalSource()
        try:
            readings = await source.read([on_one, on_two], TICK)
        finally:
            await source.close()
    assert [readings[on_one].value, readings[on_two].value] == [1.0, 2.0]
    assert (one.query_count(QUEUE), two.query_count(QUEUE)) == (1, 1)


async def test_distinct_queries_run_concurrently(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    promqls = [f"sum(queue_{i})" for i in range(4)]
    for promql in promqls:
        prometheus.set_value(promql, 1, SAMPLED_AT)
        prometheus.hold(promql)
    read = asyncio.create_task(source.read([at(prometheus, q) for q in promqls], TICK))
    # All four wait at the server at once. Read one after the other, the first would wait
    # there alone until the reader's timeout ended the read.
    all_held = asyncio.create_task(prometheus.wait_held(len(promqls)))
    await asyncio.wait([read, all_held], return_when=asyncio.FIRST_COMPLETED)
    assert all_held.done(), f"not all in flight at once: {prometheus.query_count()} asked"
    prometheus.release()
    readings = await read
    assert [readings[at(prometheus, q)] for q in promqls] == [
        MetricReading.ok(1.0, SAMPLED_AT)
    ] * len(promqls)


async def test_one_failing_query_does_not_spoil_the_others(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 3, SAMPLED_AT)
    prometheus.set_error(GPU, status=422, error_type="execution", error="query timed out")
    readings = await source.read([at(prometheus, QUEUE), at(prometheus, GPU)], TICK)
    assert readings[at(prometheus, QUEUE)] == MetricReading.ok(3.0, SAMPLED_AT)
    assert readings[at(prometheus, GPU)].problem is MetricProblem.QUERY_FAILED


async def test_only_recent_ticks_are_remembered(prometheus: PrometheusServer) -> None:
    prometheus.set_value(QUEUE, 5, SAMPLED_AT)
    source = PrometheusSignalSource(recent_ticks=2)
    try:
        for tick in (TICK, TICK + 15, TICK + 30):
            await read_one(source, at(prometheus, QUEUE), tick=tick)
        assert prometheus.query_count(QUEUE) == 3
        await read_one(source, at(prometheus, QUEUE), tick=TICK + 30)  # still remembered
        assert prometheus.query_count(QUEUE) == 3
        await read_one(source, at(prometheus, QUEUE), tick=TICK)  # forgotten: asked again
        assert prometheus.query_count(QUEUE) == 4
    finally:
        await source.close()


async def test_a_cancelled_reader_does_not_cancel_the_shared_call(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    prometheus.set_value(QUEUE, 8, SAMPLED_AT)
    prometheus.hold(QUEUE)
    query = at(prometheus, QUEUE)
    impatient = asyncio.create_task(source.read([query], TICK))
    patient = asyncio.create_task(source.read([query], TICK))
    await prometheus.wait_held(1)  # the shared call is in flight
    impatient.cancel()
    await asyncio.wait([impatient])
    prometheus.release()
    assert (await patient)[query] == MetricReading.ok(8.0, SAMPLED_AT)
    assert impatient.cancelled()
    assert prometheus.query_count(QUEUE) == 1


async def test_closed_source_refuses_reads(prometheus: PrometheusServer) -> None:
    source = PrometheusSignalSource()
    await source.close()
    with pytest.raises(RuntimeError, match="closed"):
        await source.read([at(prometheus, QUEUE)], TICK)


async def test_a_rotated_token_is_used_at_once_on_the_same_url() -> None:
    async with PrometheusServer(bearer_token="new") as prometheus:
        prometheus.set_value(QUEUE, 2, SAMPLED_AT)
        source = PrometheusSignalSource()
        try:
            old = await read_one(source, at(prometheus, QUEUE, bearer_token="old"), tick=TICK)
            new = await read_one(source, at(prometheus, QUEUE, bearer_token="new"), tick=TICK)
        finally:
            await source.close()
    assert old.problem is MetricProblem.QUERY_FAILED
    assert new == MetricReading.ok(2.0, SAMPLED_AT)


async def test_urls_beyond_the_limit_are_dropped_and_rebuilt() -> None:
    async with PrometheusServer() as one, PrometheusServer() as two:
        one.set_value(QUEUE, 1, SAMPLED_AT)
        two.set_value(QUEUE, 2, SAMPLED_AT)
        source = PrometheusSignalSource(max_urls=1)
        try:
            first = await read_one(source, at(one, QUEUE), tick=TICK)
            second = await read_one(source, at(two, QUEUE), tick=TICK)  # drops one's session
            again = await read_one(source, at(one, QUEUE), tick=TICK + 1)
        finally:
            await source.close()
    assert (first.value, second.value, again.value) == (1.0, 2.0, 1.0)
    assert one.query_count(QUEUE) == 2


async def test_a_bad_ca_bundle_is_a_failed_reading(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    reading = await read_one(source, at(prometheus, QUEUE, ca_pem="not a certificate"))
    assert reading.problem is MetricProblem.QUERY_FAILED
    assert "CA bundle is not valid PEM" in reading.detail


async def test_each_url_runs_at_most_its_slots_at_once(prometheus: PrometheusServer) -> None:
    promqls = [f"sum(queue_{i})" for i in range(4)]
    for promql in promqls:
        prometheus.set_value(promql, 1, SAMPLED_AT)
        prometheus.set_delay(promql, 0.3)
    source = PrometheusSignalSource(max_concurrent_queries_per_url=2)
    try:
        readings = await source.read([at(prometheus, q) for q in promqls], TICK)
    finally:
        await source.close()
    assert all(r.usable for r in readings.values())
    arrivals = sorted(r.received_at for r in prometheus.requests)
    # Two at once, then the other two once the first ones were answered.
    assert arrivals[1] - arrivals[0] < 0.2
    assert arrivals[2] - arrivals[0] >= 0.25


async def test_the_deadline_is_sent_to_prometheus_too(
    prometheus: PrometheusServer, source: PrometheusSignalSource
) -> None:
    await read_one(source, at(prometheus, QUEUE, timeout_seconds=2.5))
    [request] = prometheus.requests
    assert request.params["timeout"] == "2.5"  # float seconds, as its API accepts


async def test_sessions_within_the_limit_are_kept_and_reuse_their_connections() -> None:
    async with PrometheusServer() as a, PrometheusServer() as b, PrometheusServer() as c:
        for server in (a, b, c):
            server.set_value(QUEUE, 1, SAMPLED_AT)
        source = PrometheusSignalSource(max_urls=4)
        try:
            for server in (a, b, c):
                await read_one(source, at(server, QUEUE), tick=TICK)
            await read_one(source, at(a, QUEUE), tick=TICK + 15)
        finally:
            await source.close()
    first, again = (r.client_port for r in a.requests)
    assert first == again
