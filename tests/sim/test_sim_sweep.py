"""The robustness sweep: its cases, its figures per policy, and what it says about the bar."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetscale.sim.bench import judge_summaries
from fleetscale.sim.report import PolicySummary, reversals
from fleetscale.sim.scenarios import SCENARIOS, SWEEP_FLEETS, copies_for, sweep_variant
from fleetscale.sim.sweep import Case, CaseResult, cases, figures, render


def test_cases_cover_every_scenario_profile_rate_and_seed() -> None:
    found = cases(["conv-70b", "mooncake-8b"], ["70b", "8b"], [0.5, 2.0], [1, 2])
    assert len(found) == 2 * 2 * 2 * 2
    assert Case("mooncake-70b", 2.0, 2) in found
    assert Case("conv-8b", 0.5, 1) in found


def test_a_variant_runs_the_other_profile_with_room_for_a_doubled_load() -> None:
    variant = sweep_variant(SCENARIOS["mooncake-8b"], "70b")
    assert variant.name == "mooncake-70b"
    assert variant.config.model == SWEEP_FLEETS["70b"].model
    assert variant.config.max_replicas == SWEEP_FLEETS["70b"].max_replicas
    assert variant.config.ttft_target_seconds == 5.0  # the scenario's SLO stays


@pytest.mark.parametrize(
    ("base", "rate", "copies"),
    [
        pytest.param(24, 0.5, 12, id="half"),
        pytest.param(3, 0.5, 2, id="rounded"),
        pytest.param(36, 2.0, 72, id="double"),
        pytest.param(1, 0.1, 1, id="at-least-one"),
    ],
)
def test_copies_scale_the_rate(base: int, rate: float, copies: int) -> None:
    assert copies_for(base, rate) == copies


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param([(0, 2), (100, -1)], 1, id="up-then-down-within-the-window"),
        pytest.param([(0, 2), (400, -1)], 0, id="after-the-window"),
        pytest.param([(0, -2), (60, -1), (90, 3)], 1, id="down-down-up"),
        pytest.param([(0, 1), (15, 1), (30, 1)], 0, id="one-direction"),
        pytest.param([], 0, id="none"),
    ],
)
def test_reversals_count_turns_within_the_window(
    changes: list[tuple[float, int]], expected: int
) -> None:
    assert reversals(changes) == expected


def _summary(policy: str, slo: float, gpu_hours: float, actions: int = 4) -> PolicySummary:
    return PolicySummary(
        policy, 100, slo, 0.0, 0.0, 0.0, 1.0, 1.0, gpu_hours, None, actions, 1, 0.0, 0.1
    )


def _result(name: str, ours_slo: float, ours_cost: float) -> CaseResult:
    summaries = {
        "fleetscale": _summary("fleetscale", ours_slo, ours_cost),
        "static": _summary("static", 0.999, 130.0, 0),
        "oracle": _summary("oracle", 1.0, 100.0),
    }
    return CaseResult(Case(name, 1.0, 1), summaries, judge_summaries(name, summaries))


def test_figures_are_the_median_and_the_worst_case() -> None:
    results = [
        _result("a", 0.999, 100.0),
        _result("b", 0.990, 120.0),
        _result("c", 0.998, 105.0),
    ]
    found = figures(results, "fleetscale")
    assert found.slo_worst == 0.990
    assert found.slo_median == 0.998
    assert found.cost_worst == pytest.approx(1.2)
    assert found.cost_median == pytest.approx(1.05)


def test_render_names_the_worst_run_of_each_bar() -> None:
    results = [_result("a", 0.999, 100.0), _result("b", 0.990, 120.0)]
    text = render(results, ["fleetscale", "static", "oracle"])
    assert "fleetscale meets every bar in 1 of 2 runs" in text
    assert "| <= 1.15x oracle GPU-h | 1 | b: 1.20x" in text
    row = next(line for line in text.splitlines() if line.startswith("| fleetscale |"))
    assert "99.00%" in row  # the worst SLO
    assert replace(results[0].case, seed=2) != results[0].case


def test_render_says_which_runs_it_covers_and_lists_each() -> None:
    results = [_result("a", 0.999, 100.0), _result("b", 0.990, 120.0)]
    text = render(results, ["fleetscale", "static", "oracle"])
    assert "2 runs (a, b; at 1x the load; seeds 1)" in text
    row = next(line for line in text.splitlines() if line.startswith("| b | "))
    assert row == "| b | 99.00% (100.00%) | 1.20x | - | 4 (4) | 0 | 1, 3 |"
