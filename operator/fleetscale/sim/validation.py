"""The replica model against published measurements: closed-loop benchmarks and the table.

Role: run one simulated vLLM replica the way the published benchmarks ran the real servers
(AIPerf / genai-perf at a fixed concurrency: each client sends its next request when the last
one finished; or TensorRT-LLM's offline throughput run: every request queued at once), and
compare single-stream decode speed, aggregate throughput at two concurrencies and TTFT at
moderate load with the published figures. Callers: ``fleetscale.sim.bench`` (the table in
docs/benchmark-results.md) and the tests (every row within 1.5x, or its gap explained).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleetscale.sim.model import (
    LLAMA_8B_A100_40GB,
    LLAMA_8B_FP8_H100,
    LLAMA_8B_H100,
    LLAMA_70B_4XH100,
    LLAMA_70B_FP8_2XH100,
    ModelProfile,
)
from fleetscale.sim.replica import Replica, RequestBook

MAX_RATIO = 1.5

Metric = Literal[
    "single-stream tokens/s", "throughput tokens/s", "mean TTFT s", "max throughput tokens/s"
]


@dataclass(frozen=True)
class LoadPoint:
    """What a benchmark client measures at one load."""

    concurrency: int  # 0: offline (every request queued at once)
    input_tokens: int
    output_tokens: int
    output_tokens_per_second: float
    mean_ttft_seconds: float
    mean_itl_seconds: float


def run_load(
    profile: ModelProfile,
    concurrency: int,
    input_tokens: int,
    output_tokens: int,
    requests: int | None = None,
) -> LoadPoint:
    """A closed loop of ``concurrency`` clients (0: all ``requests`` at once), measured after
    the first ``concurrency`` completions (warm-up), like a benchmark client's steady state."""
    offline = concurrency == 0
    total = requests if requests is not None else max(200, 6 * concurrency)
    arrival = [0.0] * total
    book = RequestBook(arrival, [input_tokens] * total, [output_tokens] * total)
    replica = Replica(profile, book)
    issued = total if offline else concurrency
    for request in range(issued):
        replica.enqueue(request)
    done: list[int] = []
    while len(done) < total:
        replica.advance_to(replica.now + 1e-9)  # one step or one decode stretch
        for request in replica.finished:
            done.append(request)
            if issued < total:
                arrival[issued] = replica.now
                replica.enqueue(issued)
                issued += 1
        replica.finished.clear()
    warm = 0 if offline else concurrency
    measured = done[warm:]
    start = 0.0 if offline else book.finished_at[done[warm - 1]]
    window = book.finished_at[done[-1]] - start
    ttfts = [book.first_token_at[r] - book.arrival[r] for r in measured]
    itls = [
        (book.finished_at[r] - book.first_token_at[r]) / max(1, output_tokens - 1) for r in measured
    ]
    return LoadPoint(
        concurrency=concurrency,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        output_tokens_per_second=len(measured) * output_tokens / window,
        mean_ttft_seconds=sum(ttfts) / len(ttfts),
        mean_itl_seconds=sum(itls) / len(itls),
    )


@dataclass(frozen=True)
class Published:
    """One published figure and the load it was measured at."""

    profile: ModelProfile
    metric: Metric
    concurrency: int  # 0: offline maximum throughput
    input_tokens: int
    output_tokens: int
    value: float
    source: str
    # Why the simulated figure may differ by more than MAX_RATIO, when it does.
    gap_explained: str | None = None


@dataclass(frozen=True)
class Check:
    published: Published
    simulated: float

    @property
    def ratio(self) -> float:
        return self.simulated / self.published.value

    @property
    def within(self) -> bool:
        return 1 / MAX_RATIO <= self.ratio <= MAX_RATIO

    @property
    def holds(self) -> bool:
        return self.within or self.published.gap_explained is not None


NIM = "NVIDIA NIM LLM benchmarking, Performance"
NIM_70B = f"{NIM}: Llama-3.3-70B-Instruct NIM 1.8.0, 2x H100 80GB, FP8, TP2, 5000 in / 500 out"
NIM_8B = f"{NIM}: Llama-3.1-8B-Instruct NIM 1.8.0, 1x H100 80GB, concurrency 1 (ITL 4.63 ms)"
TRTLLM_8B = "TensorRT-LLM perf overview: Llama 3.1 8B FP8, H100 TP1, offline max throughput"
MUSGRAVE = "J. Musgrave, vLLM throughput-latency sweep on A100 (Llama-3.1-8B BF16, A100 40GB)"
BF16_OF_FP8 = (
    "the source runs FP8 weights, KV cache and matmuls; BF16 moves twice the bytes per token, "
    "holds half the tokens in the same memory and has half the peak FLOPs, so the BF16 replica "
    "is slower in proportion, while the 8B FP8 profile (the same engine model) is within 1.5x"
)


def published_figures() -> tuple[Published, ...]:
    """Every published figure the profiles are checked against (sources: docs/benchmark.md)."""
    rows: list[Published] = []
    # 70B: NIM's FP8 TP2 table. The BF16 TP4 profile has the same weight bytes and peak FLOPs
    # per GPU and about the same KV cache, so it is checked against the same figures.
    for profile in (LLAMA_70B_FP8_2XH100, LLAMA_70B_4XH100):
        rows += [
            Published(profile, "single-stream tokens/s", 1, 5000, 500, 1000 / 18.58, NIM_70B),
            Published(profile, "throughput tokens/s", 25, 5000, 500, 623.4, NIM_70B),
            Published(profile, "throughput tokens/s", 100, 5000, 500, 917.26, NIM_70B),
            Published(profile, "mean TTFT s", 25, 5000, 500, 0.68869, NIM_70B),
        ]
    # 8B: the published H100 figures are FP8. The FP8 profile is checked against them
    # directly; the BF16 profile (the same engine model with twice the bytes) is shown beside
    # them, and its memory model is checked on the one published vLLM BF16 figure (A100).
    for profile, gap in ((LLAMA_8B_FP8_H100, None), (LLAMA_8B_H100, BF16_OF_FP8)):
        rows += [
            Published(profile, "single-stream tokens/s", 1, 200, 200, 1000 / 4.63, NIM_8B, gap),
            Published(profile, "max throughput tokens/s", 0, 1000, 1000, 15220.0, TRTLLM_8B, gap),
            Published(profile, "max throughput tokens/s", 0, 5000, 500, 3459.0, TRTLLM_8B, gap),
        ]
    rows.append(
        Published(LLAMA_8B_A100_40GB, "single-stream tokens/s", 1, 200, 200, 75.0, MUSGRAVE)
    )
    return tuple(rows)


def simulate(published: Published) -> float:
    point = run_load(
        published.profile,
        published.concurrency,
        published.input_tokens,
        published.output_tokens,
        requests=300 if published.concurrency == 0 else None,
    )
    if published.metric == "mean TTFT s":
        return point.mean_ttft_seconds
    if published.metric == "single-stream tokens/s":
        return 1.0 / point.mean_itl_seconds
    return point.output_tokens_per_second


def validate(figures: Sequence[Published] | None = None) -> list[Check]:
    return [Check(row, simulate(row)) for row in (figures or published_figures())]


def markdown_table(checks: Sequence[Check]) -> str:
    lines = [
        "| profile | metric | load (in / out tokens) | published | simulated | ratio | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in checks:
        row = check.published
        load = "offline" if row.concurrency == 0 else f"concurrency {row.concurrency}"
        verdict = f"{check.ratio:.2f}x" + ("" if check.within else " (see note)")
        lines.append(
            f"| {row.profile.name} | {row.metric} | {load} ({row.input_tokens} / "
            f"{row.output_tokens}) | {_number(row.value)} | {_number(check.simulated)} | "
            f"{verdict} | {row.source} |"
        )
    notes = [c for c in checks if not c.within and c.published.gap_explained]
    if notes:
        lines.append("")
        for check in notes:
            lines.append(
                f"- {check.published.profile.name}, {check.published.metric} "
                f"({check.ratio:.2f}x): {check.published.gap_explained}."
            )
    return "\n".join(lines)


def _number(value: float) -> str:
    if value < 10:
        return f"{value:.3f}"
    return f"{value:,.0f}"
