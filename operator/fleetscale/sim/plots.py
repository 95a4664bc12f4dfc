"""PNG plots of a scenario run: the fleet over time, one panel per policy.

Role: draw, for each policy, the demand (replicas the oracle says are needed), the ready and
desired replicas, the node capacity (nodes x replicas per node) and the shed flag (shaded), on
one time axis. Needs the ``sim`` extra (matplotlib). Callers: the CLI and the benchmark.
"""

from __future__ import annotations

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
