"""The AcceleratorPool resource: a group of identical accelerator nodes shared by InferencePools.

Role: the typed, validated form of ``acceleratorpools.fleetscale.io`` (cluster-scoped): which
backend adds and removes its nodes (``provider``), the labels that identify them, how many
accelerators each node has, node bounds and the two timers (scale-down delay, provisioning
timeout); and its status (node counts, the allocation per InferencePool, the planner's memory,
conditions). The same models generate the CRD schema. Callers: the AcceleratorPool controller
(parse spec, render status), the joint capacity planner (reads the spec), the node-pool
providers (read their own provider block), the CRD generator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fleetscale.api.base import (
    DNS_SUBDOMAIN_PATTERN,
    ApiModel,
    Condition,
    DnsLabelName,
    DnsSubdomainName,
)

KIND = "AcceleratorPool"
PLURAL = "acceleratorpools"
SINGULAR = "acceleratorpool"
SHORT_NAMES = ("apool", "apools")
CATEGORIES = ("fleetscale",)

DEFAULT_RESOURCE_NAME = "nvidia.com/gpu"
# The label every node of a pool carries when no other labels are given (and that the kwok
# provider always sets), so `kubectl get nodes -l fleetscale.io/accelerator-pool=h100` works.
POOL_LABEL = "fleetscale.io/accelerator-pool"

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
TolerationOperator = Literal["Exists", "Equal"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]

# A qualified label key: optional DNS-subdomain prefix and a slash, then a name.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class Taint(ApiModel):
    """A node taint (core/v1 Taint without timeAdded)."""

    key: str = Field(min_length=1, max_length=316)
    """Taint key."""
    value: str = Field(default="", max_length=63)
    """Taint value."""
    effect: TaintEffect
    """NoSchedule, PreferNoSchedule or NoExecute."""


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration without tolerationSeconds)."""

    key: str | None = Field(default=None, max_length=316)
    """Taint key to tolerate; empty with operator Exists tolerates every taint."""
    operator: TolerationOperator = "Equal"
    """Exists or Equal."""
    value: str | None = Field(default=None, max_length=63)
    """Value to match with operator Equal."""
    effect: TaintEffect | None = None
    """Effect to match; empty matches all effects."""


class KwokProvider(ApiModel):
    """Fake nodes managed by kwok: simulation, demos and end-to-end tests."""

    name_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    """Prefix of the created Node names, a DNS-1123 subdomain (default: the AcceleratorPool's
    name)."""
    cpu: str = Field(default="96", min_length=1, max_length=32)
    """CPU capacity of each fake node."""
    memory: str = Field(default="1Ti", min_length=1, max_length=32)
    """Memory capacity of each fake node."""
    pods: int = Field(default=110, ge=1, le=10000)
    """Pod capacity of each fake node."""
    taints: tuple[Taint, ...] = Field(default=(), max_length=32)
    """Taints of each fake node besides kwok.x-k8s.io/node=fake:NoSchedule, which every kwok
    node carries so only pods that tolerate it land there."""


class ClusterApiProvider(ApiModel):
    """A Cluster API MachineDeployment, scaled through its /scale subresource."""

    machine_deployment: DnsSubdomainName
    """Name of the MachineDeployment."""
    namespace: DnsLabelName
    """Namespace of the MachineDeployment."""


class PlaceholderProvider(ApiModel):
    """Low-priority placeholder pods that make the cluster's own autoscaler (Cluster Autoscaler,
    Karpenter) provision nodes ahead of the model pods, which then preempt them."""

    namespace: DnsLabelName = "fleetscale-system"
    """Namespace of the placeholder Deployment."""
    priority_class_name: DnsSubdomainName = "fleetscale-placeholder"
    """PriorityClass of the placeholder pods; created if missing, with priorityValue."""
    priority_value: int = Field(default=-10, ge=-1000000000, le=0)
    """Priority of that class: below every model pod, so the model pods preempt placeholders."""
    image: str = Field(default="registry.k8s.io/pause:3.10", min_length=1, max_length=1024)
    """Image of the placeholder container (it only sleeps)."""
    tolerations: tuple[Toleration, ...] = Field(default=(), max_length=32)
    """Tolerations of the placeholder pods, e.g. for the accelerator nodes' taints."""


class EksProvider(ApiModel):
    """An Amazon EKS managed node group (extra `fleetscale[eks]`)."""

    cluster_name: str = Field(min_length=1, max_length=100)
    """EKS cluster name."""
    nodegroup_name: str = Field(min_length=1, max_length=63)
    """Managed node group name."""
    region: str | None = Field(default=None, min_length=1, max_length=32)
    """AWS region (default: the SDK's default chain)."""


class GkeProvider(ApiModel):
    """A Google Kubernetes Engine node pool (extra `fleetscale[gke]`)."""

    project: str = Field(min_length=1, max_length=63)
    """Google Cloud project id."""
    location: str = Field(min_length=1, max_length=63)
    """Region or zone of the cluster."""
    cluster: str = Field(min_length=1, max_length=63)
    """Cluster name."""
    node_pool: str = Field(min_length=1, max_length=63)
    """Node pool name."""


class AksProvider(ApiModel):
    """An Azure Kubernetes Service agent pool (extra `fleetscale[aks]`)."""

    subscription_id: str = Field(min_length=1, max_length=64)
    """Azure subscription id."""
    resource_group: str = Field(min_length=1, max_length=90)
    """Resource group of the managed cluster."""
    cluster_name: str = Field(min_length=1, max_length=63)
    """Managed cluster name."""
    agent_pool: str = Field(min_length=1, max_length=12)
    """Agent pool name."""


ProviderKind = Literal["kwok", "clusterAPI", "placeholder", "eks", "gke", "aks"]


class ProviderSpec(ApiModel):
    """Which backend adds and removes the pool's nodes. Exactly one must be set."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        (
            "[has(self.kwok), has(self.clusterAPI), has(self.placeholder), has(self.eks), "
            "has(self.gke), has(self.aks)].filter(x, x).size() == 1",
            "provider must set exactly one of kwok, clusterAPI, placeholder, eks, gke, aks",
        ),
    )

    kwok: KwokProvider | None = None
    """Fake nodes managed by kwok."""
    cluster_api: ClusterApiProvider | None = Field(default=None, alias="clusterAPI")
    """A Cluster API MachineDeployment."""
    placeholder: PlaceholderProvider | None = None
    """Placeholder pods for clusters run by Cluster Autoscaler or Karpenter."""
    eks: EksProvider | None = None
    """An EKS managed node group."""
    gke: GkeProvider | None = None
    """A GKE node pool."""
    aks: AksProvider | None = None
    """An AKS agent pool."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ProviderSpec:
        blocks = (self.kwok, self.cluster_api, self.placeholder, self.eks, self.gke, self.aks)
        if sum(block is not None for block in blocks) != 1:
            raise ValueError(self.cel_rules[0][1])
        return self

    @property
    def kind(self) -> ProviderKind:
        """The wire name of the chosen backend."""
        if self.kwok is not None:
            return "kwok"
        if self.cluster_api is not None:
            return "clusterAPI"
        if self.placeholder is not None:
            return "placeholder"
        if self.eks is not None:
            return "eks"
        if self.gke is not None:
            return "gke"
        return "aks"


class NodeBounds(ApiModel):
    """Hard bounds on the number of nodes in the pool."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        ("self.min <= self.max", "nodes.min must be less than or equal to nodes.max"),
    )

    min: int = Field(default=0, ge=0, le=10000)
    """Fewest nodes ever kept."""
    max: int = Field(ge=1, le=10000)
    """Most nodes ever requested; reaching it caps replicas (ScalingLimited, MaxNodes)."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> NodeBounds:
        if self.min > self.max:
            raise ValueError(self.cel_rules[0][1])
        return self


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector (metav1.LabelSelectorRequirement)."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        (
            "(self.operator == 'In' || self.operator == 'NotIn') == "
            "(has(self.values) && size(self.values) > 0)",
            "values must be set for the operators In and NotIn, and only for them",
        ),
    )

    key: str = Field(min_length=1, max_length=316)
    """The label key the requirement is about."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: tuple[str, ...] = Field(default=(), max_length=64)
    """The values for In and NotIn; empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(self.cel_rules[0][1])
        if not _LABEL_KEY.match(self.key):
            raise ValueError(f"invalid label key {self.key!r}")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a set of labels meets this requirement (Kubernetes' semantics)."""
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


class LabelSelector(ApiModel):
    """A label selector (metav1.LabelSelector): every label and every expression must match.
    An empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Labels that must all be present with these values."""
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(default=(), max_length=32)
    """Requirements that must all hold."""

    @model_validator(mode="after")
    def _label_keys_valid(self) -> LabelSelector:
        bad = [key for key in self.match_labels if not _LABEL_KEY.match(key)]
        if bad:
            raise ValueError(f"matchLabels: invalid label keys {bad}")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a set of labels is selected."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )


class Tenancy(ApiModel):
    """Which InferencePools may draw accelerators from this pool, and how hard they may push.

    Unset fields admit everyone: a cluster with one team works as before. A claim outside these
    rules is refused: the InferencePool asks for nothing here and holds its size
    (ScalingLimited=True, ClaimRefused), and status.refusedClaims lists it."""

    namespace_selector: LabelSelector | None = None
    """Namespaces, by their labels, whose InferencePools may draw from this pool. Unset: every
    namespace the operator watches. An empty selector also selects every namespace."""
    max_priority: int | None = Field(default=None, ge=-1000000, le=1000000)
    """The highest spec.priority an InferencePool may claim this pool with. A claim above it is
    refused, not lowered: priority decides who is served first and sheds last, and a team may
    not buy its way ahead of the others on this pool. Unset: any priority."""


class AcceleratorPoolSpec(ApiModel):
    """A group of identical accelerator nodes that InferencePools draw from."""

    provider: ProviderSpec
    """The backend that adds and removes nodes."""
    node_labels: dict[str, str] = Field(min_length=1, max_length=32)
    """Labels that identify the pool's nodes (all must match). Providers that create nodes or
    pods put them there: kwok sets them on its nodes, placeholder pods select them."""
    resource_name: str = Field(
        default=DEFAULT_RESOURCE_NAME, min_length=1, max_length=253, pattern=r"^[^/]+/[^/]+$"
    )
    """Extended resource that counts as one accelerator: nvidia.com/gpu, amd.com/gpu,
    google.com/tpu, aws.amazon.com/neuron, ..."""
    accelerators_per_node: int = Field(ge=1, le=1024)
    """Accelerators on each node of the pool."""
    nodes: NodeBounds
    """Bounds on nodes."""
    scale_down_delay_seconds: int = Field(default=120, ge=0, le=86400)
    """An empty node waits this long before it is released (no flapping on short dips)."""
    poll_interval_seconds: int = Field(default=15, ge=1, le=3600)
    """How often the pool is observed and planned."""
    provisioning_timeout_seconds: int = Field(default=900, ge=30, le=86400)
    """A requested node not Ready by then counts as failed capacity: not expected any more,
    reported (condition, Event) and, once it exists and is empty, released."""
    tenancy: Tenancy = Field(default_factory=Tenancy)
    """Which namespaces may draw from the pool, and the highest priority they may claim.
    Default: every namespace, any priority."""

    @model_validator(mode="after")
    def _label_keys_valid(self) -> AcceleratorPoolSpec:
        bad = [key for key in self.node_labels if not _LABEL_KEY.match(key)]
        if bad:
            raise ValueError(f"nodeLabels: invalid label keys {bad}")
        return self


class AllocationStatus(ApiModel):
    """What one InferencePool asked of the pool and what it was granted."""

    namespace: str
    """Namespace of the InferencePool."""
    name: str
    """Name of the InferencePool."""
    priority: int
    """Its priority (higher is served first and sheds last)."""
    accelerators_per_replica: int = Field(ge=0)
    """Accelerators one replica needs."""
    desired_replicas: int = Field(ge=0)
    """Replicas its demand asks for."""
    granted_replicas: int = Field(ge=0)
    """Replicas the pool will hold for it once provisioning finishes (within nodes.max)."""
    max_replicas: int = Field(ge=0)
    """Replicas it may run now (on Ready nodes): the cap handed to its replica planner."""
    accelerators: int = Field(ge=0)
    """Accelerators granted (grantedReplicas x acceleratorsPerReplica)."""
    reason: str
    """CapacityAvailable, MaxNodes, NodesProvisioning or ProvisioningFailed."""
    message: str = ""
    """The limit in plain words."""
    seconds_until_more: float | None = None
    """Expected seconds until provisioning nodes are Ready, when waiting for them."""


class RefusedClaim(ApiModel):
    """An InferencePool that names this pool and was refused (spec.tenancy)."""

    namespace: str
    """Namespace of the InferencePool."""
    name: str
    """Name of the InferencePool."""
    priority: int
    """The priority it claimed."""
    reason: str
    """NamespaceNotAllowed, PriorityAboveMax or NamespaceNotWatched."""
    message: str = ""
    """Why, in plain words."""


class EmptyNode(ApiModel):
    """A node and a time: since when it is empty, or when it was released."""

    name: str
    """Node name."""
    since: datetime
    """When it was first seen empty (emptyNodes) or released (releasingNodes)."""


class AcceleratorPoolStatus(ApiModel):
    """What the operator observed and decided; also the planner's memory across restarts."""

    observed_generation: int | None = None
    """The .metadata.generation last reconciled."""
    provider: str | None = None
    """The backend in use."""
    nodes: int | None = None
    """Nodes the provider currently has requested (including ones not yet registered)."""
    ready_nodes: int | None = None
    """Ready nodes."""
    provisioning_nodes: int | None = None
    """Nodes requested and expected, not Ready yet."""
    failed_nodes: int | None = None
    """Nodes not Ready within provisioningTimeoutSeconds."""
    desired_nodes: int | None = None
    """Nodes the operator wants."""
    accelerators: int | None = None
    """Accelerators on Ready nodes."""
    accelerators_in_use: int | None = None
    """Accelerators requested by pods on Ready nodes."""
    allocations: tuple[AllocationStatus, ...] = ()
    """Per InferencePool: demand, grant and cap, highest priority first."""
    refused_claims: tuple[RefusedClaim, ...] = ()
    """InferencePools that name this pool but may not draw from it (spec.tenancy), and why;
    they get no accelerators here."""
    empty_nodes: tuple[EmptyNode, ...] = ()
    """Empty Ready nodes and since when (for scaleDownDelaySeconds)."""
    releasing_nodes: tuple[EmptyNode, ...] = ()
    """Nodes released and not gone yet, and when (neither capacity nor released again)."""
    failed_node_names: tuple[str, ...] = ()
    """Nodes already reported as failed (the ProvisioningFailed Event is posted once)."""
    scale_up_requested_at: datetime | None = None
    """When nodes were last requested (to time out nodes that never register)."""
    last_scale_time: datetime | None = None
    """When the node count was last changed."""
    last_decision_reason: str | None = None
    """Reason of the last decision (CamelCase)."""
    last_decision_message: str | None = None
    """The last decision in plain words."""
    conditions: tuple[Condition, ...] = ()
    """Ready, ScalingLimited, ProviderError."""


class AcceleratorPool(ApiModel):
    """An AcceleratorPool object as read from the API server (metadata kept loosely)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    spec: AcceleratorPoolSpec
    status: AcceleratorPoolStatus = Field(default_factory=AcceleratorPoolStatus)
