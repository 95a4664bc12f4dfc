"""`fleetscale simulate`: table on stdout, JSON and plots on disk, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_builders import write_azure_trace

from fleetscale.cli import main


def test_simulate_prints_a_table_and_writes_json_and_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_azure_trace(tmp_path, "azure2023_conv", rows=1200, step_seconds=1.0)
    out = tmp_path / "out"
    argv = ["simulate", "--scenario", "tiny", "--policy", "hpa-gpu", "--policy", "fleetscale"]
    code = main([*argv, "--traces-dir", str(tmp_path), "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "policy" in printed
    assert "fleetscale" in printed
    assert "oracle" in printed
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    scenario = report["scenarios"][0]
    assert scenario["scenario"] == "tiny"
    assert set(scenario["summaries"]) == {"hpa-gpu", "fleetscale", "oracle"}
    assert scenario["summaries"]["oracle"]["gpu_hours_vs_oracle"] == 1.0
    assert (out / "tiny.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_scenario_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_missing_traces_name_the_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["simulate", "--scenario", "tiny", "--traces-dir", str(tmp_path), "--quiet"])
    assert code == 2
    assert "FLEETSCALE_TRACES_DIR" in capsys.readouterr().err


def test_bench_refuses_a_readme_without_markers_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# fleetscale\n", encoding="utf-8")
    code = main(
        ["simulate", "--bench", "--readme", str(readme), "--traces-dir", str(tmp_path), "--quiet"]
    )
    assert code == 1
    assert "bench:start" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# fleetscale\n"


def test_compare_gateways_prints_one_row_per_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_azure_trace(tmp_path, "azure2023_conv", rows=1200, step_seconds=1.0)
    argv = ["simulate", "--compare-gateways", "--scenario", "tiny", "--low-priority-share", "0.3"]
    assert main([*argv, "--traces-dir", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "tiny (seed 1, 30% lower priority)" in printed
    rows = [line for line in printed.splitlines() if line.startswith(("| all ", "| fraction "))]
    assert [row.split("|")[1].strip() for row in rows] == ["all", "fraction"]
    # Both rows account for the same requests: the lower-priority column names its total.
    totals = {row.rsplit("of ", 2)[1].split(" ")[0] for row in rows}
    assert len(totals) == 1
