"""The decision core: a pure function from (spec, observation, state, now) to a decision.

No I/O, no clock, no logging, no Kubernetes or Prometheus client (enforced by import-linter).
Callers: the controller's reconcile, the simulator, ``fleetscale explain``.

``plan`` runs the numbered replica pipeline of ``pipeline`` (metrics, queue, gpu, combine,
shedding while the queue is censored by the gateway, stabilize, rate, capacity, bounds), then
the shed-load flag of ``shed``;
``explain_decision`` renders a decision as plain text.
"""

from fleetscale.planner.explain import explain_decision
from fleetscale.planner.pipeline import plan

__all__ = ["explain_decision", "plan"]
