"""The fleet simulator: request accounting, latency, billing, monitoring delay, the gateway."""

from __future__ import annotations

import pytest
from sim_builders import Fixed, config, steady

from fleetscale.sim.engine import FleetSimulator
from fleetscale.sim.model import LLAMA_70B_4XH100, NodeProfile
from fleetscale.sim.oracle import Oracle
from fleetscale.sim.workload import replicate


def _run(rate: float, replicas: int, seconds: float = 300, **kwargs: object):  # type: ignore[no-untyped-def]
    policy = Fixed(replicas, **kwargs)  # type: ignore[arg-type]
    result = FleetSimulator(config(), steady(rate, seconds), policy, replicas).run()
    return result, policy


@pytest.mark.parametrize(
    ("rate", "replicas"),
    [
        pytest.param(2, 2, id="light"),
        pytest.param(30, 1, id="overloaded"),
        pytest.param(30, 8, id="busy"),
    ],
)
def test_every_request_is_served_shed_or_timed_out_once(rate: float, replicas: int) -> None:
    result, _ = _run(rate, replicas)
    outcomes = result.outcomes
    assert outcomes.served + outcomes.shed + outcomes.timed_out == outcomes.total
    assert len(outcomes.queue_wait_seconds) == outcomes.served
    assert outcomes.met_ttft <= outcomes.served


def test_an_ample_fleet_serves_everything_at_once_within_the_slo() -> None:
    result, _ = _run(rate=2, replicas=2)
    assert result.outcomes.met_ttft == result.outcomes.total
    assert max(result.outcomes.queue_wait_seconds) == 0


def test_an_overloaded_replica_queues_until_clients_give_up() -> None:
    result, _ = _run(rate=30, replicas=1)
    outcomes = result.outcomes
    assert outcomes.timed_out > 0
    assert outcomes.shed == 0
    assert max(outcomes.queue_wait_seconds) <= config().client_timeout_seconds


def test_the_shed_flag_turns_queueing_into_immediate_429s() -> None:
    queued, _ = _run(rate=30, replicas=1)
    shedding, _ = _run(rate=30, replicas=1, shed=True, shed_queue_per_replica=5)
    assert shedding.outcomes.shed > 0
    assert shedding.outcomes.timed_out == 0
    assert max(shedding.outcomes.queue_wait_seconds) < max(queued.outcomes.queue_wait_seconds)
    # Shedding for a fixed fleet that is not provisioning or capped is counted as unjustified.
    assert shedding.shed_seconds_while_unconstrained > 0


def test_throughput_saturates_with_batch_size() -> None:
    model = LLAMA_70B_4XH100
    assert model.decode_tokens_per_second(1) == pytest.approx(model.single_stream_tokens_per_second)
    aggregate = [n * model.decode_tokens_per_second(n) for n in (1, 8, 64)]
    assert aggregate == sorted(aggregate)
    assert aggregate[-1] < model.aggregate_decode_tokens_per_second


def test_nodes_are_billed_from_request_to_release() -> None:
    result, _ = _run(rate=1, replicas=4, seconds=600)
    nodes = 2  # four 4-GPU replicas on 8-GPU nodes
    assert result.gpu_hours == pytest.approx(nodes * 8 * result.duration_seconds / 3600)


def test_scale_up_waits_for_nodes_then_model_load() -> None:
    policy = Fixed(6)
    settings = config(nodes=NodeProfile(max_nodes=4, provisioning_sigma=0.0))
    result = FleetSimulator(settings, steady(1, 1200), policy, initial_replicas=2).run()
    timeline = result.timeline
    first_six = min(
        t for t, r in zip(timeline.time_seconds, timeline.ready_replicas, strict=True) if r == 6
    )
    # Cluster Autoscaler scans every 10 s, nodes take 240 s, the model loads in 180 s.
    assert 420 <= first_six <= 440
    assert result.nodes_requested == 3


def test_the_policy_sees_metrics_one_scrape_interval_late() -> None:
    _, policy = _run(rate=2, replicas=2, seconds=120)
    for view in policy.views:
        if view.sample is None:
            assert view.now < 2 * config().scrape_interval_seconds
            continue
        age = view.now - view.sample.sampled_at
        assert config().scrape_interval_seconds <= age < 2 * config().scrape_interval_seconds


def test_same_seed_same_result_different_seed_different_provisioning() -> None:
    workload = steady(5, 900)

    def run(seed: int) -> tuple[list[int], int]:
        result = FleetSimulator(config(seed=seed), workload, Fixed(8), 1).run()
        return result.timeline.ready_replicas, result.outcomes.met_ttft

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_a_64_replica_fleet_serves_its_load() -> None:
    # Five minutes of a 64-replica fleet at about 300 requests/s. How fast it runs is a figure
    # `make bench` prints (against the oracle's run), not something a unit test times.
    settings = config(max_replicas=64, nodes=NodeProfile(max_nodes=32))
    workload = replicate(steady(20, 300, inputs=1000, outputs=200), copies=16, seed=1)
    oracle = Oracle(workload, settings)
    assert 50 <= oracle.peak_replicas <= 64
    result = FleetSimulator(settings, workload, oracle, oracle.initial_replicas()).run()
    assert result.outcomes.total == 96_000
    assert result.outcomes.met_ttft / result.outcomes.total > 0.99
