"""Turn simulator results into the numbers a user compares autoscalers by.

Role: per scenario and policy: SLO attainment (TTFT within target; shed and timed-out requests
count as misses), shed and timeout rates, queue wait p50/p99 (arrival to first scheduled, as
vLLM's queue time), TTFT p99, GPU-hours and their ratio to the oracle's, scale actions and
preemptions; rendered as a text table, a Markdown table and JSON. Callers:
``fleetscale.sim.runner``, ``fleetscale.sim.bench``, the CLI.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fleetscale.sim.engine import SimResult

# A change of direction within this long counts as a reversal: the scale-down stabilization
# window of the HPA's defaults, inside which flat load should never turn the fleet around.
REVERSAL_WINDOW_SECONDS = 300.0


def reversals(changes: Sequence[tuple[float, int]]) -> int:
    """Changes of the replica target that undo the previous one's direction within
    ``REVERSAL_WINDOW_SECONDS`` (up then down, or down then up)."""
    count = 0
    for (before, first), (after, second) in itertools.pairwise(changes):
        if first * second < 0 and after - before <= REVERSAL_WINDOW_SECONDS:
            count += 1
    return count


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    requests: int
    slo_attainment: float
    shed_rate: float
    timeout_rate: float
    queue_wait_p50_seconds: float
    queue_wait_p99_seconds: float
    ttft_p99_seconds: float
    gpu_hours: float
    gpu_hours_vs_oracle: float | None
    scale_actions: int
    nodes_requested: int
    shed_seconds_while_unconstrained: float
    wall_seconds: float
    preemptions: int = 0
    reversals: int = 0
    shed_requests_while_unconstrained: int = 0


def summarize(result: SimResult, oracle_gpu_hours: float | None) -> PolicySummary:
    outcomes = result.outcomes
    total = max(outcomes.total, 1)
    waits = outcomes.queue_wait_seconds
    return PolicySummary(
        policy=result.policy,
        requests=outcomes.total,
        slo_attainment=outcomes.met_ttft / total,
        shed_rate=outcomes.shed / total,
        timeout_rate=outcomes.timed_out / total,
        queue_wait_p50_seconds=percentile(waits, 0.50),
        queue_wait_p99_seconds=percentile(waits, 0.99),
        ttft_p99_seconds=percentile(outcomes.ttft_seconds, 0.99),
        gpu_hours=result.gpu_hours,
        gpu_hours_vs_oracle=(result.gpu_hours / oracle_gpu_hours if oracle_gpu_hours else None),
        scale_actions=result.scale_actions,
        nodes_requested=result.nodes_requested,
        shed_seconds_while_unconstrained=result.shed_seconds_while_unconstrained,
        wall_seconds=result.wall_seconds,
        preemptions=outcomes.preemptions,
        reversals=reversals(result.scale_changes),
        shed_requests_while_unconstrained=result.shed_requests_while_unconstrained,
    )


_COLUMNS = (
    ("policy", "policy", "{}"),
    ("SLO %", "slo_attainment", "{:.2%}"),
    ("shed %", "shed_rate", "{:.2%}"),
    ("timeout %", "timeout_rate", "{:.2%}"),
    ("wait p50 s", "queue_wait_p50_seconds", "{:.2f}"),
    ("wait p99 s", "queue_wait_p99_seconds", "{:.2f}"),
    ("TTFT p99 s", "ttft_p99_seconds", "{:.2f}"),
    ("GPU-h", "gpu_hours", "{:.1f}"),
    ("vs oracle", "gpu_hours_vs_oracle", "{:.2f}x"),
    ("scale actions", "scale_actions", "{}"),
    ("reversals", "reversals", "{}"),
    ("preemptions", "preemptions", "{:,}"),
)


def _cells(summary: PolicySummary) -> list[str]:
    cells = []
    for _, attribute, fmt in _COLUMNS:
        value = getattr(summary, attribute)
        cells.append("-" if value is None else fmt.format(value).replace("%", "").strip())
    return cells


def text_table(summaries: Sequence[PolicySummary]) -> str:
    headers = [title for title, _, _ in _COLUMNS]
    rows = [_cells(s) for s in summaries]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def markdown_table(summaries: Sequence[PolicySummary]) -> str:
    headers = [title for title, _, _ in _COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cells(s)) + " |" for s in summaries]
    return "\n".join(lines)


def to_json(summary: PolicySummary) -> dict[str, Any]:
    return asdict(summary)
