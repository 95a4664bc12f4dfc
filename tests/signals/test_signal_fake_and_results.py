"""The fake signal source keeps the real one's promises; result classification properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint, SignalSource
from fleetscale.signals.fake import FakeSignalSource
from fleetscale.signals.prometheus import (
    PrometheusSignalSource,
    QueryError,
    error_reason,
    reading_from_result,
    result_from_body,
)
from support.protocols import protocol_mismatches

ENDPOINT = PrometheusEndpoint(url="http://prometheus:9090")
QUEUE = MetricQuery(ENDPOINT, "sum(queue)")
GPU = MetricQuery(ENDPOINT, "avg(gpu)")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(FakeSignalSource, id="fake"),
        pytest.param(PrometheusSignalSource, id="prometheus"),
    ],
)
def test_both_sources_implement_the_protocol(source: type) -> None:
    assert protocol_mismatches(source, SignalSource) == []


async def test_fake_answers_values_and_problems() -> None:
    fake = FakeSignalSource()
    fake.set_value("sum(queue)", 12, sampled_at=100.0)
    fake.set_problem("avg(gpu)", MetricProblem.MULTIPLE_SERIES)
    readings = await fake.read([QUEUE, GPU], tick=100.0)
    assert readings[QUEUE] == MetricReading.ok(12.0, 100.0)
    assert readings[GPU].problem is MetricProblem.MULTIPLE_SERIES
    unknown = MetricQuery(ENDPOINT, "sum(nothing)")
    assert (await fake.read([unknown], tick=100.0))[unknown].problem is MetricProblem.NO_DATA


async def test_fake_answers_once_per_query_and_tick() -> None:
    fake = FakeSignalSource()
    fake.set_value("sum(queue)", 1, sampled_at=100.0)
    first = await fake.read([QUEUE, QUEUE], tick=100.0)
    fake.set_value("sum(queue)", 2, sampled_at=100.0)
    same_tick = await fake.read([QUEUE], tick=100.0)
    next_tick = await fake.read([QUEUE], tick=115.0)
    assert first[QUEUE].value == same_tick[QUEUE].value == 1.0
    assert next_tick[QUEUE].value == 2.0
    assert fake.backend_reads_of("sum(queue)") == 2
    assert [call.tick for call in fake.calls] == [100.0, 100.0, 115.0]
    assert fake.calls[0].queries == (QUEUE, QUEUE)


async def test_fake_injected_failures() -> None:
    fake = FakeSignalSource()
    fake.set_value("sum(queue)", 1, sampled_at=0.0)
    fake.set_value("avg(gpu)", 50, sampled_at=0.0)
    fake.fail_next("sum(queue)", detail="connection refused")
    failed = await fake.read([QUEUE, GPU], tick=1.0)
    assert failed[QUEUE] == MetricReading.failed(MetricProblem.QUERY_FAILED, "connection refused")
    assert failed[GPU].usable
    assert (await fake.read([QUEUE], tick=2.0))[QUEUE].usable  # fail_next is one-shot

    fake.fail_always()  # every query
    for tick in (3.0, 4.0):
        readings = await fake.read([QUEUE, GPU], tick=tick)
        assert all(r.problem is MetricProblem.QUERY_FAILED for r in readings.values())
    fake.recover()
    assert all(r.usable for r in (await fake.read([QUEUE, GPU], tick=5.0)).values())


async def test_fake_refuses_reads_after_close() -> None:
    fake = FakeSignalSource()
    await fake.close()
    with pytest.raises(RuntimeError):
        await fake.read([QUEUE], tick=1.0)


def _vector(*values: str, at: float = 10.0) -> list[dict[str, object]]:
    return [{"metric": {"i": str(i)}, "value": [at, v]} for i, v in enumerate(values)]


@given(value=st.floats(min_value=0, allow_infinity=False), at=st.floats(0, 4e9))
def test_a_single_non_negative_sample_is_read_exactly(value: float, at: float) -> None:
    assert reading_from_result(_vector(repr(value), at=at)) == MetricReading.ok(value, at)
    assert reading_from_result([at, repr(value)]) == MetricReading.ok(value, at)


@given(value=st.floats(max_value=-1e-300, allow_infinity=False))
def test_negative_samples_are_flagged(value: float) -> None:
    assert reading_from_result(_vector(repr(value))).problem is MetricProblem.NEGATIVE


@given(count=st.integers(min_value=2, max_value=50))
def test_several_series_are_never_a_value(count: int) -> None:
    reading = reading_from_result(_vector(*["1"] * count))
    assert reading.problem is MetricProblem.MULTIPLE_SERIES
    assert not reading.usable


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        pytest.param(_vector("NaN"), MetricProblem.NOT_A_NUMBER, id="nan"),
        pytest.param(_vector("-Inf"), MetricProblem.NOT_A_NUMBER, id="minus-inf"),
        pytest.param(_vector("twelve"), MetricProblem.QUERY_FAILED, id="garbage-value"),
        pytest.param([], MetricProblem.NO_DATA, id="empty"),
        pytest.param({"oops": 1}, MetricProblem.QUERY_FAILED, id="not-a-list"),
        pytest.param([10.0, "NaN"], MetricProblem.NOT_A_NUMBER, id="nan-scalar"),
    ],
)
def test_unusable_results(result: object, problem: MetricProblem) -> None:
    reading = reading_from_result(result)
    assert reading.problem is problem
    assert reading.value is None or not math.isfinite(reading.value)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(401, b"Unauthorized\n", "HTTP 401", id="plain-text"),
        pytest.param(
            400,
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}',
            "HTTP 400 (bad_data)",
            id="prometheus-error",
        ),
        pytest.param(
            422, b'{"errorType":"execution","error":"x"}', "HTTP 422 (execution)", id="execution"
        ),
        pytest.param(503, b'{"errorType":"who-knows"}', "HTTP 503", id="unknown-error-type"),
        pytest.param(500, b"[" * 100_000, "HTTP 500", id="deeply-nested"),
    ],
)
def test_error_answers_are_described_by_status_and_known_error_type(
    status: int, body: bytes, expected: str
) -> None:
    assert error_reason(status, body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"<html>hello</html>", "Unreadable answer", id="not-json"),
        pytest.param(b"[1, 2]", "Unreadable answer", id="not-an-object"),
        pytest.param(b'{"status":"success"}', "Unreadable answer", id="no-data"),
        pytest.param(
            b'{"status":"error","errorType":"timeout","error":"x"}',
            "Prometheus error (timeout)",
            id="error-with-200",
        ),
        pytest.param(b"{" * 100_000, "Unreadable answer", id="deeply-nested"),
    ],
)
def test_answers_that_are_not_prometheus_json_are_unreadable(body: bytes, expected: str) -> None:
    with pytest.raises(QueryError) as failed:
        result_from_body(body)
    assert failed.value.reason == expected


def test_a_success_answer_gives_its_result() -> None:
    body = b'{"status":"success","data":{"resultType":"scalar","result":[1, "2"]}}'
    assert result_from_body(body) == [1, "2"]
