"""The benchmark's report: the README section, the verdicts, the tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleetscale.sim.bench import (
    END_MARKER,
    START_MARKER,
    MarkersMissingError,
    best_keda,
    judge,
    speed,
    splice_readme,
)
from fleetscale.sim.report import PolicySummary, markdown_table, percentile, text_table
from fleetscale.sim.runner import ScenarioRun
from fleetscale.sim.scenarios import SCENARIOS
from fleetscale.sim.workload import Workload


def test_splice_replaces_only_the_section_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\nintro\n{START_MARKER}\nold results\n{END_MARKER}\nfooter\n", encoding="utf-8"
    )
    splice_readme(readme, "new results\n")
    assert readme.read_text(encoding="utf-8") == (
        f"# Title\nintro\n{START_MARKER}\nnew results\n{END_MARKER}\nfooter\n"
    )
    splice_readme(readme, "newer\n")
    assert readme.read_text(encoding="utf-8").count("newer") == 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# no markers\n", id="none"),
        pytest.param(f"{START_MARKER}\n", id="start only"),
        pytest.param(f"{END_MARKER}\n{START_MARKER}\n", id="reversed"),
    ],
)
def test_splice_fails_clearly_without_both_markers(tmp_path: Path, text: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(MarkersMissingError, match="bench:start"):
        splice_readme(readme, "results\n")
    assert readme.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([], 0.5, 0.0, id="empty"),
        pytest.param([3.0, 1.0, 2.0], 0.5, 2.0, id="median"),
        pytest.param([float(i) for i in range(1, 101)], 0.99, 99.0, id="p99"),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def _summary(policy: str, slo: float) -> PolicySummary:
    return PolicySummary(policy, 100, slo, 0.01, 0.0, 0.0, 1.5, 1.9, 10.0, 1.1, 3, 2, 0.0, 0.1)


def test_tables_carry_every_policy_and_metric() -> None:
    rows = [_summary("fleetscale", 0.995), _summary("oracle", 1.0)]
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| policy | SLO %")
    assert "| fleetscale | 99.50 | 1.00 |" in table
    assert len(text_table(rows).splitlines()) == 3


def _run_with(summaries: dict[str, PolicySummary]) -> ScenarioRun:
    workload = Workload("w", (0.0,), (1,), (1,))
    return ScenarioRun(SCENARIOS["tiny"], workload, [1], {}, summaries)


def _policy(name: str, slo: float, gpu_hours: float, **extra: float) -> PolicySummary:
    return replace(_summary(name, slo), gpu_hours=gpu_hours, **extra)  # type: ignore[arg-type]


def test_the_verdict_compares_with_the_oracle_the_affordable_baselines_and_best_keda() -> None:
    summaries = {
        "fleetscale": _policy("fleetscale", 0.99, 110.0),
        "hpa-gpu": _policy("hpa-gpu", 1.0, 300.0),  # better SLO, but over 1.15x the oracle
        "keda-queue-3": _policy("keda-queue-3", 0.60, 200.0),
        "keda-queue-5": _policy("keda-queue-5", 0.70, 160.0),  # best-tuned KEDA: best SLO
        "static": _policy("static", 0.98, 114.0),
        "oracle": _policy("oracle", 0.992, 100.0),
    }
    verdict = judge(_run_with(summaries))
    assert verdict.passed
    assert "keda-queue-5" in verdict.gpu_hours_vs_best_keda[1]
    assert "static" in verdict.slo_vs_baselines[1]
    best = best_keda(summaries)
    assert best is not None
    assert best.policy == "keda-queue-5"


_CHECKS = (
    "slo_vs_oracle",
    "slo_vs_baselines",
    "gpu_hours_vs_oracle",
    "gpu_hours_vs_best_keda",
    "scale_actions_vs_oracle",
    "shed_only_when_constrained",
)


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        pytest.param({"slo_attainment": 0.984}, ["slo_vs_oracle"], id="half a point under"),
        pytest.param({"static_slo": 0.995}, ["slo_vs_baselines"], id="under an affordable one"),
        pytest.param({"keda_gpu_hours": 140.0}, ["gpu_hours_vs_best_keda"], id="close to KEDA"),
        pytest.param({"gpu_hours": 116.0}, ["gpu_hours_vs_oracle"], id="over 1.15x oracle"),
        pytest.param({"scale_actions": 7}, ["scale_actions_vs_oracle"], id="twice the actions"),
        pytest.param(
            {"shed_requests_while_unconstrained": 3, "shed_seconds_while_unconstrained": 15.0},
            ["shed_only_when_constrained"],
            id="shed while unconstrained",
        ),
        pytest.param(
            {"shed_seconds_while_unconstrained": 15.0},
            [],
            id="flag up while unconstrained, nothing shed",
        ),
        pytest.param({"timeout_rate": 0.001}, ["shed_only_when_constrained"], id="timeouts"),
    ],
)
def test_each_bar_can_fail_on_its_own(change: dict[str, float], failing: list[str]) -> None:
    change = dict(change)  # the table is shared: never mutate it
    keda_gpu_hours = change.pop("keda_gpu_hours", 160.0)
    static_slo = change.pop("static_slo", 0.98)
    summaries = {
        "fleetscale": replace(_policy("fleetscale", 0.99, 110.0), **change),  # type: ignore[arg-type]
        "keda-queue-5": _policy("keda-queue-5", 0.70, keda_gpu_hours),
        "static": _policy("static", static_slo, 112.0),
        "oracle": _policy("oracle", 0.99, 100.0),
    }
    verdict = judge(_run_with(summaries))
    assert [name for name in _CHECKS if not getattr(verdict, name)[0]] == failing


def test_the_speed_is_reported_against_the_oracles_run() -> None:
    workload = Workload("w", (0.0, 1800.0, 3600.0), (1, 1, 1), (1, 1, 1))
    summaries = {
        "fleetscale": replace(_policy("fleetscale", 0.99, 110.0), wall_seconds=12.0),
        "oracle": replace(_policy("oracle", 1.0, 100.0), wall_seconds=10.0),
    }
    text = speed(ScenarioRun(SCENARIOS["tiny"], workload, [1], {}, summaries))
    assert text.startswith("100 requests, 1.00 h simulated: fleetscale in 12.0 s (300x real time)")
    assert text.endswith("oracle in 10.0 s; fleetscale / oracle 1.20x")


def test_the_signals_line_says_what_bound_the_batch() -> None:
    from sim_builders import Fixed, config, steady

    from fleetscale.sim.bench import signals_line
    from fleetscale.sim.engine import FleetSimulator
    from fleetscale.sim.report import summarize

    result = FleetSimulator(config(), steady(40, 120, 1000, 300), Fixed(1), 1).run()
    run = ScenarioRun(
        SCENARIOS["tiny"],
        steady(1, 1),
        [1],
        {"fleetscale": result},
        {"fleetscale": summarize(result, None)},
    )
    line = signals_line(run)
    assert line.startswith("Signals as vLLM exports them (sequence cap 1,024 per replica): ")
    assert "fleetscale: KV-cache usage mean" in line
    assert "static" not in line
