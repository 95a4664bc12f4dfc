"""The decision core: a pure function from (spec, observation, state, now) to a decision.

No I/O, no clock, no logging, no Kubernetes or Prometheus client (enforced by import-linter).
Callers: the controller's reconcile, the simulator, ``fleetscale explain``.
"""
