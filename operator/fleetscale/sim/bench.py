"""The published benchmark: every standard scenario under every policy, in one command.

Role: run the standard set, judge fleetscale against the bar of the benchmark, write the
results section (Markdown with tables and plots) to ``docs/benchmark-results.md`` and into
README.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->``, the plots to
``docs/bench/*.png`` and the full JSON (timelines included) to ``out/bench/results.json``. It
also checks the replica model against published measurements
(``fleetscale.sim.validation``) and writes that table into the results page and into
docs/benchmark.md between ``<!-- validation:start -->`` and ``<!-- validation:end -->``.
Callers: ``fleetscale simulate --bench`` (``make bench``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetscale.sim.report import PolicySummary, markdown_table
from fleetscale.sim.runner import ALL_POLICIES, KEDA_POLICIES, ScenarioRun, run_scenario
from fleetscale.sim.scenarios import SCENARIOS, STANDARD_SET
from fleetscale.sim.validation import MAX_RATIO, Check, validate
from fleetscale.sim.validation import markdown_table as validation_table

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"
VALIDATION_MARKERS = ("<!-- validation:start -->", "<!-- validation:end -->")
SIGNAL_POLICIES = ("fleetscale", "static", "keda-3")
BENCH_COMMAND = "make bench"
BASELINES = ("hpa", *KEDA_POLICIES, "kpa", "static")

# The bar fleetscale must clear on every scenario.
MAX_GPU_HOURS_VS_BEST_KEDA = 0.75
MAX_GPU_HOURS_VS_ORACLE = 1.15


class MarkersMissingError(Exception):
    """README.md lacks the markers that delimit the generated section."""


@dataclass(frozen=True)
class Verdict:
    """fleetscale against the bar on one scenario: each check with the numbers behind it."""

    scenario: str
    slo_vs_best_baseline: tuple[bool, str]
    gpu_hours_vs_best_keda: tuple[bool, str]
    gpu_hours_vs_oracle: tuple[bool, str]
    shed_only_when_constrained: tuple[bool, str]
    speed: str = ""  # how fast the simulator ran it (a figure, not a bar)

    @property
    def checks(self) -> tuple[tuple[bool, str], ...]:
        return (
            self.slo_vs_best_baseline,
            self.gpu_hours_vs_best_keda,
            self.gpu_hours_vs_oracle,
            self.shed_only_when_constrained,
        )

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks)


def best_keda(summaries: dict[str, PolicySummary]) -> PolicySummary:
    """The best-tuned KEDA setting: highest SLO attainment, then fewest GPU-hours."""
    candidates = [summaries[name] for name in KEDA_POLICIES if name in summaries]
    return max(candidates, key=lambda s: (round(s.slo_attainment, 4), -s.gpu_hours))


def judge(run: ScenarioRun, policy: str = "fleetscale") -> Verdict:
    summaries = run.summaries
    ours = summaries[policy]
    baselines = [summaries[name] for name in BASELINES if name in summaries]
    best = max(baselines, key=lambda s: s.slo_attainment)
    keda = best_keda(summaries)
    oracle = summaries["oracle"]
    ratio_keda = ours.gpu_hours / keda.gpu_hours if keda.gpu_hours else float("inf")
    ratio_oracle = ours.gpu_hours / oracle.gpu_hours if oracle.gpu_hours else float("inf")
    unconstrained = ours.shed_seconds_while_unconstrained
    return Verdict(
        scenario=run.scenario.name,
        slo_vs_best_baseline=(
            round(ours.slo_attainment, 4) >= round(best.slo_attainment, 4),
            f"SLO {ours.slo_attainment:.2%} vs best baseline {best.policy} "
            f"{best.slo_attainment:.2%}",
        ),
        gpu_hours_vs_best_keda=(
            ratio_keda <= MAX_GPU_HOURS_VS_BEST_KEDA,
            f"{ours.gpu_hours:.1f} GPU-h = {ratio_keda:.2f}x best-tuned KEDA ({keda.policy}, "
            f"{keda.gpu_hours:.1f}); bar {MAX_GPU_HOURS_VS_BEST_KEDA:.2f}x",
        ),
        gpu_hours_vs_oracle=(
            ratio_oracle <= MAX_GPU_HOURS_VS_ORACLE,
            f"{ratio_oracle:.2f}x oracle ({oracle.gpu_hours:.1f} GPU-h); "
            f"bar {MAX_GPU_HOURS_VS_ORACLE:.2f}x",
        ),
        shed_only_when_constrained=(
            unconstrained == 0 and ours.timeout_rate == 0,
            f"shed flag up {unconstrained:.0f} s with no capacity provisioning, loading or "
            f"capped; timeout rate {ours.timeout_rate:.2%}",
        ),
        speed=speed(run, policy),
    )


def speed(run: ScenarioRun, policy: str = "fleetscale") -> str:
    """The simulator's speed on one scenario, against the oracle's run as the baseline.

    The oracle decides from a precomputed plan, so its run time is the engine's own; the ratio
    is what the production planners add on top.
    """
    ours, oracle = run.summaries[policy], run.summaries["oracle"]
    simulated = run.workload.duration_seconds
    overhead = ours.wall_seconds / oracle.wall_seconds if oracle.wall_seconds else float("inf")
    return (
        f"{ours.requests:,} requests, {simulated / 3600:.2f} h simulated: {policy} in "
        f"{ours.wall_seconds:.1f} s ({simulated / max(ours.wall_seconds, 1e-9):,.0f}x real "
        f"time), oracle in {oracle.wall_seconds:.1f} s; {policy} / oracle {overhead:.2f}x"
    )


def render_section(
    runs: Sequence[ScenarioRun], verdicts: Sequence[Verdict], image_prefix: str, seed: int
) -> str:
    """The generated Markdown: command, verdicts, one table and one plot per scenario."""
    lines = [
        f"Produced by `{BENCH_COMMAND}` (seed {seed}); every figure below comes from that one "
        "command. SLO: time to first token within the target; shed (429) and timed-out requests "
        "count as misses. GPU-hours: nodes billed from the start of the provisioning attempt that "
        "succeeded to release. Queue wait: arrival to first scheduled at a vLLM replica, served "
        "requests only. Model, fleet and baseline settings, and the replica model's validation: "
        "docs/benchmark.md.",
        "",
        "| scenario | SLO >= best baseline | <= 0.75x best KEDA GPU-h | <= 1.15x oracle GPU-h "
        "| shed only when constrained |",
        "|---|---|---|---|---|",
    ]
    for verdict in verdicts:
        cells = [("pass" if ok else "**miss**") + f": {text}" for ok, text in verdict.checks]
        lines.append(f"| {verdict.scenario} | " + " | ".join(cells) + " |")
    for run in runs:
        config = run.scenario.config
        lines += [
            "",
            f"#### {run.scenario.title} (`{run.scenario.name}`)",
            "",
            f"{len(run.workload):,} requests; {run.scenario.scaling}. Model {config.model.name}, "
            f"nodes of {config.nodes.accelerators_per_node} GPUs (at most "
            f"{config.nodes.max_nodes}), replicas 1-{config.max_replicas}, TTFT target "
            f"{config.ttft_target_seconds:g} s, client timeout "
            f"{config.client_timeout_seconds:g} s.",
            "",
            markdown_table(list(run.summaries.values())),
            "",
            f"![{run.scenario.name}]({image_prefix}{run.scenario.name}.png)",
            "",
            signals_line(run),
            "",
            f"![{run.scenario.name} signals]({image_prefix}{run.scenario.name}-signals.png)",
        ]
    return "\n".join(lines) + "\n"


def signals_line(run: ScenarioRun, policies: Sequence[str] = SIGNAL_POLICIES) -> str:
    """What vLLM exported during the run: which limit bound the batch."""
    cap = run.scenario.config.model.max_num_seqs
    parts = []
    for name in policies:
        if name not in run.results:
            continue
        timeline = run.results[name].timeline
        ready = [max(1, r) for r in timeline.ready_replicas]
        running = max((n / r for n, r in zip(timeline.running, ready, strict=True)), default=0)
        waiting = max((n / r for n, r in zip(timeline.waiting, ready, strict=True)), default=0)
        usage = timeline.kv_cache_usage_percent
        mean_usage = sum(usage) / len(usage) if usage else 0.0
        parts.append(
            f"{name}: KV-cache usage mean {mean_usage:.0f}%, peak {max(usage, default=0):.0f}%; "
            f"peak {running:.0f} running and {waiting:.0f} waiting per ready replica; "
            f"{run.summaries[name].preemptions:,} preemptions"
        )
    return (
        f"Signals as vLLM exports them (sequence cap {cap:,} per replica): "
        + "; ".join(parts)
        + "."
    )


def splice_readme(
    readme: Path, section: str, markers: tuple[str, str] = (START_MARKER, END_MARKER)
) -> None:
    """Replace what lies between the markers in ``readme``; fail if they are missing.

    Also used by the operator bench (``e2e/operator_bench.py``) with its own markers.
    """
    start_marker, end_marker = markers
    text = readme.read_text(encoding="utf-8")
    start = text.find(start_marker)
    end = text.find(end_marker)
    if start < 0 or end < 0 or end < start:
        raise MarkersMissingError(
            f"{readme}: expected the markers {start_marker} and {end_marker} (in that order) "
            "around the benchmark results section; add them and run again"
        )
    head = text[: start + len(start_marker)]
    readme.write_text(head + "\n" + section + text[end:], encoding="utf-8")


def run_bench(
    readme: Path | None,
    docs_dir: Path,
    out_dir: Path,
    traces_dir: Path | None = None,
    seed: int = 1,
    scenarios: Sequence[str] = STANDARD_SET,
    progress: Callable[[str], None] | None = None,
) -> list[Verdict]:
    from fleetscale.sim.plots import plot_run, plot_signals
    from fleetscale.sim.runner import write_json

    if readme is not None and START_MARKER not in readme.read_text(encoding="utf-8"):
        splice_readme(readme, "")  # fail before minutes of simulation, not after
    runs = [
        run_scenario(SCENARIOS[name], ALL_POLICIES, traces_dir, seed, progress=progress)
        for name in scenarios
    ]
    verdicts = [judge(run) for run in runs]
    for run in runs:
        plot_run(run, docs_dir / "bench" / f"{run.scenario.name}.png")
        plot_signals(run, docs_dir / "bench" / f"{run.scenario.name}-signals.png", SIGNAL_POLICIES)
    write_json(runs, out_dir / "results.json")
    checks = validate()
    if progress is not None:
        held = sum(1 for check in checks if check.holds)
        progress(f"validation: {held} of {len(checks)} published figures hold")
    validation = validation_section(checks)
    results_page = docs_dir / "benchmark-results.md"
    results_page.write_text(
        "# Benchmark results\n\n"
        + render_section(runs, verdicts, "bench/", seed)
        + "\n## The replica model against published measurements\n\n"
        + validation,
        encoding="utf-8",
    )
    method_page = docs_dir / "benchmark.md"
    if method_page.is_file() and VALIDATION_MARKERS[0] in method_page.read_text(encoding="utf-8"):
        splice_readme(method_page, validation, VALIDATION_MARKERS)
    if readme is not None:
        splice_readme(readme, render_section(runs, verdicts, f"{docs_dir.name}/bench/", seed))
    return verdicts


def validation_section(checks: Sequence[Check]) -> str:
    held = sum(1 for check in checks if check.holds)
    within = sum(1 for check in checks if check.within)
    return (
        f"Produced by `{BENCH_COMMAND}`: one simulated replica under each published benchmark's "
        f"load. {within} of {len(checks)} figures within {MAX_RATIO:g}x of their source; "
        f"{held - within} more with the gap explained below the table.\n\n"
        + validation_table(checks)
        + "\n"
    )
