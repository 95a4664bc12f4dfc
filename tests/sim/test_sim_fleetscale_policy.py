"""fleetscale under simulation: the production planners, unchanged, size replicas and nodes."""

from __future__ import annotations

from sim_builders import config, steady

from fleetscale.sim.engine import FleetSimulator
from fleetscale.sim.fleetscale_policy import FleetscalePolicy, FleetscaleSettings
from fleetscale.sim.model import NodeProfile
from fleetscale.sim.workload import Workload


def _surge() -> Workload:
    quiet = list(steady(2, 300).arrival_seconds)
    busy = [300 + i / 30 for i in range(30 * 900)]  # 15x the rate from 5 min on
    total = len(quiet) + len(busy)
    return Workload("surge", tuple(quiet + busy), (500,) * total, (100,) * total)


def test_a_surge_requests_nodes_before_pods_wait_and_sheds_only_while_capacity_comes() -> None:
    settings = config(
        max_replicas=8,
        nodes=NodeProfile(max_nodes=4, provisioning_sigma=0.0),
        client_timeout_seconds=60.0,
    )
    policy = FleetscalePolicy(settings, FleetscaleSettings.defaults())
    result = FleetSimulator(settings, _surge(), policy, initial_replicas=1).run()
    timeline = result.timeline
    assert policy.decisions > 0
    first_more_nodes = next(
        t for t, n in zip(timeline.time_seconds, timeline.nodes, strict=True) if n > 1
    )
    assert 300 < first_more_nodes <= 300 + 60  # within a poll or two of the queue showing up
    assert max(timeline.ready_replicas) >= 5  # 30 requests/s need five 70B replicas
    assert result.outcomes.shed > 0
    assert result.shed_seconds_while_unconstrained == 0
    assert result.outcomes.timed_out == 0


def test_a_quiet_fleet_shrinks_and_releases_nodes() -> None:
    settings = config(max_replicas=8, nodes=NodeProfile(max_nodes=4))
    policy = FleetscalePolicy(settings, FleetscaleSettings.defaults())
    result = FleetSimulator(settings, steady(1, 2400), policy, initial_replicas=8).run()
    assert result.timeline.desired_replicas[-1] < 8
    assert result.timeline.nodes[-1] < 4
