"""The EKS provider: size an Amazon EKS managed node group through boto3 (extra ``eks``).

Role: read and grow ``scalingConfig.desiredSize`` of one managed node group with
``DescribeNodegroup`` / ``UpdateNodegroupConfig``; release chosen empty nodes with Auto Scaling's
``TerminateInstanceInAutoScalingGroup`` (decrementing the desired capacity), the call Cluster
Autoscaler itself uses on EKS, so a shrink removes exactly those instances and never a busy one.
boto3 is synchronous: every call runs in a worker thread. Credentials and region come from the
SDK's default chain (IRSA / EKS Pod Identity in a cluster). Caller: the AcceleratorPool
controller.

Contract (see ``base``): a node group tagged ``k8s.io/cluster-autoscaler/enabled=true`` is
discovered by Cluster Autoscaler: every call raises ``ProviderConflict``. A size outside the
node group's own minSize..maxSize raises ``ProviderError(OutsideNodeGroupBounds)``: widen the
node group, fleetscale does not; a size below the node group's is refused. ``release`` needs the
Node's providerID (``aws:///<zone>/<instance-id>``) and terminates only instances that Auto
Scaling reports in one of the node group's own Auto Scaling groups (``DescribeAutoScaling
Instances``); other Nodes are left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from fleetscale.api.acceleratorpool import EksProvider
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    OUT_OF_BOUNDS,
    PROVIDER_FAILED,
    PROVIDER_UNAVAILABLE,
    NodeGroupSize,
    NodeRef,
    ProviderConflict,
    ProviderError,
    shrink_refused,
)

T = TypeVar("T")

AUTOSCALER_TAG = "k8s.io/cluster-autoscaler/enabled"


def instance_id(provider_id: str) -> str | None:
    """``aws:///us-east-1a/i-0abc`` -> ``i-0abc``; None for other clouds or an empty id."""
    if not provider_id.startswith("aws://"):
        return None
    tail = provider_id.rsplit("/", 1)[-1]
    return tail if tail.startswith("i-") else None


class EksNodePool:
    """Scales one EKS managed node group."""

    kind = "eks"

    def __init__(
        self,
        config: EksProvider,
        eks_client: Any = None,
        autoscaling_client: Any = None,
    ) -> None:
        """Clients default to ``boto3.client("eks" / "autoscaling", region_name=...)``."""
        if eks_client is None or autoscaling_client is None:
            try:
                import boto3
            except ImportError as error:
                raise ProviderError(
                    PROVIDER_UNAVAILABLE, "the eks provider needs `pip install fleetscale[eks]`"
                ) from error
            eks_client = eks_client or boto3.client("eks", region_name=config.region)
            autoscaling_client = autoscaling_client or boto3.client(
                "autoscaling", region_name=config.region
            )
        self._eks = eks_client
        self._autoscaling = autoscaling_client
        self._cluster = config.cluster_name
        self._nodegroup = config.nodegroup_name

    def __str__(self) -> str:
        return f"EKS node group {self._cluster}/{self._nodegroup}"

    async def _call(self, what: str, function: Callable[..., T], **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(function, **kwargs)
        except Exception as error:
            code = _error_code(error)
            if code is None:
                raise ProviderError(PROVIDER_FAILED, f"{what}: {error}") from error
            reason = GROUP_NOT_FOUND if code == "ResourceNotFoundException" else PROVIDER_FAILED
            raise ProviderError(reason, f"{what}: {code}: {error}") from error

    async def _nodegroup_info(self) -> Mapping[str, Any]:
        answer = await self._call(
            f"describe {self}",
            self._eks.describe_nodegroup,
            clusterName=self._cluster,
            nodegroupName=self._nodegroup,
        )
        nodegroup: Mapping[str, Any] = answer["nodegroup"]
        if str((nodegroup.get("tags") or {}).get(AUTOSCALER_TAG, "")).lower() == "true":
            raise ProviderConflict(
                f"{self} is tagged {AUTOSCALER_TAG}=true, so Cluster Autoscaler manages it; "
                "remove the tag, or use the placeholder provider"
            )
        return nodegroup

    async def current(self) -> NodeGroupSize:
        scaling = (await self._nodegroup_info()).get("scalingConfig") or {}
        return NodeGroupSize(desired=int(scaling.get("desiredSize", 0)))

    async def set_desired(self, nodes: int) -> None:
        scaling = dict((await self._nodegroup_info()).get("scalingConfig") or {})
        size = int(scaling.get("desiredSize", 0))
        if size == nodes:
            return
        if nodes < size:
            raise shrink_refused(self, size, nodes)
        low, high = int(scaling.get("minSize", 0)), int(scaling.get("maxSize", 0))
        if not low <= nodes <= high:
            raise ProviderError(
                OUT_OF_BOUNDS,
                f"{self} allows {low}..{high} nodes, fleetscale wants {nodes}: widen the node "
                "group's scaling limits or lower the AcceleratorPool's nodes bounds",
            )
        await self._call(
            f"resize {self} to {nodes}",
            self._eks.update_nodegroup_config,
            clusterName=self._cluster,
            nodegroupName=self._nodegroup,
            scalingConfig={"minSize": low, "maxSize": high, "desiredSize": nodes},
        )

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        instances = {ref.name: i for ref in nodes if (i := instance_id(ref.provider_id))}
        if not instances:
            return ()
        resources = (await self._nodegroup_info()).get("resources") or {}
        groups = {g.get("name") for g in resources.get("autoScalingGroups") or []}
        answer = await self._call(
            f"find the Auto Scaling groups of instances of {self}",
            self._autoscaling.describe_auto_scaling_instances,
            InstanceIds=sorted(instances.values()),
        )
        members = {
            i["InstanceId"]
            for i in answer.get("AutoScalingInstances") or []
            if i.get("AutoScalingGroupName") in groups
        }
        removed: list[str] = []
        for name, instance in instances.items():
            if instance not in members:
                continue  # not an instance of this node group: never terminate it
            await self._call(
                f"terminate instance {instance} of {self}",
                self._autoscaling.terminate_instance_in_auto_scaling_group,
                InstanceId=instance,
                ShouldDecrementDesiredCapacity=True,
            )
            removed.append(name)
        return tuple(removed)


def _error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, without importing botocore here."""
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code else None
    return None
