"""Plain-text rendering of a planner decision, one line per step.

Role: what ``fleetscale explain`` prints and what a reader of the simulator's traces sees: the
decision, every numbered step with its replicas, reason and message, then the conditions and
the shed flag. Callers: the CLI, tests, anyone debugging a decision.
"""

from __future__ import annotations

from fleetscale.planner.types import ConditionVerdict, Decision


def _verdict(name: str, verdict: ConditionVerdict) -> str:
    message = f": {verdict.message}" if verdict.message else ""
    return f"{name}={verdict.status} ({verdict.reason}){message}"


def explain_decision(decision: Decision) -> str:
    """A multi-line explanation of ``decision`` (no trailing newline)."""
    lines = [
        f"{decision.reason}: {decision.message}",
        f"replicas: current {decision.current_replicas}, desired {decision.desired_replicas}, "
        f"signals ask for {decision.unconstrained_replicas}",
    ]
    name_width = max((len(step.name) for step in decision.steps), default=0)
    reason_width = max((len(step.reason) for step in decision.steps), default=0)
    for number, step in enumerate(decision.steps, start=1):
        line = f"  {number}. {step.name:<{name_width}} {step.replicas:>5}  {step.reason}"
        if step.message:
            line = f"{line:<{len(line) + reason_width - len(step.reason)}}  {step.message}"
        lines.append(line)
    lines.append(_verdict("MetricsAvailable", decision.metrics_available))
    lines.append(_verdict("ScalingLimited", decision.scaling_limited))
    shed = decision.shed
    retry = f", retryAfterSeconds={shed.retry_after_seconds}" if shed.active else ""
    changed = " (changed)" if shed.changed else ""
    message = f": {shed.message}" if shed.message else ""
    lines.append(f"ShedLoad={shed.active}{changed} ({shed.reason}{retry}){message}")
    return "\n".join(lines)
