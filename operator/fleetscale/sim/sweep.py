"""The robustness sweep: every standard scenario across seeds, rates and model profiles.

Role: measure whether the shipped defaults generalize, not whether they fit five runs. Each
standard scenario runs on both model profiles (70B on 4 H100s, 8B on one; ``SWEEP_FLEETS``
gives both fleets room for a doubled load), at several multiples of its load (more or fewer
copies of a trace, a scaled rate for the synthetic shapes) and several seeds, under
fleetscale's defaults, the oracle and the baselines a user would deploy. It reports, per
policy, the median and the worst case of SLO attainment, GPU-hours against the oracle and
scale actions and reversals against the oracle's, and fleetscale's bar checks on every run.
Callers: ``fleetscale simulate --sweep`` (``make sweep``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetscale.sim.bench import CHECK_TITLES, Verdict, best_keda, judge_summaries
from fleetscale.sim.report import PolicySummary
from fleetscale.sim.runner import run_scenario
from fleetscale.sim.scenarios import SCENARIOS, STANDARD_SET, sweep_variant

SWEEP_POLICIES = (
    "fleetscale",
    "hpa-kv",
    "hpa-conc",
    "keda-conc-50",
    "keda-conc-75",
    "keda-conc-100",
    "static",
    "oracle",
)
SWEEP_SEEDS = (1, 2, 3)
SWEEP_RATES = (0.5, 1.0, 2.0)
SWEEP_PROFILES = ("70b", "8b")
SWEEP_COMMAND = "make sweep"
SWEEP_MARKERS = ("<!-- sweep:start -->", "<!-- sweep:end -->")


@dataclass(frozen=True)
class Case:
    """One run of the sweep."""

    scenario: str  # e.g. conv-8b
    rate: float
    seed: int


@dataclass(frozen=True)
class CaseResult:
    case: Case
    summaries: dict[str, PolicySummary]
    verdict: Verdict


def cases(
    scenarios: Sequence[str] = STANDARD_SET,
    profiles: Sequence[str] = SWEEP_PROFILES,
    rates: Sequence[float] = SWEEP_RATES,
    seeds: Sequence[int] = SWEEP_SEEDS,
) -> list[Case]:
    base = [name.rsplit("-", 1)[0] for name in scenarios]
    return [
        Case(f"{name}-{profile}", rate, seed)
        for name in base
        for profile in profiles
        for rate in rates
        for seed in seeds
    ]


def run_case(
    case: Case, traces_dir: Path | None, policies: Sequence[str] = SWEEP_POLICIES
) -> CaseResult:
    name, profile = case.scenario.rsplit("-", 1)
    source = next(s for key, s in SCENARIOS.items() if key.rsplit("-", 1)[0] == name)
    scenario = sweep_variant(source, profile)
    run = run_scenario(scenario, policies, traces_dir, case.seed, rate=case.rate)
    label = f"{case.scenario} x{case.rate:g} seed {case.seed}"
    return CaseResult(case, run.summaries, judge_summaries(label, run.summaries))


def _ratio(ours: float, oracle: float) -> float:
    return ours / oracle if oracle else float("inf")


@dataclass(frozen=True)
class PolicyFigures:
    """One policy across the sweep: median and worst of each figure."""

    policy: str
    slo_median: float
    slo_worst: float
    cost_median: float  # GPU-hours / oracle's
    cost_worst: float
    actions_median: float  # scale actions / oracle's
    actions_worst: float
    reversals_median: float
    reversals_worst: int


def figures(results: Sequence[CaseResult], policy: str) -> PolicyFigures:
    slo, cost, actions, flips = [], [], [], []
    for result in results:
        ours = result.summaries.get(policy)
        oracle = result.summaries["oracle"]
        if ours is None:
            continue
        slo.append(ours.slo_attainment)
        cost.append(_ratio(ours.gpu_hours, oracle.gpu_hours))
        actions.append(_ratio(ours.scale_actions, max(oracle.scale_actions, 1)))
        flips.append(ours.reversals)
    return PolicyFigures(
        policy=policy,
        slo_median=statistics.median(slo),
        slo_worst=min(slo),
        cost_median=statistics.median(cost),
        cost_worst=max(cost),
        actions_median=statistics.median(actions),
        actions_worst=max(actions),
        reversals_median=statistics.median(flips),
        reversals_worst=max(flips),
    )


def render(results: Sequence[CaseResult], policies: Sequence[str]) -> str:
    """The sweep's Markdown: per policy median and worst, then fleetscale's bar per run."""
    count = len(results)
    lines = [
        f"Produced by `{SWEEP_COMMAND}` (or `fleetscale simulate --sweep` with a subset): "
        f"{count} runs ({_described(results)}), each policy as shipped or as a user would "
        "tune it on the traffic. Worst and median over the runs; costs and scale actions as "
        "multiples of the oracle's in the same run; reversals: a change of direction within "
        "300 s of the previous change.",
        "",
        "| policy | SLO median | SLO worst | GPU-h vs oracle median | worst | scale actions vs "
        "oracle median | worst | reversals median | worst |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for policy in policies:
        f = figures(results, policy)
        lines.append(
            f"| {policy} | {f.slo_median:.2%} | {f.slo_worst:.2%} | {f.cost_median:.2f}x | "
            f"{f.cost_worst:.2f}x | {f.actions_median:.2f}x | {f.actions_worst:.2f}x | "
            f"{f.reversals_median:g} | {f.reversals_worst} |"
        )
    failing = [r for r in results if not r.verdict.passed]
    lines += [
        "",
        f"fleetscale meets every bar in {count - len(failing)} of {count} runs. Each bar, the "
        "runs that miss it and the worst of them:",
        "",
        "| bar | runs missed | worst run |",
        "|---|---|---|",
    ]
    for index, title in enumerate(CHECK_TITLES):
        missed = [r for r in results if not r.verdict.checks[index][0]]
        worst = _worst(missed, index)
        lines.append(f"| {title} | {len(missed)} | {worst} |")
    lines += [
        "",
        "Every run, fleetscale against the oracle and the best KEDA setting (bars missed by "
        "number, in the order above):",
        "",
        "| run | SLO (oracle) | GPU-h vs oracle | vs best KEDA | scale actions (oracle) | "
        "reversals | bars missed |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append(_run_row(result))
    return "\n".join(lines) + "\n"


def _described(results: Sequence[CaseResult]) -> str:
    """Which scenarios, rates and seeds the runs cover, from the runs themselves."""
    scenarios = sorted({r.case.scenario for r in results})
    rates = sorted({r.case.rate for r in results})
    seeds = sorted({r.case.seed for r in results})
    return (
        f"{', '.join(scenarios)}; at {', '.join(f'{x:g}x' for x in rates)} the load; "
        f"seeds {', '.join(str(x) for x in seeds)}"
    )


def _run_row(result: CaseResult) -> str:
    ours, oracle = result.summaries["fleetscale"], result.summaries["oracle"]
    keda = best_keda(result.summaries)
    vs_keda = f"{_ratio(ours.gpu_hours, keda.gpu_hours):.2f}x" if keda is not None else "-"
    missed = [str(i + 1) for i, (ok, _) in enumerate(result.verdict.checks) if not ok]
    return (
        f"| {result.verdict.scenario} | {ours.slo_attainment:.2%} ({oracle.slo_attainment:.2%})"
        f" | {_ratio(ours.gpu_hours, oracle.gpu_hours):.2f}x | {vs_keda} | "
        f"{ours.scale_actions} ({oracle.scale_actions}) | {ours.reversals} | "
        f"{', '.join(missed) or '-'} |"
    )


def _worst(missed: Sequence[CaseResult], index: int) -> str:
    if not missed:
        return "-"

    def badness(result: CaseResult) -> float:
        ours, oracle = result.summaries["fleetscale"], result.summaries["oracle"]
        keys: tuple[Callable[[], float], ...] = (
            lambda: oracle.slo_attainment - ours.slo_attainment,
            lambda: -ours.slo_attainment,
            lambda: _ratio(ours.gpu_hours, oracle.gpu_hours),
            lambda: ours.gpu_hours,
            lambda: _ratio(ours.scale_actions, max(oracle.scale_actions, 1)),
            lambda: ours.shed_requests_while_unconstrained + ours.timeout_rate,
        )
        return keys[index]()

    worst = max(missed, key=badness)
    return f"{worst.verdict.scenario}: {worst.verdict.checks[index][1]}"


def run_sweep(
    out_dir: Path,
    traces_dir: Path | None = None,
    selected: Sequence[Case] | None = None,
    policies: Sequence[str] = SWEEP_POLICIES,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> tuple[list[CaseResult], str]:
    """Run every case (in ``jobs`` processes), write ``results.json`` and ``sweep.md`` to
    ``out_dir``."""
    todo = list(selected) if selected is not None else cases()

    def report(index: int, result: CaseResult) -> None:
        if progress is not None:
            mark = "meets the bar" if result.verdict.passed else "misses"
            progress(f"[{index}/{len(todo)}] {result.verdict.scenario}: {mark}")

    results: list[CaseResult] = []
    if jobs <= 1:
        for index, case in enumerate(todo, start=1):
            results.append(run_case(case, traces_dir, policies))
            report(index, results[-1])
    else:
        # Cases are independent and deterministic: running them in processes changes the wall
        # time only. Results keep the order of ``todo``.
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_case, case, traces_dir, policies) for case in todo]
            for index, future in enumerate(futures, start=1):
                results.append(future.result())
                report(index, results[-1])
    section = render(results, policies)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.md").write_text(section, encoding="utf-8")
    (out_dir / "results.json").write_text(
        json.dumps(
            [
                {
                    "case": asdict(r.case),
                    "summaries": {k: asdict(v) for k, v in r.summaries.items()},
                    "verdict": {
                        title: {"ok": ok, "detail": text}
                        for title, (ok, text) in zip(CHECK_TITLES, r.verdict.checks, strict=True)
                    },
                }
                for r in results
            ],
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return results, section
