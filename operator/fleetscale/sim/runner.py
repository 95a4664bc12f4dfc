"""Run scenarios under policies, by name: the entry point of the CLI and the benchmark.

Role: build each policy with the settings its real counterpart would have for the scenario's
fleet, run the simulator, and summarize against the oracle of the same workload. Callers:
``fleetscale simulate``, ``fleetscale.sim.bench``, tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetscale.sim.baselines import (
    HpaGpuUtilization,
    HpaPodsAverage,
    KedaMetric,
    KedaQueueDepth,
    KnativeKpa,
    StaticPeak,
    concurrency,
    concurrency_per_pod,
    kv_cache_usage,
)
from fleetscale.sim.engine import FleetSimulator, SimResult
from fleetscale.sim.model import SimConfig
from fleetscale.sim.oracle import Oracle, concurrency_per_replica, kv_usage_percent_per_replica
from fleetscale.sim.policy import Policy
from fleetscale.sim.report import PolicySummary, summarize, to_json
from fleetscale.sim.scenarios import Scenario
from fleetscale.sim.workload import Workload

PolicyFactory = Callable[[SimConfig, Workload, Oracle], Policy]


def _fleetscale(config: SimConfig, workload: Workload, oracle: Oracle) -> Policy:
    from fleetscale.sim.fleetscale_policy import FleetscalePolicy, FleetscaleSettings

    return FleetscalePolicy(config, FleetscaleSettings.defaults())


def _fleetscale_offered(config: SimConfig, workload: Workload, oracle: Oracle) -> Policy:
    from fleetscale.sim.fleetscale_policy import FleetscalePolicy, FleetscaleSettings

    return FleetscalePolicy(
        config, FleetscaleSettings(label="fleetscale-offered", offered_load=True)
    )


def _fleetscale_forecast(config: SimConfig, workload: Workload, oracle: Oracle) -> Policy:
    from fleetscale.sim.fleetscale_policy import FleetscalePolicy, FleetscaleSettings

    # The season is the workload's day (the diurnal scenario compresses one into 3 h); a
    # user sets it to theirs (a day, by default).
    season = round(workload.duration_seconds) if workload.name == "diurnal" else 86400
    return FleetscalePolicy(
        config,
        FleetscaleSettings(
            label="fleetscale-forecast", forecast=True, forecast_season_seconds=season
        ),
    )


def _keda_concurrency(share: float) -> PolicyFactory:
    """KEDA on the requests in the system, its target a share of what a replica holds when
    the fleet is sized as the traffic needs (a user who tuned it on this traffic)."""

    def build(c: SimConfig, w: Workload, o: Oracle) -> Policy:
        target = max(1.0, share * concurrency_per_replica(w, c))
        return KedaMetric(
            f"keda-conc-{round(share * 100)}", concurrency, c.min_replicas, c.max_replicas, target
        )

    return build


POLICIES: dict[str, PolicyFactory] = {
    "fleetscale": _fleetscale,
    "fleetscale-offered": _fleetscale_offered,
    "fleetscale-forecast": _fleetscale_forecast,
    "hpa-gpu": lambda c, w, o: HpaGpuUtilization(c.min_replicas, c.max_replicas),
    # The HPA on KV-cache usage and on requests per pod, their targets what a replica shows
    # when the fleet is sized as the traffic needs, as a user would tune them.
    "hpa-kv": lambda c, w, o: HpaPodsAverage(
        "hpa-kv",
        kv_cache_usage,
        c.min_replicas,
        c.max_replicas,
        max(1.0, kv_usage_percent_per_replica(w, c)),
    ),
    "hpa-conc": lambda c, w, o: HpaPodsAverage(
        "hpa-conc",
        concurrency_per_pod,
        c.min_replicas,
        c.max_replicas,
        max(1.0, concurrency_per_replica(w, c)),
    ),
    "keda-queue-3": lambda c, w, o: KedaQueueDepth(c.min_replicas, c.max_replicas, threshold=3),
    "keda-queue-5": lambda c, w, o: KedaQueueDepth(c.min_replicas, c.max_replicas, threshold=5),
    "keda-queue-10": lambda c, w, o: KedaQueueDepth(c.min_replicas, c.max_replicas, threshold=10),
    "keda-conc-50": _keda_concurrency(0.5),
    "keda-conc-75": _keda_concurrency(0.75),
    "keda-conc-100": _keda_concurrency(1.0),
    # Knative's target (70% of containerConcurrency) is set to the concurrency per replica of
    # a fleet sized as the traffic needs, as a user would tune it.
    "kpa": lambda c, w, o: KnativeKpa(
        c.min_replicas, c.max_replicas, max(1, round(concurrency_per_replica(w, c) / 0.7))
    ),
    "static": lambda c, w, o: StaticPeak(o.peak_replicas, c.replicas_per_node),
    "oracle": lambda c, w, o: o,
}
ALL_POLICIES = tuple(POLICIES)
KEDA_POLICIES = (
    "keda-queue-3",
    "keda-queue-5",
    "keda-queue-10",
    "keda-conc-50",
    "keda-conc-75",
    "keda-conc-100",
)
FLEETSCALE_VARIANTS = ("fleetscale-offered", "fleetscale-forecast")


@dataclass
class ScenarioRun:
    """Every policy's result on one scenario, and the demand they all faced."""

    scenario: Scenario
    workload: Workload
    demand_replicas: list[int]  # the oracle's replicas needed, per second
    results: dict[str, SimResult]
    summaries: dict[str, PolicySummary]

    def to_json(self) -> dict[str, Any]:
        step = self.scenario.config.record_every_seconds
        return {
            "scenario": self.scenario.name,
            "title": self.scenario.title,
            "scaling": self.scenario.scaling,
            "workload": self.workload.description,
            "requests": len(self.workload),
            "model": self.scenario.config.model.name,
            "ttft_target_seconds": self.scenario.config.ttft_target_seconds,
            "summaries": {name: to_json(s) for name, s in self.summaries.items()},
            "timeline": {
                "demand_replicas": self.demand_replicas[::step],
                **{
                    name: {
                        "time_seconds": r.timeline.time_seconds,
                        "arrivals_per_second": r.timeline.arrivals_per_second,
                        "desired_replicas": r.timeline.desired_replicas,
                        "ready_replicas": r.timeline.ready_replicas,
                        "nodes": r.timeline.nodes,
                        "waiting": r.timeline.waiting,
                        "running": r.timeline.running,
                        "kv_cache_usage_percent": r.timeline.kv_cache_usage_percent,
                        "preemptions": r.timeline.preemptions,
                        "shed": r.timeline.shed,
                    }
                    for name, r in self.results.items()
                },
            },
        }


def run_one(config: SimConfig, workload: Workload, policy: Policy, oracle: Oracle) -> SimResult:
    """One run; every policy starts from the fleet the oracle needs at first (static: its
    peak fleet, bought up front)."""
    started = time.perf_counter()
    initial = policy.replicas if isinstance(policy, StaticPeak) else oracle.initial_replicas()
    result = FleetSimulator(config, workload, policy, initial).run()
    result.wall_seconds = time.perf_counter() - started
    return result


def run_scenario(
    scenario: Scenario,
    policies: Sequence[str] = ALL_POLICIES,
    traces_dir: Path | None = None,
    seed: int = 1,
    config: SimConfig | None = None,
    progress: Callable[[str], None] | None = None,
    rate: float = 1.0,
) -> ScenarioRun:
    """Run ``policies`` (the oracle always runs too: every cost is relative to it) on the
    scenario's workload at ``rate`` times its load."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {', '.join(POLICIES)}")
    config = replace(config or scenario.config, seed=seed)
    workload = scenario.build(traces_dir, seed, rate)
    oracle = Oracle(workload, config)
    names = ["oracle", *[p for p in policies if p != "oracle"]]
    results: dict[str, SimResult] = {}
    for name in names:
        policy = oracle if name == "oracle" else POLICIES[name](config, workload, oracle)
        results[name] = run_one(config, workload, policy, oracle)
        results[name].policy = name
        if progress is not None:
            progress(f"{scenario.name}: {name} done in {results[name].wall_seconds:.1f} s")
    oracle_hours = results["oracle"].gpu_hours
    ordered = [p for p in policies if p in results] + ([] if "oracle" in policies else ["oracle"])
    summaries = {name: summarize(results[name], oracle_hours) for name in ordered}
    return ScenarioRun(scenario, workload, oracle.required, results, summaries)


def write_json(runs: Sequence[ScenarioRun], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"scenarios": [run.to_json() for run in runs]}, indent=1) + "\n",
        encoding="utf-8",
    )
