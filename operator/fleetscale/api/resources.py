"""The CRDs fleetscale serves, with their names and printer columns.

Role: the single list the CRD generator walks. Callers: ``fleetscale crd`` and tests.
"""

from __future__ import annotations

from fleetscale.api import acceleratorpool as apool
from fleetscale.api import inferencepool as ipool
from fleetscale.api.crdgen import CrdSpec, PrinterColumn

INFERENCE_POOL = CrdSpec(
    kind=ipool.KIND,
    plural=ipool.PLURAL,
    singular=ipool.SINGULAR,
    scope="Namespaced",
    spec_model=ipool.InferencePoolSpec,
    status_model=ipool.InferencePoolStatus,
    description=(
        "InferencePool sizes one model's serving fleet (replicas and, through an "
        "AcceleratorPool, GPU nodes) to its demand, read from Prometheus, and raises a "
        "shed-load flag when the fleet is at a limit it may not cross."
    ),
    short_names=ipool.SHORT_NAMES,
    categories=ipool.CATEGORIES,
    printer_columns=(
        PrinterColumn("Target", ".spec.targetRef.name", description="Scaled workload"),
        PrinterColumn("Ready", ".status.readyReplicas", "integer", "Ready replicas"),
        PrinterColumn("Desired", ".status.desiredReplicas", "integer", "Desired replicas"),
        PrinterColumn("Max", ".spec.replicas.max", "integer", "Max replicas", priority=1),
        PrinterColumn("Queue", ".status.observed.queueDepth", "number", "Waiting requests"),
        PrinterColumn("GPU%", ".status.observed.gpuUtilizationPercent", "number", "GPU util"),
        PrinterColumn("Shed", ".status.shedLoad.active", "boolean", "Shed-load flag"),
        PrinterColumn(
            "Refused", ".status.shedLoad.fraction", "number", "Share of requests refused"
        ),
        PrinterColumn("Mode", ".spec.mode", description="Active, DryRun or Paused", priority=1),
        PrinterColumn(
            "Reason", ".status.lastDecisionReason", description="Last decision", priority=1
        ),
        PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    ),
)

ACCELERATOR_POOL = CrdSpec(
    kind=apool.KIND,
    plural=apool.PLURAL,
    singular=apool.SINGULAR,
    scope="Cluster",
    spec_model=apool.AcceleratorPoolSpec,
    status_model=apool.AcceleratorPoolStatus,
    description=(
        "AcceleratorPool is a group of identical accelerator nodes that InferencePools draw "
        "from. fleetscale plans its node count jointly with the replicas of every InferencePool "
        "on it, higher priority first, and requests nodes before model pods go Pending."
    ),
    short_names=apool.SHORT_NAMES,
    categories=apool.CATEGORIES,
    printer_columns=(
        PrinterColumn("Provider", ".status.provider", description="Node-pool backend"),
        PrinterColumn("Resource", ".spec.resourceName", description="Accelerator", priority=1),
        PrinterColumn("Per-Node", ".spec.acceleratorsPerNode", "integer", "Per node", priority=1),
        PrinterColumn("Ready", ".status.readyNodes", "integer", "Ready nodes"),
        PrinterColumn("Provisioning", ".status.provisioningNodes", "integer", "Nodes coming"),
        PrinterColumn("Desired", ".status.desiredNodes", "integer", "Desired nodes"),
        PrinterColumn("Max", ".spec.nodes.max", "integer", "Max nodes"),
        PrinterColumn("In-Use", ".status.acceleratorsInUse", "integer", "Accelerators in use"),
        PrinterColumn(
            "Reason", ".status.lastDecisionReason", description="Last decision", priority=1
        ),
        PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    ),
)

ALL_CRDS = (INFERENCE_POOL, ACCELERATOR_POOL)
