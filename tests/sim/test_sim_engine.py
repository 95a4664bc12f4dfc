"""The fleet simulator: request accounting, latency, billing, monitoring delay, routing."""

from __future__ import annotations

import itertools

import pytest
from sim_builders import Fixed, config, steady

from fleetscale.sim.engine import FleetSimulator
from fleetscale.sim.model import NodeProfile
from fleetscale.sim.oracle import Oracle
from fleetscale.sim.policy import Action, FleetView
from fleetscale.sim.replica import Replica
from fleetscale.sim.workload import Workload, replicate


def _run(rate: float, replicas: int, seconds: float = 300, **kwargs: object):  # type: ignore[no-untyped-def]
    policy = Fixed(replicas, **kwargs)  # type: ignore[arg-type]
    result = FleetSimulator(config(), steady(rate, seconds), policy, replicas).run()
    return result, policy


@pytest.mark.parametrize(
    ("rate", "replicas"),
    [
        pytest.param(2, 2, id="light"),
        pytest.param(60, 1, id="overloaded"),
        pytest.param(60, 8, id="busy"),
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
    assert max(result.outcomes.queue_wait_seconds) < 0.1


def test_an_overloaded_replica_queues_until_clients_give_up() -> None:
    result, _ = _run(rate=60, replicas=1)
    outcomes = result.outcomes
    assert outcomes.timed_out > 0
    assert outcomes.shed == 0
    assert max(outcomes.queue_wait_seconds) <= config().client_timeout_seconds + 1


def test_the_shed_flag_turns_queueing_into_immediate_429s() -> None:
    queued, _ = _run(rate=60, replicas=1)
    shedding, _ = _run(rate=60, replicas=1, shed=True, shed_queue_per_replica=5)
    assert shedding.outcomes.shed > 0
    assert shedding.outcomes.timed_out < queued.outcomes.timed_out
    assert max(shedding.outcomes.queue_wait_seconds) < max(queued.outcomes.queue_wait_seconds)
    # Shedding for a fixed fleet that is not provisioning or capped is counted as unjustified.
    assert shedding.shed_seconds_while_unconstrained > 0
    assert shedding.shed_requests_while_unconstrained == shedding.outcomes.shed


def test_nodes_are_billed_from_request_to_release() -> None:
    result, _ = _run(rate=1, replicas=4, seconds=600)
    nodes = 2  # four 4-GPU replicas on 8-GPU nodes
    assert result.gpu_hours == pytest.approx(nodes * 8 * result.duration_seconds / 3600)


@pytest.mark.parametrize("initial", [1, 3, 4])
def test_the_starting_fleet_holds_one_replica_s_accelerators_per_replica(initial: int) -> None:
    """Each starting replica takes its own accelerators once: a node half-filled at the start
    has room for the next replica (4-GPU replicas on 8-GPU nodes)."""
    simulator = FleetSimulator(config(), steady(1, 10), Fixed(initial), initial_replicas=initial)
    per_replica = simulator.model.accelerators_per_replica
    per_node = simulator.config.nodes.accelerators_per_node
    in_use = sum(per_node - node.free for node in simulator.nodes)
    assert in_use == initial * per_replica
    assert all(pod.node is not None for pod in simulator.pods)


def test_scale_up_waits_for_nodes_then_model_load() -> None:
    policy = Fixed(6)
    settings = config(
        nodes=NodeProfile(max_nodes=4, provisioning_sigma=0.0, stockout_probability=0.0)
    )
    result = FleetSimulator(settings, steady(1, 1200), policy, initial_replicas=2).run()
    timeline = result.timeline
    first_six = min(
        t for t, r in zip(timeline.time_seconds, timeline.ready_replicas, strict=True) if r == 6
    )
    # Cluster Autoscaler scans every 10 s, nodes take 240 s, the model loads in 180 s.
    assert 420 <= first_six <= 440
    assert result.nodes_requested == 3


def test_stock_outs_delay_nodes_and_are_not_billed() -> None:
    def ready_and_bill(probability: float) -> tuple[float, float]:
        nodes = NodeProfile(max_nodes=4, provisioning_sigma=0.0, stockout_probability=probability)
        simulator = FleetSimulator(config(nodes=nodes, seed=3), steady(1, 10), Fixed(1), 1)
        node = simulator._add_node()
        return node.ready_at, node.billed_from

    assert ready_and_bill(0.0) == (240.0, 0.0)
    ready_at, billed_from = ready_and_bill(0.9)
    assert ready_at > 240.0
    assert billed_from == ready_at - 240.0  # only the attempt that succeeded is billed


def test_the_policy_sees_metrics_one_scrape_interval_late() -> None:
    _, policy = _run(rate=2, replicas=2, seconds=120)
    for view in policy.views:
        if view.sample is None:
            assert view.now < 2 * config().scrape_interval_seconds
            continue
        age = view.now - view.sample.sampled_at
        assert config().scrape_interval_seconds <= age < 2 * config().scrape_interval_seconds


def test_samples_carry_cumulative_counters_and_histograms() -> None:
    _, policy = _run(rate=5, replicas=2, seconds=300)
    samples = [v.sample for v in policy.views if v.sample is not None]
    assert len(samples) > 5
    for earlier, later in itertools.pairwise(samples):
        assert later.prompt_tokens_total >= earlier.prompt_tokens_total
        assert later.generation_tokens_total >= earlier.generation_tokens_total
        assert later.ttft is not None
        assert earlier.ttft is not None
        pairs = zip(later.ttft.cumulative_counts, earlier.ttft.cumulative_counts, strict=True)
        assert all(a >= b for a, b in pairs)
    first, last = samples[0], samples[-1]
    assert last.ttft is not None
    assert last.itl is not None
    assert last.generation_tokens_total > 0
    assert last.prompt_tokens_total == pytest.approx(500 * last.ttft.count)
    assert last.itl.count > 0
    # A lightly loaded 70B replica: about 19 ms a token, 0.2 s to the first token of 500.
    assert 0.01 < (last.itl.quantile(0.5) or 0) < 0.05
    assert 0.04 < (last.ttft.quantile(0.5, first.ttft) or 0) < 0.25


def test_same_seed_same_result_different_seed_different_provisioning() -> None:
    workload = steady(5, 900)

    def run(seed: int) -> tuple[list[int], int]:
        nodes = NodeProfile(max_nodes=4)
        result = FleetSimulator(config(seed=seed, nodes=nodes), workload, Fixed(8), 1).run()
        return result.timeline.ready_replicas, result.outcomes.met_ttft

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_a_new_replica_receives_only_new_arrivals(monkeypatch: pytest.MonkeyPatch) -> None:
    # One replica, flooded by a burst; a second one comes up while the first still has a long
    # queue. The second must receive only requests that arrive after it is Ready, and the
    # first must keep (and drain) its own queue.
    burst = 2000
    later = steady(5, 300)
    arrivals = (0.0,) * burst + tuple(300 + t for t in later.arrival_seconds)
    total = len(arrivals)
    workload = Workload("step", arrivals, (2000,) * total, (300,) * total)
    settings = config(client_timeout_seconds=900.0)
    received: dict[int, list[int]] = {}
    original = Replica.enqueue

    def recording(self: Replica, request: int) -> None:
        received.setdefault(id(self), []).append(request)
        original(self, request)

    monkeypatch.setattr(Replica, "enqueue", recording)

    class ScaleAt60(Fixed):
        def decide(self, view: FleetView) -> Action:
            self.replicas = 2 if view.now >= 60 else 1
            return super().decide(view)

    simulator = FleetSimulator(settings, workload, ScaleAt60(1), initial_replicas=1)
    first_server = id(simulator.ready[0].server)
    simulator.run()
    book = simulator.book
    second_ready = 60 + 180  # a free slot on the node: only the model load
    (second_server,) = [key for key in received if key != first_server]
    assert min(book.arrival[r] for r in received[second_server]) >= second_ready
    assert set(range(burst)) <= set(received[first_server])
    still_queued = [r for r in range(burst) if book.admitted_at[r] > second_ready]
    assert len(still_queued) > 100  # the burst was still waiting when the second pod came up


def test_round_robin_spreads_requests_evenly() -> None:
    settings = config(load_balancer="round-robin")
    simulator = FleetSimulator(settings, steady(4, 60), Fixed(4), 4)
    servers = [pod.server for pod in simulator.ready]
    simulator.run()
    counts = [s.prompt_tokens_total // 500 for s in servers if s is not None]
    assert max(counts) - min(counts) <= 1


def test_a_64_replica_fleet_serves_its_load() -> None:
    # Five minutes of a 64-replica-scale fleet. How fast it runs is a figure `make bench`
    # prints (against the oracle's run), not something a unit test times.
    settings = config(max_replicas=64, nodes=NodeProfile(max_nodes=32, stockout_probability=0.0))
    workload = replicate(steady(20, 300, inputs=1000, outputs=200), copies=16, seed=1)
    oracle = Oracle(workload, settings)
    assert 20 <= oracle.peak_replicas <= 64
    result = FleetSimulator(settings, workload, oracle, oracle.initial_replicas()).run()
    assert result.outcomes.total == 96_000
    assert result.outcomes.met_ttft / result.outcomes.total > 0.99


def _gateway_run(gateway: str, fraction: float = 1.0, share: float = 0.0):  # type: ignore[no-untyped-def]
    policy = Fixed(1, shed=True, shed_fraction=fraction)
    simulated = config(gateway=gateway, low_priority_share=share)
    return FleetSimulator(simulated, steady(10, 200), policy, 1).run().outcomes


@pytest.mark.parametrize(
    ("gateway", "fraction", "share", "refused", "low_refused", "others_refused"),
    [
        # 2,000 requests while the flag is up the whole run.
        pytest.param("all", 0.3, 0.5, 1.0, 1.0, 1.0, id="all-or-nothing-ignores-the-fraction"),
        pytest.param("fraction", 0.3, 0.0, 0.3, 0.0, 0.3, id="fraction-without-classes"),
        pytest.param("fraction", 0.3, 0.5, 0.3, 0.6, 0.0, id="lower-priority-first"),
        pytest.param("fraction", 0.75, 0.5, 0.75, 1.0, 0.5, id="then-the-others"),
    ],
)
def test_the_gateway_refuses_the_fraction_lower_priority_first(
    gateway: str,
    fraction: float,
    share: float,
    refused: float,
    low_refused: float,
    others_refused: float,
) -> None:
    outcomes = _gateway_run(gateway, fraction, share)
    assert outcomes.shed / outcomes.total == pytest.approx(refused, abs=0.04)
    low = outcomes.low_priority_total
    others = outcomes.total - low
    assert low == pytest.approx(outcomes.total * share, abs=0.04 * outcomes.total)
    if low:
        assert outcomes.low_priority_shed / low == pytest.approx(low_refused, abs=0.05)
    shed_others = outcomes.shed - outcomes.low_priority_shed
    assert shed_others / others == pytest.approx(others_refused, abs=0.05)
