"""Fractional shedding against all-or-nothing, on the simulator (``fleetscale simulate
--compare-gateways``).

Role: run the production planner (``fleetscale`` policy, tuned settings) on one scenario twice,
the same workload and seed, with two gateways: one that refuses every request while the flag is
up ("all": what a gateway that reads only ``status.shedLoad.active`` does) and one that refuses
the share the planner decided, lower-priority requests first ("fraction"). A stable share of
the requests is marked lower priority. The table says how many requests each served and
refused, per class, and the time to first token of those served. Callers: ``sim.command``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fleetscale.sim.engine import SimResult
from fleetscale.sim.model import GatewayMode
from fleetscale.sim.oracle import Oracle
from fleetscale.sim.report import percentile
from fleetscale.sim.runner import POLICIES, run_one
from fleetscale.sim.scenarios import Scenario

MODES: tuple[GatewayMode, ...] = ("all", "fraction")


@dataclass(frozen=True)
class GatewayRow:
    gateway: str
    total: int
    served: int
    shed: int
    timed_out: int
    met_ttft: int
    ttft_p50: float
    ttft_p99: float
    low_total: int
    low_served: int
    low_shed: int
    flag_seconds: int  # the shed flag up (timeline resolution)

    @classmethod
    def of(cls, gateway: str, result: SimResult, step: int) -> GatewayRow:
        o = result.outcomes
        return cls(
            gateway=gateway,
            total=o.total,
            served=o.served,
            shed=o.shed,
            timed_out=o.timed_out,
            met_ttft=o.met_ttft,
            ttft_p50=percentile(o.ttft_seconds, 0.5),
            ttft_p99=percentile(o.ttft_seconds, 0.99),
            low_total=o.low_priority_total,
            low_served=o.low_priority_served,
            low_shed=o.low_priority_shed,
            flag_seconds=sum(result.timeline.shed) * step,
        )


def compare_gateways(
    scenario: Scenario,
    traces_dir: Path | None,
    seed: int,
    low_priority_share: float,
    progress: Callable[[str], None] | None = None,
) -> list[GatewayRow]:
    """One row per gateway mode, same workload, seed and planner."""
    workload = scenario.build(traces_dir, seed, 1.0)
    base = replace(scenario.config, seed=seed, low_priority_share=low_priority_share)
    oracle = Oracle(workload, base)
    rows = []
    for mode in MODES:
        config = replace(base, gateway=mode)
        result = run_one(config, workload, POLICIES["fleetscale"](config, workload, oracle), oracle)
        if progress is not None:
            progress(f"{scenario.name}: gateway {mode} done in {result.wall_seconds:.1f} s")
        rows.append(GatewayRow.of(mode, result, config.record_every_seconds))
    return rows


def markdown(rows: list[GatewayRow]) -> str:
    head = (
        "| gateway | flag up | served | refused (429) | timed out | TTFT within SLO "
        "| TTFT p50 s | TTFT p99 s | lower priority: served, refused | others: served, refused |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        other_total = r.total - r.low_total
        other_served = r.served - r.low_served
        other_shed = r.shed - r.low_shed
        lines.append(
            f"| {r.gateway} | {r.flag_seconds:,} s | {r.served:,} | {r.shed:,} "
            f"| {r.timed_out:,} | {r.met_ttft:,} "
            f"| {r.ttft_p50:.2f} | {r.ttft_p99:.2f} "
            f"| {r.low_served:,}, {r.low_shed:,} of {r.low_total:,} "
            f"| {other_served:,}, {other_shed:,} of {other_total:,} |"
        )
    return head + "\n".join(lines) + "\n"
