"""The InferencePool controller: one model's replicas and shed flag, tick by tick.

Layers: ``ports`` (what a tick needs), ``measure`` (the reads), ``execute`` (the writes),
``memory`` (status as the planner's memory), ``report`` (status, Events, metrics) and ``tick``
(validate -> measure/observe -> plan -> execute -> commit -> report). The pure steps in between
live in the planner (``observe``, ``plan``, ``commit``). Callers: ``controller.handlers``,
``controller.wiring``, ``fleetscale explain``, tests.
"""

from fleetscale.controller.inferencepools.ports import (
    InferencePoolDependencies,
    InferencePoolRef,
)
from fleetscale.controller.inferencepools.tick import ReconcileResult, reconcile

__all__ = ["InferencePoolDependencies", "InferencePoolRef", "ReconcileResult", "reconcile"]
