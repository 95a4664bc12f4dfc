"""The daemon loop and kopf glue, in fake loop time: ticks, shared queries, status writes.

The loop runs exactly as kopf runs it (``run_inference_pool_loop``) with the adapter fakes, a status
writer that records patches, and a stand-in for kopf's ``stopped`` flag; looptime makes the
minutes of ticks take milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes.client
import pytest

from fleetscale.actuators.base import ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeScaleActuator,
)
from fleetscale.controller.handlers import (
    OperatorRuntime,
    _inference_pool_deleted,
    _inference_pool_loop,
    kopf_settings,
    run_inference_pool_loop,
)
from fleetscale.controller.kube import connection_info
from fleetscale.controller.loop import (
    ObjectGone,
    current_tick,
    next_tick,
    poll_interval_seconds,
    tick_offset_seconds,
)
from fleetscale.controller.workers import Workers
from fleetscale.metrics import OperatorMetrics
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource
from support.dependencies import fake_pool_dependencies

EPOCH = 1_800_000_000.0  # a multiple of 15 and of 60, so tick arithmetic reads easily
QUEUE = "sum(vllm:num_requests_waiting)"


@pytest.mark.parametrize(
    ("now", "interval", "expected_next", "expected_current"),
    [
        pytest.param(100.0, 15, 105.0, 90.0, id="between"),
        pytest.param(105.0, 15, 120.0, 105.0, id="on-a-tick"),
        pytest.param(59.999, 60, 60.0, 0.0, id="just-before"),
        pytest.param(EPOCH + 1, 1, EPOCH + 2, EPOCH + 1, id="one-second"),
    ],
)
def test_ticks_are_wall_clock_multiples(
    now: float, interval: int, expected_next: float, expected_current: float
) -> None:
    assert next_tick(now, interval) == expected_next
    assert current_tick(now, interval) == expected_current


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"pollIntervalSeconds": 5}, 5, id="given"),
        pytest.param({}, 15, id="default"),
        pytest.param(None, 15, id="no-spec"),
        pytest.param({"pollIntervalSeconds": 0}, 15, id="zero"),
        pytest.param({"pollIntervalSeconds": "5"}, 15, id="string"),
        pytest.param({"pollIntervalSeconds": True}, 15, id="bool"),
    ],
)
def test_poll_interval_falls_back_to_the_default(
    spec: Mapping[str, Any] | None, expected: int
) -> None:
    assert poll_interval_seconds(spec) == expected


class Stopped:
    """Stand-in for kopf's ``stopped`` kwarg: falsy until set; ``wait`` sleeps until set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: kopf.DaemonStoppingReason | None = None

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self, reason: kopf.DaemonStoppingReason) -> None:
        self.reason = reason
        self._event.set()

    async def wait(self, timeout: float | None = None) -> Stopped:  # noqa: ASYNC109 (kopf's API)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self


class LoopClock:
    """Wall time that follows the (fake) loop time, starting 7 s after a tick."""

    def __init__(self) -> None:
        self._zero: float | None = None

    def __call__(self) -> float:
        loop_time = asyncio.get_running_loop().time()
        if self._zero is None:
            self._zero = loop_time
        return EPOCH + 7 + (loop_time - self._zero)


class RecordingStatusWriter:
    def __init__(self, bodies: Mapping[str, dict[str, Any]]) -> None:
        self.bodies = bodies  # name -> live body; the patch is applied as the watch would
        self.patches: list[tuple[str | None, str, dict[str, Any]]] = []
        self.gone: set[str] = set()

    async def patch_status(
        self, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> None:
        if name in self.gone:
            raise ObjectGone(name)
        self.patches.append((namespace, name, dict(patch)))


def body(name: str, interval: int, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "serving", "uid": name, "generation": 1},
        "spec": {
            "targetRef": {"name": f"vllm-{name}"},
            "replicas": {"min": 1, "max": 10},
            "metrics": {"engine": "custom", "queueDepth": {"query": QUEUE}},
            "pollIntervalSeconds": interval,
            **spec,
        },
    }


@pytest.fixture
def runtime() -> OperatorRuntime:
    signals = FakeSignalSource()
    signals.set_value(QUEUE, 10, sampled_at=EPOCH)
    scaler = FakeScaleActuator(follow_immediately=True)
    for name in ("a", "b"):
        scaler.add(ScaleTargetRef("serving", "apps/v1", "Deployment", f"vllm-{name}"), 2)
    settings = Settings(prometheus_url="http://prom:9090", leader_election=False)
    metrics = OperatorMetrics()
    deps = fake_pool_dependencies(
        signals=signals,
        scaler=scaler,
        settings=settings,
        metrics=metrics,
    )
    runtime = OperatorRuntime(
        settings=settings,
        dependencies_factory=lambda *_: deps,
        metrics=metrics,
        clock=LoopClock(),
    )
    runtime.deps = deps
    runtime.status_writer = RecordingStatusWriter({})
    return runtime


def _signals(runtime: OperatorRuntime) -> FakeSignalSource:
    assert runtime.deps is not None
    signals = runtime.deps.signals
    assert isinstance(signals, FakeSignalSource)
    return signals


@pytest.mark.looptime
async def test_pools_tick_together_on_aligned_ticks_and_share_queries(
    runtime: OperatorRuntime,
) -> None:
    stopped = Stopped()
    loops = [
        asyncio.create_task(
            run_inference_pool_loop(runtime, "serving", name, body(name, 15), stopped)
        )
        for name in ("a", "b")
    ]
    await asyncio.sleep(61)
    stopped.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
    await asyncio.gather(*loops)

    ticks = [call.tick for call in _signals(runtime).calls]
    # At start: the current tick (not a wait of up to 15 s); then every multiple of 15 s.
    expected = [EPOCH, EPOCH + 15, EPOCH + 30, EPOCH + 45, EPOCH + 60]
    assert sorted(ticks) == [tick for tick in expected for _ in ("a", "b")]
    assert _signals(runtime).backend_reads_of(QUEUE) == len(expected)


@pytest.mark.parametrize(
    ("interval", "pools", "spread"),
    [
        pytest.param(15, 1, 0.01, id="one-pool"),
        pytest.param(15, 100, 1.0, id="100-pools-spread-over-1s"),
        pytest.param(15, 1000, 7.5, id="1000-pools-capped-at-half-the-interval"),
        pytest.param(60, 1000, 10.0, id="long-interval"),
    ],
)
def test_tick_offsets_are_stable_and_fill_the_spread(
    interval: int, pools: int, spread: float
) -> None:
    offsets = [tick_offset_seconds(f"uid-{n}", interval, pools) for n in range(500)]
    assert offsets == [tick_offset_seconds(f"uid-{n}", interval, pools) for n in range(500)]
    assert all(0 <= offset < spread for offset in offsets)
    # Evenly spread: each quarter of the spread holds about a quarter of the pools.
    quarters = [
        sum(1 for o in offsets if q * spread / 4 <= o < (q + 1) * spread / 4) for q in range(4)
    ]
    assert all(90 <= count <= 160 for count in quarters), quarters


class TimedSignals(FakeSignalSource):
    """The fake signal source, recording the loop time of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.read_at: list[float] = []

    async def read(self, queries: Any, tick: float) -> Any:
        self.read_at.append(asyncio.get_running_loop().time())
        return await super().read(queries, tick)


@pytest.mark.looptime
async def test_many_pools_spread_over_the_tick_and_still_share_one_query(
    runtime: OperatorRuntime,
) -> None:
    assert runtime.deps is not None
    signals = runtime.deps.signals = TimedSignals()
    signals.set_value(QUEUE, 10, sampled_at=EPOCH + 14)
    names = [f"pool-{n}" for n in range(200)]
    for name in names:
        runtime.deps.scaler.add(  # type: ignore[attr-defined]
            ScaleTargetRef("serving", "apps/v1", "Deployment", f"vllm-{name}"), 2
        )
    stopped = Stopped()
    start = asyncio.get_running_loop().time()  # EPOCH + 7
    loops = [
        asyncio.create_task(
            run_inference_pool_loop(runtime, "serving", name, body(name, 15), stopped)
        )
        for name in names
    ]
    await asyncio.sleep(20)  # the first reads at once, then the tick at EPOCH + 15
    stopped.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
    await asyncio.gather(*loops)

    second_tick = [
        at - start - 8
        for at, call in zip(signals.read_at, signals.calls, strict=True)
        if call.tick == EPOCH + 15
    ]
    assert len(second_tick) == len(names)
    # 200 pools spread over 2 s after the tick, not all at its instant...
    assert min(second_tick) >= 0
    assert max(second_tick) < 2.0
    assert max(second_tick) - min(second_tick) > 1.5
    # ...and the query was still read from the backend once for that tick.
    assert signals.backend_reads_of(QUEUE) == 2


@pytest.mark.looptime
async def test_a_changed_interval_applies_from_the_next_tick(runtime: OperatorRuntime) -> None:
    stopped = Stopped()
    live = body("a", 15)
    loop = asyncio.create_task(run_inference_pool_loop(runtime, "serving", "a", live, stopped))
    await asyncio.sleep(10)  # now EPOCH + 17: ticks ran at EPOCH and EPOCH + 15
    live["spec"]["pollIntervalSeconds"] = 60  # the live body, as kopf updates it
    await asyncio.sleep(120)
    stopped.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
    await loop

    ticks = [call.tick for call in _signals(runtime).calls]
    # The wait already under way (to EPOCH + 30) is kept; the ticks after it use 60 s.
    assert ticks == [EPOCH, EPOCH + 15, EPOCH + 30, EPOCH + 60, EPOCH + 120]


@pytest.mark.looptime
async def test_later_ticks_write_only_what_changed(runtime: OperatorRuntime) -> None:
    stopped = Stopped()
    loop = asyncio.create_task(
        run_inference_pool_loop(runtime, "serving", "a", body("a", 15), stopped)
    )
    await asyncio.sleep(100)
    stopped.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
    await loop

    writer = runtime.status_writer
    assert isinstance(writer, RecordingStatusWriter)
    first, *later = [patch for _, _, patch in writer.patches]
    assert {"replicas", "desiredReplicas", "observedGeneration", "conditions"} <= set(first)
    assert later, "the sample, fixed at EPOCH, goes stale after maxStalenessSeconds"
    for patch in later:
        # The loop diffed against what it wrote last, not against the stale body.
        assert "replicas" not in patch
        assert "desiredReplicas" not in patch
        assert "observedGeneration" not in patch


@pytest.mark.looptime
async def test_a_deleted_pool_loses_its_metrics(runtime: OperatorRuntime) -> None:
    workers = Workers(
        "InferencePool", _inference_pool_loop(runtime), _inference_pool_deleted(runtime)
    )
    await workers.observe(None, body("a", 15))
    labels = {"namespace": "serving", "pool": "a"}
    await asyncio.sleep(1)
    assert runtime.metrics.registry.get_sample_value("fleetscale_desired_replicas", labels)
    await workers.observe("DELETED", body("a", 15))
    assert ("serving", "a") not in workers
    assert runtime.metrics.registry.get_sample_value("fleetscale_desired_replicas", labels) is None


@pytest.mark.looptime
async def test_a_changed_spec_reaches_the_running_loop(runtime: OperatorRuntime) -> None:
    workers = Workers("InferencePool", _inference_pool_loop(runtime))
    await workers.observe(None, body("a", 15))
    await asyncio.sleep(10)  # ticks at EPOCH
    await workers.observe("MODIFIED", body("a", 60))  # a new body, as the watch delivers it
    await asyncio.sleep(120)
    await workers.stop_all(grace_seconds=5)
    ticks = [call.tick for call in _signals(runtime).calls]
    # The wait under way when the spec changed (to EPOCH + 30) is kept; then every 60 s.
    assert ticks == [EPOCH, EPOCH + 15, EPOCH + 30, EPOCH + 60, EPOCH + 120]


class Gate:
    """A leadership gate the test opens and closes."""

    def __init__(self, open_: bool) -> None:
        self.open = open_
        self._opened = asyncio.Event()
        if open_:
            self._opened.set()

    def admits(self) -> bool:
        return self.open

    def set(self, open_: bool) -> None:
        self.open = open_
        if open_:
            self._opened.set()
        else:
            self._opened.clear()

    async def wait_admitted(self, stopped: Any) -> None:
        waiter = asyncio.ensure_future(self._opened.wait())
        stopper = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()


@pytest.mark.looptime
async def test_a_standby_reads_and_writes_nothing_and_acts_at_once_when_it_leads(
    runtime: OperatorRuntime,
) -> None:
    gate = Gate(open_=False)
    runtime.gate = gate
    writer = runtime.status_writer
    assert isinstance(writer, RecordingStatusWriter)
    stopped = Stopped()
    loop = asyncio.create_task(
        run_inference_pool_loop(runtime, "serving", "a", body("a", 15), stopped)
    )
    await asyncio.sleep(50)  # a standby through three ticks
    assert _signals(runtime).calls == []
    assert writer.patches == []
    gate.set(True)  # the lease is acquired at EPOCH + 57
    await asyncio.sleep(0)
    await asyncio.sleep(0.5)
    ticks = [call.tick for call in _signals(runtime).calls]
    assert ticks == [EPOCH + 45], "acts at once, under the current tick, not at the next one"
    assert writer.patches
    gate.set(False)  # lost: nothing more from this replica
    written = len(writer.patches)
    await asyncio.sleep(60)
    assert [call.tick for call in _signals(runtime).calls] == [EPOCH + 45]
    assert len(writer.patches) == written
    stopped.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
    await loop


@pytest.mark.looptime
async def test_the_loop_ends_when_the_pool_is_gone(runtime: OperatorRuntime) -> None:
    writer = runtime.status_writer
    assert isinstance(writer, RecordingStatusWriter)
    writer.gone.add("a")
    await asyncio.wait_for(
        run_inference_pool_loop(runtime, "serving", "a", body("a", 15), Stopped()), timeout=5
    )


def test_kopf_runs_standalone_and_posts_nothing() -> None:
    """fleetscale elects its own leader; kopf itself must not write (a standby writes
    nothing), so it neither peers nor posts Events."""
    kopf_config = kopf_settings(Settings())
    assert kopf_config.peering.standalone is True
    assert kopf_config.posting.enabled is False


def test_kopf_gets_the_same_credentials_as_the_official_client() -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = "https://10.0.0.1:6443"
    configuration.api_key = {"BearerToken": "token-123"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    configuration.ssl_ca_cert = "/var/run/ca.crt"

    info = connection_info(configuration)

    assert (info.server, info.scheme, info.token) == (
        "https://10.0.0.1:6443",
        "Bearer",
        "token-123",
    )
    assert info.ca_path == "/var/run/ca.crt"
    assert info.insecure is False
