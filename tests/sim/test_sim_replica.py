"""The replica model: vLLM V1's admission, chunked prefill, preemption and metrics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetscale.sim.model import LLAMA_8B_H100, LLAMA_70B_4XH100, ModelProfile
from fleetscale.sim.policy import Histogram
from fleetscale.sim.replica import (
    ITL_BUCKETS_SECONDS,
    HistogramCounts,
    Replica,
    RequestBook,
)
from fleetscale.sim.validation import published_figures, run_load, validate


def _replica(
    profile: ModelProfile,
    arrivals: list[float],
    inputs: list[int],
    outputs: list[int],
    hashes: list[tuple[int, ...]] | None = None,
) -> Replica:
    book = RequestBook(arrivals, inputs, outputs, hashes, 512 if hashes else 0)
    return Replica(profile, book)


def _conversation(count: int) -> tuple[list[float], list[int], list[int]]:
    """Conversation-sized requests (about the Azure trace's means: 1,150 in, 210 out)."""
    inputs = [800 + (i * 37) % 700 for i in range(count)]
    outputs = [150 + (i * 53) % 120 for i in range(count)]
    return [0.0] * count, inputs, outputs


@pytest.mark.parametrize(
    ("model", "layers", "kv_heads", "expected_kib"),
    [
        pytest.param(LLAMA_8B_H100, 32, 8, 128, id="8B: 128 KiB a token"),
        pytest.param(LLAMA_70B_4XH100, 80, 8, 320, id="70B: 320 KiB a token"),
    ],
)
def test_kv_bytes_per_token_come_from_the_model_shape(
    model: ModelProfile, layers: int, kv_heads: int, expected_kib: int
) -> None:
    assert model.model.layers == layers
    assert model.model.kv_heads == kv_heads
    assert model.kv_bytes_per_token == expected_kib * 1024


def test_an_h100_holds_about_400k_tokens_of_llama_8b() -> None:
    assert 400_000 <= LLAMA_8B_H100.kv_cache_tokens <= 460_000
    assert LLAMA_8B_H100.num_gpu_blocks == LLAMA_8B_H100.kv_cache_tokens // 16


def test_a_conversation_workload_binds_on_kv_blocks_not_on_the_sequence_cap() -> None:
    replica = _replica(LLAMA_8B_H100, *_conversation(1500))
    for request in range(1500):
        replica.enqueue(request)
    usage, running, waiting = [], [], []
    for tick in range(1, 30):
        replica.advance_to(float(tick))
        usage.append(replica.kv_cache_usage)
        running.append(replica.num_running)
        waiting.append(replica.num_waiting)
    assert max(usage) > 0.9  # the KV cache is full ...
    assert max(running) < LLAMA_8B_H100.max_num_seqs / 2  # ... far below 1,024 sequences
    assert 250 <= max(running) <= 450  # about 300 conversation-sized requests, not 64
    assert min(waiting[:10]) > 0  # and the rest wait


def test_preempted_requests_go_back_to_the_head_and_count_as_waiting() -> None:
    # Long answers grow past the KV cache: vLLM preempts the last admitted request.
    count = 600
    replica = _replica(LLAMA_8B_H100, [0.0] * count, [500] * count, [2000] * count)
    for request in range(count):
        replica.enqueue(request)
    saw_preempted_waiting = False
    peak_usage = 0.0
    for tick in range(1, 120):
        replica.advance_to(float(tick))
        peak_usage = max(peak_usage, replica.kv_cache_usage)
        if replica.preempted:
            saw_preempted_waiting = True
            assert replica.num_waiting >= len(replica.preempted)
    assert peak_usage > 0.97
    assert replica.preemptions_total > 0
    assert saw_preempted_waiting
    # Every request still finishes, each with all its output.
    replica.advance_to(3600.0)
    book = replica.book
    assert all(book.generated[r] == 2000 for r in range(count))
    assert replica.generation_tokens_total >= count * 2000


def test_a_decode_stretch_gives_the_same_times_as_single_steps() -> None:
    def finish_times(horizon_step: float) -> list[float]:
        replica = _replica(
            LLAMA_70B_4XH100,
            [0.0] * 50,
            [1000 + 10 * i for i in range(50)],
            [100 + 7 * i for i in range(50)],
        )
        for request in range(50):
            replica.enqueue(request)
        now = 0.0
        while not replica.idle:
            now += horizon_step
            replica.advance_to(now)
        return replica.book.finished_at

    coarse = finish_times(10.0)
    fine = finish_times(1e-4)  # every call runs at most one step
    assert coarse == pytest.approx(fine, rel=1e-9)


def test_long_prompts_slow_everyone_sharing_the_step() -> None:
    def mean_itl(with_long_prompts: bool) -> float:
        count = 40
        inputs = [200] * count
        arrivals = [0.0] * count
        if with_long_prompts:
            inputs += [30_000] * 4
            arrivals += [1.0, 2.0, 3.0, 4.0]
        outputs = [400] * len(inputs)
        replica = _replica(LLAMA_8B_H100, arrivals, inputs, outputs)
        for request in range(count):
            replica.enqueue(request)
        for tick in range(1, 60):
            for request in range(count, len(inputs)):
                if arrivals[request] == tick:
                    replica.enqueue(request)
            replica.advance_to(float(tick))
        book = replica.book
        return (
            sum((book.finished_at[r] - book.first_token_at[r]) / 399 for r in range(count)) / count
        )

    assert mean_itl(True) > 1.3 * mean_itl(False)


def test_decode_slows_with_context_length() -> None:
    short = run_load(LLAMA_8B_H100, 64, 200, 200)
    long = run_load(LLAMA_8B_H100, 64, 8000, 200)
    assert long.mean_itl_seconds > 1.5 * short.mean_itl_seconds


def test_batch_slowdown_is_moderate_at_50_sequences() -> None:
    # NVIDIA's NIM tables: inter-token latency about 1.3x the single-stream one at 50.
    lone = run_load(LLAMA_8B_H100, 1, 200, 200)
    fifty = run_load(LLAMA_8B_H100, 50, 200, 200)
    assert 1.05 < fifty.mean_itl_seconds / lone.mean_itl_seconds < 1.5


def test_prefix_cache_hits_skip_the_shared_prompt() -> None:
    shared = tuple(range(30))  # 30 blocks of 512 tokens
    hashes = [shared, shared]
    replica = _replica(LLAMA_8B_H100, [0.0, 5.0], [15_360, 15_360], [10, 10], hashes)
    replica.enqueue(0)
    replica.advance_to(5.0)
    replica.enqueue(1)
    replica.advance_to(10.0)
    book = replica.book
    cold = book.first_token_at[0] - book.arrival[0]
    warm = book.first_token_at[1] - book.arrival[1]
    assert replica.prefix_hit_tokens_total == 15_359
    assert warm < cold / 5


def test_the_token_budget_caps_one_step() -> None:
    profile = replace(LLAMA_8B_H100, max_num_batched_tokens=2048)
    replica = _replica(profile, [0.0], [8192], [2])
    replica.enqueue(0)
    replica.advance_to(1e-9)  # one step
    assert replica.book.computed[0] == 2048
    assert replica.num_running == 1


def test_clients_that_wait_too_long_are_dropped_from_the_queue() -> None:
    replica = _replica(LLAMA_8B_H100, *_conversation(3000))
    replica.book.timeout_seconds = 5.0
    for request in range(3000):
        replica.enqueue(request)
    replica.advance_to(10.0)
    replica.expire_waiting(10.0)
    assert replica.timed_out_count > 0
    assert not replica.waiting


@pytest.mark.parametrize(
    ("observations", "fraction", "expected"),
    [
        pytest.param([0.02] * 10, 0.5, 0.0175, id="inside one bucket: linear"),
        pytest.param([0.02] * 9 + [3.0], 0.95, 3.75, id="a sparse bucket: linear too"),
        pytest.param([200.0], 0.5, 80.0, id="past the last bound: the last bound"),
    ],
)
def test_histogram_quantile_reads_like_prometheus(
    observations: list[float], fraction: float, expected: float
) -> None:
    counts = HistogramCounts(ITL_BUCKETS_SECONDS)
    for value in observations:
        counts.observe(value)
    cumulative = tuple(sum(counts.counts[: i + 1]) for i in range(len(counts.counts)))
    histogram = Histogram(ITL_BUCKETS_SECONDS, cumulative, counts.sum_seconds)
    assert histogram.quantile(fraction) == pytest.approx(expected)


def test_a_ramp_of_steps_lands_in_the_right_buckets() -> None:
    ramp = HistogramCounts(ITL_BUCKETS_SECONDS)
    ramp.observe_ramp(first=0.02, slope=0.001, steps=20, times=3)  # 0.020 ... 0.039
    single = HistogramCounts(ITL_BUCKETS_SECONDS)
    for step in range(20):
        single.observe(0.02 + 0.001 * step, 3)
    assert ramp.counts == single.counts
    assert ramp.sum_seconds == pytest.approx(single.sum_seconds)


def test_the_validation_table_holds() -> None:
    checks = validate()
    assert len(checks) == len(published_figures())
    for check in checks:
        assert check.holds, (check.published.profile.name, check.published.metric, check.ratio)
    unexplained = [c for c in checks if c.published.gap_explained is None]
    assert all(c.within for c in unexplained)
    assert len(unexplained) >= 10
