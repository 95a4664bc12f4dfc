"""The EKS provider against moto's implementation of the EKS and Auto Scaling APIs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fleetscale.api.acceleratorpool import EksProvider
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    OUT_OF_BOUNDS,
    SHRINK_REFUSED,
    NodeRef,
    ProviderConflict,
    ProviderError,
)
from fleetscale.nodepools.eks import EksNodePool, instance_id

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/eks"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def make_nodegroup(tags: dict[str, str] | None = None, desired: int = 1) -> None:
    eks = boto3.client("eks", region_name=REGION)
    eks.create_cluster(name="prod", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    eks.create_nodegroup(
        clusterName="prod",
        nodegroupName="gpu",
        nodeRole=ROLE,
        subnets=["subnet-1"],
        scalingConfig={"minSize": 0, "maxSize": 4, "desiredSize": desired},
        tags=tags or {},
    )


def provider() -> EksNodePool:
    return EksNodePool(EksProvider(cluster_name="prod", nodegroup_name="gpu", region=REGION))


def scaling() -> dict[str, Any]:
    eks = boto3.client("eks", region_name=REGION)
    config: dict[str, Any] = eks.describe_nodegroup(clusterName="prod", nodegroupName="gpu")[
        "nodegroup"
    ]["scalingConfig"]
    return config


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        pytest.param("aws:///us-east-1a/i-0abc123", "i-0abc123", id="aws"),
        pytest.param("gce://p/z/name", None, id="other-cloud"),
        pytest.param("", None, id="empty"),
    ],
)
def test_instance_id(provider_id: str, expected: str | None) -> None:
    assert instance_id(provider_id) == expected


@pytest.mark.usefixtures("aws")
async def test_reads_and_sets_the_desired_size() -> None:
    make_nodegroup(desired=1)
    pool = provider()
    assert (await pool.current()).desired == 1
    await pool.set_desired(3)
    assert scaling() == {"minSize": 0, "maxSize": 4, "desiredSize": 3}
    assert (await pool.current()).desired == 3


@pytest.mark.usefixtures("aws")
async def test_a_smaller_size_is_refused() -> None:
    """UpdateNodegroupConfig down lets Auto Scaling pick the instances, busy or not."""
    make_nodegroup(desired=3)
    with pytest.raises(ProviderError) as raised:
        await provider().set_desired(2)
    assert raised.value.reason == SHRINK_REFUSED
    assert scaling()["desiredSize"] == 3


@pytest.mark.usefixtures("aws")
async def test_size_outside_the_node_group_limits_is_refused() -> None:
    make_nodegroup()
    with pytest.raises(ProviderError) as raised:
        await provider().set_desired(5)
    assert raised.value.reason == OUT_OF_BOUNDS
    assert scaling()["desiredSize"] == 1


@pytest.mark.usefixtures("aws")
async def test_node_group_discovered_by_cluster_autoscaler_is_refused() -> None:
    make_nodegroup(tags={"k8s.io/cluster-autoscaler/enabled": "true"})
    with pytest.raises(ProviderConflict):
        await provider().set_desired(2)
    assert scaling()["desiredSize"] == 1


@pytest.mark.usefixtures("aws")
async def test_missing_node_group() -> None:
    boto3.client("eks", region_name=REGION).create_cluster(
        name="prod", roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]}
    )
    with pytest.raises(ProviderError) as raised:
        await provider().current()
    assert raised.value.reason == GROUP_NOT_FOUND


def auto_scaling_group(name: str, desired: int) -> list[str]:
    """An Auto Scaling group of ``desired`` running instances; their ids, sorted."""
    ec2 = boto3.client("ec2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    template = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )
    return in_service(name)


def in_service(group_name: str) -> list[str]:
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    return sorted(
        i["InstanceId"]
        for i in group["AutoScalingGroups"][0]["Instances"]
        if i["LifecycleState"] == "InService"
    )


def desired_capacity(group_name: str) -> int:
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


def node(name: str, instance: str) -> NodeRef:
    return NodeRef(name, f"aws:///{REGION}a/{instance}")


@pytest.mark.usefixtures("aws")
async def test_release_terminates_exactly_those_instances_with_a_decrement() -> None:
    make_nodegroup(desired=3)
    eks = boto3.client("eks", region_name=REGION)
    described = eks.describe_nodegroup(clusterName="prod", nodegroupName="gpu")["nodegroup"]
    own_group = described["resources"]["autoScalingGroups"][0]["name"]
    instances = auto_scaling_group(own_group, desired=3)
    strangers = auto_scaling_group("another-group", desired=1)
    victim = instances[1]

    released = await provider().release(
        [node("ip-10-0-0-2", victim), node("ip-10-0-9-9", strangers[0]), NodeRef("no-id")]
    )

    assert released == ("ip-10-0-0-2",)
    assert in_service(own_group) == [i for i in instances if i != victim]
    assert desired_capacity(own_group) == 2
    assert in_service("another-group") == strangers  # not the node group's: left alone
    assert desired_capacity("another-group") == 1
