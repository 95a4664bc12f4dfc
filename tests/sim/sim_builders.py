"""Small workloads and fleets for the simulator's tests (seconds, not minutes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fleetscale.sim.model import LLAMA_70B_4XH100, NodeProfile, SimConfig
from fleetscale.sim.policy import Action, FleetView, NodeMode
from fleetscale.sim.workload import Workload

# Fixed model load and no stock-outs, so that tests can time scale-ups exactly.
STEADY_70B = replace(LLAMA_70B_4XH100, model_load_sigma=0.0)
SMALL = SimConfig(
    model=STEADY_70B,
    nodes=NodeProfile(max_nodes=4, stockout_probability=0.0),
    max_replicas=8,
    client_timeout_seconds=30.0,
)


def steady(
    rate_per_second: float, seconds: float, inputs: int = 500, outputs: int = 100
) -> Workload:
    """Evenly spaced requests of one size."""
    count = int(rate_per_second * seconds)
    return Workload(
        name="steady",
        arrival_seconds=tuple(i / rate_per_second for i in range(count)),
        input_tokens=(inputs,) * count,
        output_tokens=(outputs,) * count,
    )


@dataclass
class Fixed:
    """A policy that holds a replica count and a shed flag, and records what it saw."""

    replicas: int
    shed: bool = False
    shed_queue_per_replica: float = 0.0
    shed_fraction: float = 1.0
    node_mode: NodeMode = "reactive"
    node_scale_down_delay_seconds: float = 0.0
    interval_seconds: int = 15
    name: str = "fixed"

    def __post_init__(self) -> None:
        self.views: list[FleetView] = []

    def decide(self, view: FleetView) -> Action:
        self.views.append(view)
        return Action(
            self.replicas,
            shed=self.shed,
            shed_queue_per_replica=self.shed_queue_per_replica,
            shed_fraction=self.shed_fraction,
        )


def config(**changes: object) -> SimConfig:
    return replace(SMALL, **changes)  # type: ignore[arg-type]


def write_azure_trace(directory: Path, name: str, rows: int, step_seconds: float = 0.5) -> Path:
    """An Azure-format trace (seven fractional digits, no trailing newline), like the real one."""
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for index in range(rows):
        seconds = index * step_seconds
        minute, second = divmod(seconds, 60)
        lines.append(
            f"2023-11-16 18:{int(minute):02d}:{second:010.7f},{400 + index % 7},{50 + index % 5}"
        )
    path = directory / f"{name}.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
