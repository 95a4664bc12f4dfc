"""PNG plots of a scenario run: the fleet over time, and the signals an autoscaler reads.

Role: ``plot_run`` draws, for each policy, the demand (replicas the oracle says are needed),
the ready and desired replicas, the node capacity (nodes x replicas per node) and the shed flag
(shaded), on one time axis. ``plot_signals`` draws, for a few policies, what vLLM exports as
the fleet runs: KV-cache usage (blocks used / all blocks), requests running and waiting per
Ready replica, against the sequence cap, so one sees which limit binds. Needs the ``sim`` extra
(matplotlib). Callers: the CLI and the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetscale.sim.runner import ScenarioRun


def plot_run(run: ScenarioRun, path: Path, dpi: int = 72) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(run.summaries)
    per_node = run.scenario.config.replicas_per_node
    step = run.scenario.config.record_every_seconds
    demand = run.demand_replicas[::step]
    figure, axes = plt.subplots(
        len(names),
        1,
        sharex=True,
        sharey=True,  # the same scale in every panel, so fleets compare at a glance
        figsize=(10, 1.55 * len(names) + 0.6),
        squeeze=False,
    )
    for axis, name in zip(axes[:, 0], names, strict=True):
        timeline = run.results[name].timeline
        minutes = [t / 60 for t in timeline.time_seconds]
        demand_minutes = [i * step / 60 for i in range(len(demand))]
        axis.fill_between(
            demand_minutes, demand, step="post", color="0.85", label="demand (replicas needed)"
        )
        axis.step(
            minutes,
            [n * per_node for n in timeline.nodes],
            where="post",
            color="tab:orange",
            linewidth=1,
            label="node capacity (replicas)",
        )
        axis.step(
            minutes,
            timeline.desired_replicas,
            where="post",
            color="tab:blue",
            linewidth=0.8,
            linestyle="--",
            label="desired replicas",
        )
        axis.step(
            minutes,
            timeline.ready_replicas,
            where="post",
            color="tab:blue",
            linewidth=1.4,
            label="ready replicas",
        )
        shedding = [m for m, on in zip(minutes, timeline.shed, strict=True) if on]
        for start in shedding:
            axis.axvspan(start, start + step / 60, color="tab:red", alpha=0.25, linewidth=0)
        summary = run.summaries[name]
        axis.set_title(
            f"{name}: SLO {summary.slo_attainment:.1%}, shed {summary.shed_rate:.1%}, "
            f"timeout {summary.timeout_rate:.1%}, {summary.gpu_hours:.0f} GPU-h",
            fontsize=8,
            loc="left",
        )
        axis.tick_params(labelsize=7)
        axis.set_ylabel("replicas", fontsize=7)
        axis.set_xlim(0, max(minutes) if minutes else 1)
    axes[0, 0].legend(fontsize=6, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel("minutes (red: shed flag up)", fontsize=7)
    figure.suptitle(f"{run.scenario.title}: {run.scenario.name}", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def plot_signals(
    run: ScenarioRun,
    path: Path,
    policies: Sequence[str] = ("fleetscale", "static"),
    dpi: int = 72,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in policies if name in run.results]
    max_seqs = run.scenario.config.model.max_num_seqs
    figure, axes = plt.subplots(
        len(names), 1, sharex=True, figsize=(10, 1.9 * len(names) + 0.6), squeeze=False
    )
    for axis, name in zip(axes[:, 0], names, strict=True):
        timeline = run.results[name].timeline
        minutes = [t / 60 for t in timeline.time_seconds]
        ready = [max(1, r) for r in timeline.ready_replicas]
        running = [n / r for n, r in zip(timeline.running, ready, strict=True)]
        waiting = [n / r for n, r in zip(timeline.waiting, ready, strict=True)]
        axis.plot(
            minutes,
            timeline.kv_cache_usage_percent,
            color="tab:purple",
            linewidth=1,
            label="KV-cache usage % (blocks used / all)",
        )
        axis.set_ylim(0, 105)
        axis.set_ylabel("KV %", fontsize=7)
        axis.tick_params(labelsize=7)
        counts = axis.twinx()
        counts.plot(
            minutes, running, color="tab:blue", linewidth=1, label="running per ready replica"
        )
        counts.plot(
            minutes,
            waiting,
            color="tab:red",
            linewidth=1,
            label="waiting per ready replica (preempted included)",
        )
        counts.axhline(
            max_seqs, color="0.5", linestyle=":", linewidth=1, label=f"max_num_seqs ({max_seqs})"
        )
        counts.set_yscale("symlog", linthresh=10)
        counts.set_ylim(bottom=0)
        counts.set_ylabel("requests / replica", fontsize=7)
        counts.tick_params(labelsize=7)
        summary = run.summaries[name]
        axis.set_title(
            f"{name}: peak KV {max(timeline.kv_cache_usage_percent, default=0):.0f}%, peak "
            f"running {max(running, default=0):.0f} per replica, "
            f"{summary.preemptions:,} preemptions",
            fontsize=8,
            loc="left",
        )
        lines = axis.get_legend_handles_labels()
        more = counts.get_legend_handles_labels()
        axis.legend(lines[0] + more[0], lines[1] + more[1], fontsize=6, loc="upper left", ncol=2)
    axes[-1, 0].set_xlabel("minutes", fontsize=7)
    figure.suptitle(f"{run.scenario.title}: what vLLM exports ({run.scenario.name})", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
