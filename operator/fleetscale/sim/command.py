"""``fleetscale simulate``: run scenarios under policies, print the table, write JSON and plots.

Role: the command behind the CLI's ``simulate`` subcommand (the CLI parses, this runs). With
``--bench`` it runs the published benchmark instead (``make bench``). Callers:
``fleetscale.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def simulate(args: argparse.Namespace) -> int:
    from fleetscale.sim.runner import ALL_POLICIES, run_scenario, write_json
    from fleetscale.sim.scenarios import SCENARIOS, STANDARD_SET

    traces_dir = Path(args.traces_dir) if args.traces_dir else None
    if args.bench:
        return _bench(args, traces_dir)
    if args.compare_gateways:
        return _compare_gateways(args, traces_dir)
    if args.sweep:
        return _sweep(args, traces_dir)
    scenarios = args.scenarios or list(STANDARD_SET)
    policies = args.policies or list(ALL_POLICIES)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        print(
            f"fleetscale simulate: unknown scenario(s) {', '.join(unknown)}; "
            f"known: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    from fleetscale.sim.report import text_table

    out_dir = Path(args.out)
    runs = []
    for name in scenarios:
        try:
            run = run_scenario(
                SCENARIOS[name],
                policies,
                traces_dir,
                args.seed,
                progress=_progress(args),
                rate=args.rate,
            )
        except (FileNotFoundError, ValueError) as error:
            print(f"fleetscale simulate: {error}", file=sys.stderr)
            return 2
        runs.append(run)
        print(f"\n{run.scenario.title} ({name}): {len(run.workload):,} requests")
        print(f"  {run.scenario.scaling}")
        print(text_table(list(run.summaries.values())))
        if not args.no_plot:
            from fleetscale.sim.plots import plot_run

            print(f"  plot: {plot_run(run, out_dir / f'{name}.png')}")
    json_path = out_dir / "results.json"
    write_json(runs, json_path)
    print(f"\nJSON: {json_path}")
    return 0


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.quiet:
        return None

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return report


def _bench(args: argparse.Namespace, traces_dir: Path | None) -> int:
    from fleetscale.sim.bench import MarkersMissingError, run_bench

    readme = Path(args.readme) if args.readme else None
    try:
        verdicts = run_bench(
            readme=readme,
            docs_dir=Path(args.docs_dir),
            out_dir=Path(args.out),
            traces_dir=traces_dir,
            seed=args.seed,
            scenarios=args.scenarios or _standard(),
            progress=_progress(args),
        )
    except MarkersMissingError as error:
        print(f"fleetscale simulate --bench: {error}", file=sys.stderr)
        return 1
    for verdict in verdicts:
        status = "meets the bar" if verdict.passed else "misses the bar"
        print(f"{verdict.scenario}: fleetscale {status}")
        for ok, text in verdict.checks:
            print(f"  {'ok  ' if ok else 'MISS'} {text}")
        print(f"  speed {verdict.speed}")
    return 0


def _compare_gateways(args: argparse.Namespace, traces_dir: Path | None) -> int:
    from fleetscale.sim.gateways import compare_gateways, markdown
    from fleetscale.sim.scenarios import SCENARIOS

    for name in args.scenarios or ["flash-70b"]:
        if name not in SCENARIOS:
            print(f"fleetscale simulate: unknown scenario {name}", file=sys.stderr)
            return 2
        rows = compare_gateways(
            SCENARIOS[name], traces_dir, args.seed, args.low_priority_share, _progress(args)
        )
        print(f"\n{name} (seed {args.seed}, {args.low_priority_share:.0%} lower priority)")
        print(markdown(rows))
    return 0


def _sweep(args: argparse.Namespace, traces_dir: Path | None) -> int:
    from fleetscale.sim.sweep import SWEEP_MARKERS, SWEEP_POLICIES, cases, run_sweep

    try:
        selected = cases(
            scenarios=args.scenarios or _standard(),
            profiles=[p.strip() for p in args.sweep_profiles.split(",") if p.strip()],
            rates=[float(r) for r in args.sweep_rates.split(",") if r.strip()],
            seeds=[int(s) for s in args.sweep_seeds.split(",") if s.strip()],
        )
    except ValueError as error:
        print(f"fleetscale simulate --sweep: {error}", file=sys.stderr)
        return 2
    policies = list(SWEEP_POLICIES)
    if args.sweep_policies:
        policies = [p.strip() for p in args.sweep_policies.split(",") if p.strip()]
        policies += [] if "oracle" in policies else ["oracle"]
    _, section = run_sweep(
        Path(args.out),
        traces_dir,
        selected,
        policies=policies,
        progress=_progress(args),
        jobs=args.sweep_jobs,
    )
    page = Path(args.docs_dir) / "benchmark-sweep.md"
    if page.parent.is_dir():
        start, end = SWEEP_MARKERS
        page.write_text(
            "# Benchmark: the robustness sweep\n\n"
            "How the shipped defaults generalize: every standard scenario across seeds, loads "
            "and model profiles ([benchmark.md](benchmark.md) describes the scenarios, the "
            "policies and the bar).\n\n"
            f"{start}\n{section}{end}\n",
            encoding="utf-8",
        )
    print(section)
    return 0


def _standard() -> list[str]:
    from fleetscale.sim.scenarios import STANDARD_SET

    return list(STANDARD_SET)
