"""One behaviour, two implementations: FakeSignalSource and PrometheusSignalSource agree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint, SignalSource
from fleetscale.signals.fake import FakeSignalSource
from fleetscale.signals.prometheus import PrometheusSignalSource
from support.prometheus_server import PrometheusServer

PROMQL = "sum(vllm:num_requests_waiting)"
TICK = 1_800_000_000.0


@dataclass
class SignalWorld:
    source: SignalSource
    query: MetricQuery
    set_value: Callable[[float, float], None]  # (value, sampled_at)
    backend_calls: Callable[[], int]


@pytest.fixture(params=["fake", "prometheus"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[SignalWorld]:
    if request.param == "fake":
        fake = FakeSignalSource()
        yield SignalWorld(
            source=fake,
            query=MetricQuery(PrometheusEndpoint("http://prometheus:9090"), PROMQL),
            set_value=lambda value, at: fake.set_value(PROMQL, value, at),
            backend_calls=lambda: fake.backend_reads_of(PROMQL),
        )
        return
    async with PrometheusServer() as server:
        source = PrometheusSignalSource()
        yield SignalWorld(
            source=source,
            query=MetricQuery(PrometheusEndpoint(server.url), PROMQL),
            set_value=lambda value, at: server.set_value(PROMQL, value, at),
            backend_calls=lambda: server.query_count(PROMQL),
        )
        await source.close()


async def test_value_with_its_timestamp(world: SignalWorld) -> None:
    world.set_value(7, TICK - 10)
    readings = await world.source.read([world.query], TICK)
    assert readings == {world.query: MetricReading.ok(7.0, TICK - 10)}


async def test_one_backend_call_per_query_and_tick(world: SignalWorld) -> None:
    world.set_value(1, TICK)
    first = await world.source.read([world.query, world.query], TICK)
    world.set_value(2, TICK + 15)
    again = await world.source.read([world.query], TICK)
    later = await world.source.read([world.query], TICK + 15)
    assert first[world.query].value == again[world.query].value == 1.0
    assert later[world.query].value == 2.0
    assert world.backend_calls() == 2


async def test_unknown_query_reads_as_no_data(world: SignalWorld) -> None:
    reading = (await world.source.read([world.query], TICK))[world.query]
    assert reading.problem is MetricProblem.NO_DATA
    assert not reading.usable
