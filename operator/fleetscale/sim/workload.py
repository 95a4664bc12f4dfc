"""Request workloads for the simulator: public traces, their rate scaling, synthetic shapes.

Role: turn a trace file or a seeded shape into a ``Workload`` (arrival seconds from zero, input
and output tokens per request, sorted by arrival). Every transformation is deterministic for a
seed. Callers: ``fleetscale.sim.scenarios`` (the standard set) and ``fleetscale simulate``.

Rate scaling (the traces carry a few requests per second; a fleet of tens of replicas needs
hundreds):
- ``replicate``: overlay k copies of the trace, each shifted by a seeded offset and wrapped
  around the trace's duration. Keeps the trace's length and its request-size mix, multiplies
  the rate by k and smooths single-second bursts a little.
- ``compress``: divide every timestamp by a factor. Keeps burst structure, shortens the trace.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

TRACES_DIR_ENV = "FLEETSCALE_TRACES_DIR"


@dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival. Parallel tuples keep a million requests cheap to hold."""

    name: str
    arrival_seconds: tuple[float, ...]
    input_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    description: str = ""
    # Per request, the hashes of its prompt's blocks of ``prefix_block_tokens`` tokens (the
    # Mooncake trace's ``hash_ids``): equal leading hashes are a shared prefix. None: unknown.
    prefix_hashes: tuple[tuple[int, ...], ...] | None = None
    prefix_block_tokens: int = 0

    def __post_init__(self) -> None:
        count = len(self.arrival_seconds)
        if len(self.input_tokens) != count or len(self.output_tokens) != count:
            raise ValueError("arrival, input and output sequences must have the same length")
        if self.prefix_hashes is not None and len(self.prefix_hashes) != count:
            raise ValueError("prefix hashes must have one entry per request")

    def __len__(self) -> int:
        return len(self.arrival_seconds)

    @property
    def duration_seconds(self) -> float:
        return self.arrival_seconds[-1] if self.arrival_seconds else 0.0

    @property
    def mean_rate_per_second(self) -> float:
        return len(self) / self.duration_seconds if self.duration_seconds > 0 else 0.0


def _from_rows(
    name: str, rows: Iterable[tuple[float, int, int]], description: str = ""
) -> Workload:
    ordered = sorted(rows)
    if not ordered:
        raise ValueError(f"workload {name!r} has no requests")
    start = ordered[0][0]
    return Workload(
        name=name,
        arrival_seconds=tuple(t - start for t, _, _ in ordered),
        input_tokens=tuple(max(1, i) for _, i, _ in ordered),
        output_tokens=tuple(max(1, o) for _, _, o in ordered),
        description=description,
    )


MOONCAKE_BLOCK_TOKENS = 512  # the Mooncake trace hashes prompts in blocks of 512 tokens


def default_traces_dir(repo_root: Path | None = None) -> Path:
    """``$FLEETSCALE_TRACES_DIR``, else ``../shared/traces`` next to the repository root."""
    from_env = os.environ.get(TRACES_DIR_ENV)
    if from_env:
        return Path(from_env)
    root = repo_root if repo_root is not None else Path(__file__).resolve().parents[3]
    return root.parent / "shared" / "traces"


def load_azure_csv(path: Path) -> Workload:
    """Azure LLM inference trace 2023: ``TIMESTAMP,ContextTokens,GeneratedTokens``."""
    rows: list[tuple[float, int, int]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            # Seven fractional digits: Python parses at most six.
            stamp = record["TIMESTAMP"].strip()
            head, _, fraction = stamp.partition(".")
            seconds = datetime.fromisoformat(head).timestamp() + float(f"0.{fraction or '0'}")
            rows.append((seconds, int(record["ContextTokens"]), int(record["GeneratedTokens"])))
    return _from_rows(path.stem, rows, f"{path.name} (Azure LLM inference trace 2023)")


def load_mooncake_jsonl(path: Path) -> Workload:
    """Mooncake FAST'25 trace: one JSON object a line, ``timestamp`` in milliseconds."""
    rows: list[tuple[float, int, int, tuple[int, ...]]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            rows.append(
                (
                    float(record["timestamp"]) / 1000.0,
                    int(record["input_length"]),
                    int(record["output_length"]),
                    tuple(int(h) for h in record.get("hash_ids", ())),
                )
            )
    if not rows:
        raise ValueError(f"workload {path.stem!r} has no requests")
    rows.sort()
    start = rows[0][0]
    return Workload(
        name=path.stem,
        arrival_seconds=tuple(r[0] - start for r in rows),
        input_tokens=tuple(max(1, r[1]) for r in rows),
        output_tokens=tuple(max(1, r[2]) for r in rows),
        description=f"{path.name} (Mooncake FAST'25 trace)",
        prefix_hashes=tuple(r[3] for r in rows),
        prefix_block_tokens=MOONCAKE_BLOCK_TOKENS,
    )


def load_trace(name: str, traces_dir: Path | None = None) -> Workload:
    """A trace by file stem (``azure2023_conv``) or file name, from the traces directory."""
    directory = traces_dir if traces_dir is not None else default_traces_dir()
    candidates = [directory / name] if Path(name).suffix else []
    candidates += [directory / f"{name}.csv", directory / f"{name}.jsonl"]
    for path in candidates:
        if path.is_file():
            if path.suffix == ".jsonl":
                return load_mooncake_jsonl(path)
            return load_azure_csv(path)
    raise FileNotFoundError(
        f"trace {name!r} not found in {directory} (set --traces-dir or ${TRACES_DIR_ENV})"
    )


def replicate(workload: Workload, copies: int, seed: int) -> Workload:
    """Overlay ``copies`` time-shifted copies (offsets seeded, wrapped around the duration).

    Prefix hashes are renumbered per copy: copies are other users, whose prompts share no
    prefix with the original's.
    """
    if copies < 1:
        raise ValueError("copies must be at least 1")
    if copies == 1:
        return workload
    duration = workload.duration_seconds
    rng = random.Random(seed)
    hashes = workload.prefix_hashes
    span = 1 + max((max(h) for h in hashes if h), default=0) if hashes is not None else 0
    rows: list[tuple[float, int, int, int, int]] = []
    for copy in range(copies):
        offset = 0.0 if copy == 0 else rng.uniform(0.0, duration)
        for index, (arrival, inputs, outputs) in enumerate(
            zip(
                workload.arrival_seconds, workload.input_tokens, workload.output_tokens, strict=True
            )
        ):
            at = (arrival + offset) % duration if duration else 0.0
            rows.append((at, inputs, outputs, copy, index))
    rows.sort()
    return Workload(
        name=workload.name,
        arrival_seconds=tuple(r[0] for r in rows),
        input_tokens=tuple(r[1] for r in rows),
        output_tokens=tuple(r[2] for r in rows),
        description=f"{workload.description}, {copies} copies with seeded time offsets",
        prefix_hashes=(
            None
            if hashes is None
            else tuple(tuple(h + r[3] * span for h in hashes[r[4]]) for r in rows)
        ),
        prefix_block_tokens=workload.prefix_block_tokens,
    )


def compress(workload: Workload, factor: float) -> Workload:
    """Divide arrival times by ``factor`` (rate times ``factor``, duration over ``factor``)."""
    if factor <= 0:
        raise ValueError("factor must be positive")
    return Workload(
        name=workload.name,
        arrival_seconds=tuple(t / factor for t in workload.arrival_seconds),
        input_tokens=workload.input_tokens,
        output_tokens=workload.output_tokens,
        description=f"{workload.description}, time compressed {factor:g}x",
        prefix_hashes=workload.prefix_hashes,
        prefix_block_tokens=workload.prefix_block_tokens,
    )


def truncate(workload: Workload, duration_seconds: float) -> Workload:
    """Only the requests that arrive before ``duration_seconds``."""
    keep = sum(1 for t in workload.arrival_seconds if t < duration_seconds)
    return Workload(
        name=workload.name,
        arrival_seconds=workload.arrival_seconds[:keep],
        input_tokens=workload.input_tokens[:keep],
        output_tokens=workload.output_tokens[:keep],
        description=f"{workload.description}, first {duration_seconds:g} s",
        prefix_hashes=None if workload.prefix_hashes is None else workload.prefix_hashes[:keep],
        prefix_block_tokens=workload.prefix_block_tokens,
    )


RateFunction = Callable[[float], float]


def poisson_arrivals(
    rate_per_second: RateFunction,
    peak_rate_per_second: float,
    duration_seconds: float,
    rng: random.Random,
) -> list[float]:
    """Arrivals of a non-homogeneous Poisson process, by thinning (Lewis and Shedler)."""
    arrivals: list[float] = []
    now = 0.0
    while True:
        now += rng.expovariate(peak_rate_per_second)
        if now >= duration_seconds:
            return arrivals
        if rng.random() * peak_rate_per_second <= rate_per_second(now):
            arrivals.append(now)


def synthetic(
    name: str,
    rate_per_second: RateFunction,
    peak_rate_per_second: float,
    duration_seconds: float,
    sizes_from: Workload,
    seed: int,
    description: str,
) -> Workload:
    """Poisson arrivals at a time-varying rate; request sizes resampled from a real trace."""
    rng = random.Random(seed)
    arrivals = poisson_arrivals(rate_per_second, peak_rate_per_second, duration_seconds, rng)
    picks = [rng.randrange(len(sizes_from)) for _ in arrivals]
    return Workload(
        name=name,
        arrival_seconds=tuple(arrivals),
        input_tokens=tuple(sizes_from.input_tokens[i] for i in picks),
        output_tokens=tuple(sizes_from.output_tokens[i] for i in picks),
        description=description,
    )


def diurnal_rate(
    mean_rate_per_second: float, peak_to_trough: float, day_seconds: float
) -> RateFunction:
    """A day: trough at the start (night), peak at mid-day, a sinusoid between them."""
    trough = 2 * mean_rate_per_second / (1 + peak_to_trough)
    amplitude = (peak_to_trough - 1) * trough / 2

    def rate(now: float) -> float:
        return trough + amplitude * (1 - math.cos(2 * math.pi * now / day_seconds))

    return rate


def flash_crowd_rate(
    base_rate_per_second: float,
    multiplier: float,
    start_seconds: float,
    ramp_seconds: float,
    hold_seconds: float,
    decay_seconds: float,
) -> RateFunction:
    """Launch day: base rate, a jump to ``multiplier`` x within ``ramp_seconds``, held, then an
    exponential decay (time constant ``decay_seconds``) back toward the base rate."""
    extra = (multiplier - 1) * base_rate_per_second

    def rate(now: float) -> float:
        if now < start_seconds:
            return base_rate_per_second
        since = now - start_seconds
        if since < ramp_seconds:
            return base_rate_per_second + extra * since / ramp_seconds
        since -= ramp_seconds
        if since < hold_seconds:
            return base_rate_per_second + extra
        return base_rate_per_second + extra * math.exp(-(since - hold_seconds) / decay_seconds)

    return rate
