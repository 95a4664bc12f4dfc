"""The AcceleratorPool controller: nodes sized jointly for every InferencePool on a pool.

Layers, mirroring ``controller.inferencepools``: ``ports`` (what a tick needs), ``cluster``
(Nodes and their pods), ``demand`` (the InferencePools' demand from their status), ``nodes``
(Node objects to the planner's view), ``execute`` (provider calls), ``report`` (status and
Events) and ``tick`` (the steps in order). Callers: ``controller.handlers``, ``controller.
wiring``, tests.
"""

from fleetscale.controller.acceleratorpools.ports import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
)
from fleetscale.controller.acceleratorpools.tick import (
    AcceleratorPoolTickResult,
    reconcile_accelerator_pool,
)

__all__ = [
    "AcceleratorPoolDependencies",
    "AcceleratorPoolRef",
    "AcceleratorPoolTickResult",
    "reconcile_accelerator_pool",
]
