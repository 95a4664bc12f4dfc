"""The benchmark's scenarios: a workload, a fleet and the SLO, each under one name.

Role: the single list of what ``make bench`` runs and what ``fleetscale simulate --scenario``
accepts, with every trace's scaling written next to it (published figures must say how a trace
was scaled). Callers: ``fleetscale.sim.runner``, ``fleetscale.sim.bench``, the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fleetscale.sim.model import LLAMA_8B_H100, LLAMA_70B_4XH100, NodeProfile, SimConfig
from fleetscale.sim.workload import (
    Workload,
    compress,
    diurnal_rate,
    flash_crowd_rate,
    load_trace,
    replicate,
    synthetic,
    truncate,
)

# (traces directory or None for the default, seed, rate multiplier) -> workload
WorkloadBuilder = Callable[[Path | None, int, float], Workload]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    config: SimConfig
    build: WorkloadBuilder
    scaling: str  # how the trace was scaled, for every published figure


def copies_for(base: int, rate: float) -> int:
    """Copies of a trace for ``rate`` times the scenario's load (at least one)."""
    return max(1, round(base * rate))


def _conv(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    trace = load_trace("azure2023_conv", traces)
    return replicate(trace, copies=copies_for(24, rate), seed=seed)


def _code(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    trace = load_trace("azure2023_code", traces)
    return replicate(trace, copies=copies_for(36, rate), seed=seed)


def _mooncake(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    trace = load_trace("mooncake_synthetic", traces)
    return replicate(trace, copies=copies_for(3, rate), seed=seed)


DIURNAL_DAY_SECONDS = 3 * 3600.0


def _diurnal(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    sizes = load_trace("azure2023_conv", traces)
    rate_function = diurnal_rate(
        mean_rate_per_second=50.0 * rate, peak_to_trough=4.0, day_seconds=DIURNAL_DAY_SECONDS
    )
    return synthetic(
        "diurnal",
        rate_function,
        peak_rate_per_second=80.0 * rate,
        duration_seconds=DIURNAL_DAY_SECONDS,
        sizes_from=sizes,
        seed=seed,
        description="diurnal day (trough to peak 4x), request sizes from azure2023_conv",
    )


def _flash(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    sizes = load_trace("azure2023_conv", traces)
    rate_function = flash_crowd_rate(
        base_rate_per_second=25.0 * rate,
        multiplier=6.0,
        start_seconds=900.0,
        ramp_seconds=60.0,
        hold_seconds=900.0,
        decay_seconds=600.0,
    )
    return synthetic(
        "flash-crowd",
        rate_function,
        peak_rate_per_second=150.0 * rate,
        duration_seconds=3600.0,
        sizes_from=sizes,
        seed=seed,
        description="flash crowd: 6x within 60 s at 15 min, held 15 min, decaying (600 s)",
    )


def _tiny(traces: Path | None, seed: int, rate: float = 1.0) -> Workload:
    """A few minutes of the conversation trace: for smoke tests and examples."""
    return compress(truncate(load_trace("azure2023_conv", traces), 1200.0), 2.0 * rate)


_70B = SimConfig(model=LLAMA_70B_4XH100, nodes=NodeProfile(max_nodes=32), max_replicas=64)
_8B = SimConfig(model=LLAMA_8B_H100, nodes=NodeProfile(max_nodes=8), max_replicas=64)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "conv-70b",
            "Azure conversation trace, 70B",
            _70B,
            _conv,
            "azure2023_conv, 24 copies overlaid with seeded time offsets (24x rate, 1 h)",
        ),
        Scenario(
            "code-70b",
            "Azure code trace (bursty, long prompts), 70B",
            _70B,
            _code,
            "azure2023_code, 36 copies overlaid with seeded time offsets (36x rate, 1 h)",
        ),
        Scenario(
            "diurnal-70b",
            "Diurnal day (compressed to 3 h), 70B",
            _70B,
            _diurnal,
            "synthetic: a day's sinusoid (4x peak to trough) compressed into 3 h, mean 50 req/s,"
            " request sizes resampled from azure2023_conv",
        ),
        Scenario(
            "flash-70b",
            "Flash crowd (6x in a minute), 70B",
            _70B,
            _flash,
            "synthetic: 25 req/s, 6x within 60 s at 15 min, held 15 min, decaying with 10 min"
            " time constant; request sizes resampled from azure2023_conv",
        ),
        Scenario(
            "mooncake-8b",
            "Mooncake trace (long prompts), 8B",
            replace(_8B, ttft_target_seconds=5.0),
            _mooncake,
            "mooncake_synthetic, 3 copies overlaid with seeded time offsets (3x rate, 17 min);"
            " TTFT target 5 s (prompts average 15k tokens)",
        ),
        Scenario(
            "tiny",
            "Smoke test: 10 minutes of the conversation trace, 70B",
            replace(_70B, nodes=NodeProfile(max_nodes=4), max_replicas=8),
            _tiny,
            "azure2023_conv, first 20 min compressed 2x into 10 min",
        ),
    )
}

STANDARD_SET = ("conv-70b", "code-70b", "diurnal-70b", "flash-70b", "mooncake-8b")

# The fleet of each model profile in the robustness sweep: the same GPUs, bounds large enough
# that a doubled load fits (a capped fleet would measure the cap, not the planner).
SWEEP_FLEETS: dict[str, SimConfig] = {
    "70b": SimConfig(model=LLAMA_70B_4XH100, nodes=NodeProfile(max_nodes=96), max_replicas=192),
    "8b": SimConfig(model=LLAMA_8B_H100, nodes=NodeProfile(max_nodes=24), max_replicas=192),
}


def sweep_variant(scenario: Scenario, profile: str) -> Scenario:
    """The scenario on another model profile, with the sweep's fleet bounds."""
    fleet = SWEEP_FLEETS[profile]
    config = replace(
        scenario.config,
        model=fleet.model,
        nodes=fleet.nodes,
        max_replicas=fleet.max_replicas,
    )
    base = scenario.name.rsplit("-", 1)[0]
    return replace(scenario, name=f"{base}-{profile}", config=config)
