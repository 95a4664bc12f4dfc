"""Workloads: the real trace formats, rate scaling, and the seeded synthetic shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sim_builders import steady, write_azure_trace

from fleetscale.sim.workload import (
    TRACES_DIR_ENV,
    Workload,
    compress,
    default_traces_dir,
    diurnal_rate,
    flash_crowd_rate,
    load_trace,
    replicate,
    synthetic,
    truncate,
)


def test_azure_trace_parses_seven_fraction_digits(tmp_path: Path) -> None:
    write_azure_trace(tmp_path, "azure2023_conv", rows=5, step_seconds=0.25)
    workload = load_trace("azure2023_conv", tmp_path)
    assert workload.arrival_seconds == pytest.approx((0.0, 0.25, 0.5, 0.75, 1.0))
    assert workload.input_tokens[:2] == (400, 401)
    assert workload.output_tokens[:2] == (50, 51)


def test_mooncake_trace_reads_milliseconds(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 2000, "input_length": 30, "output_length": 4, "hash_ids": [1]},
        {"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]},
    ]
    (tmp_path / "mooncake_synthetic.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    workload = load_trace("mooncake_synthetic", tmp_path)
    assert workload.arrival_seconds == (0.0, 2.0)
    assert workload.input_tokens == (10, 30)
    assert workload.prefix_hashes == ((0,), (1,))
    assert workload.prefix_block_tokens == 512


def test_replicated_copies_share_no_prefix_with_the_original() -> None:
    base = Workload(
        "w", (0.0, 1.0, 2.0), (512, 512, 1024), (1, 1, 1), prefix_hashes=((0,), (0,), (0, 1))
    )
    scaled = replicate(base, copies=3, seed=1)
    assert scaled.prefix_hashes is not None
    firsts = {hashes[0] for hashes in scaled.prefix_hashes}
    assert len(firsts) == 3  # one shared first block per copy, none across copies
    assert truncate(scaled, 0.5).prefix_hashes == scaled.prefix_hashes[: len(truncate(scaled, 0.5))]


def test_missing_trace_names_the_directory_and_the_override(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=TRACES_DIR_ENV):
        load_trace("azure2023_code", tmp_path)


def test_traces_dir_defaults_next_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACES_DIR_ENV, raising=False)
    assert default_traces_dir(Path("/src/repo")) == Path("/src/shared/traces")
    monkeypatch.setenv(TRACES_DIR_ENV, "/data/traces")
    assert default_traces_dir(Path("/src/repo")) == Path("/data/traces")


@given(copies=st.integers(min_value=1, max_value=6), seed=st.integers(0, 1000))
def test_replicate_multiplies_requests_and_keeps_order_and_span(copies: int, seed: int) -> None:
    base = steady(rate_per_second=2, seconds=30)
    scaled = replicate(base, copies, seed)
    assert len(scaled) == copies * len(base)
    assert list(scaled.arrival_seconds) == sorted(scaled.arrival_seconds)
    assert scaled.duration_seconds <= base.duration_seconds
    assert sorted(scaled.input_tokens) == sorted(base.input_tokens * copies)
    assert replicate(base, copies, seed) == scaled


def test_compress_and_truncate() -> None:
    base = steady(rate_per_second=1, seconds=100)
    assert compress(base, 4).duration_seconds == pytest.approx(base.duration_seconds / 4)
    assert len(truncate(base, 10)) == 10


def test_diurnal_rate_runs_from_trough_to_peak_and_keeps_the_mean() -> None:
    rate = diurnal_rate(mean_rate_per_second=10, peak_to_trough=4, day_seconds=1000)
    assert rate(500) == pytest.approx(4 * rate(0))
    mean = sum(rate(t) for t in range(1000)) / 1000
    assert mean == pytest.approx(10, rel=1e-3)


def test_flash_crowd_jumps_within_the_ramp_holds_then_decays() -> None:
    rate = flash_crowd_rate(
        10, 6, start_seconds=100, ramp_seconds=60, hold_seconds=300, decay_seconds=200
    )
    assert rate(99) == 10
    assert rate(160) == pytest.approx(60)
    assert rate(400) == pytest.approx(60)
    assert 10 < rate(700) < 60
    assert rate(5000) == pytest.approx(10, abs=0.01)


def test_synthetic_is_deterministic_for_a_seed_and_follows_the_rate() -> None:
    sizes = steady(1, 50)
    rate = flash_crowd_rate(
        5, 5, start_seconds=200, ramp_seconds=1, hold_seconds=1000, decay_seconds=1
    )
    one = synthetic("x", rate, 25, 400, sizes, seed=3, description="")
    assert one == synthetic("x", rate, 25, 400, sizes, seed=3, description="")
    assert one != synthetic("x", rate, 25, 400, sizes, seed=4, description="")
    before = sum(1 for t in one.arrival_seconds if t < 200)
    after = sum(1 for t in one.arrival_seconds if t >= 200)
    assert before == pytest.approx(1000, rel=0.15)
    assert after == pytest.approx(5000, rel=0.1)
