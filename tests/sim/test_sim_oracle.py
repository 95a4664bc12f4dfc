"""The oracle: looks ahead exactly one lead time and covers the demand it sees."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sim_builders import Fixed, config, steady

from fleetscale.sim.engine import FleetSimulator
from fleetscale.sim.oracle import Oracle, required_replicas, sliding_max
from fleetscale.sim.policy import FleetView
from fleetscale.sim.workload import Workload


@given(values=st.lists(st.integers(0, 100), max_size=60), ahead=st.integers(0, 20))
def test_sliding_max_is_the_max_of_the_window_ahead(values: list[int], ahead: int) -> None:
    assert sliding_max(values, ahead) == [
        max(values[i : i + ahead + 1]) for i in range(len(values))
    ]


def _burst(at: float, count: int, base: Workload) -> Workload:
    arrivals = sorted(base.arrival_seconds + (at,) * count)
    total = len(arrivals)
    return Workload("burst", tuple(arrivals), (500,) * total, (100,) * total)


@settings(max_examples=15)
@given(extra=st.integers(0, 2000))
def test_more_requests_never_need_fewer_replicas(extra: int) -> None:
    base = steady(5, 600)
    more = _burst(300.0, extra, base)
    less_need = required_replicas(base, config())
    more_need = required_replicas(more, config())
    assert all(m >= b for m, b in zip(more_need, less_need, strict=False))


def _view_at(now: float) -> FleetView:
    simulator = FleetSimulator(config(), steady(1, 10), Fixed(1), 1)
    simulator.now = now
    return simulator.view()


def test_the_oracle_starts_capacity_one_lead_time_early_and_meets_the_slo() -> None:
    quiet = list(steady(2, 1200).arrival_seconds)
    busy = [1200 + i / 40 for i in range(40 * 600)]  # 20x the load from t=1200 s, for 600 s
    total = len(quiet) + len(busy)
    workload = Workload("step", tuple(quiet + busy), (500,) * total, (100,) * total)
    settings = config(max_replicas=8)
    oracle = Oracle(workload, settings)
    early = 1200 - oracle.lead_seconds
    plans = [oracle.decide(_view_at(t)).desired_replicas for t in (0, early - 120, early + 5)]
    assert plans[0] == plans[1] < plans[2]

    result = FleetSimulator(settings, workload, oracle, oracle.initial_replicas()).run()
    assert result.outcomes.met_ttft / result.outcomes.total > 0.99
    late = FleetSimulator(settings, workload, Fixed(1), 1).run()
    assert result.outcomes.met_ttft > late.outcomes.met_ttft
