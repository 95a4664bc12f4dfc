"""The execute step of an AcceleratorPool tick: node commands to the provider, and what happened.

Role: ``node_commands`` (pure) turns a ``CapacityPlan`` into what is done this tick: the empty
nodes to release (named, with their provider IDs), the size to grow to, and cordons of ours a
previous tick left behind on nodes it did not release. ``execute`` carries them out and returns
a ``NodeOutcome``: the nodes released, the ones kept and why, whether the group grew, or the
``ProviderError`` that stopped it. Nothing here records history:
``planner.commit.commit_node_actions`` does that from the outcome. Callers: ``tick``.

A node is released only if it is still empty when it goes. The plan was made from pods read
earlier in the tick, and the scheduler may have bound a pod there since; so each node is
cordoned first (no new pod lands), its pods are read again, and only then is it released, by
name, through the provider; if a workload pod is there, or the provider cannot name the node in
its group, the cordon is lifted and the node kept. The group grows through its size only; it
never shrinks but by the nodes released.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from fleetscale.controller.acceleratorpools.nodes import Cordons, is_workload
from fleetscale.controller.acceleratorpools.ports import ClusterReader, NodeCordoner
from fleetscale.kubeapi import describe
from fleetscale.nodepools.base import NodePoolProvider, NodeRef, ProviderError
from fleetscale.planner.capacity import CapacityPlan

T = TypeVar("T")

# Why a node chosen for release was kept (CamelCase, as Event and log fields).
WORKLOAD_ARRIVED = "WorkloadPodArrived"
NOT_IN_GROUP = "NotInProviderGroup"
# Cordoning a node, or reading its pods again, failed: nothing more is released this tick.
RELEASE_CHECK_FAILED = "ReleaseCheckFailed"


@dataclass(frozen=True)
class NodeCommands:
    """What is done this tick."""

    release: tuple[NodeRef, ...]  # empty nodes to release, each checked again first
    grow_to: int  # the size the plan wants once the releases are done
    uncordon: tuple[str, ...] = ()  # our cordons left by a tick that stopped midway
    cordoned_by_others: frozenset[str] = frozenset()  # not ours to cordon, nor to lift


@dataclass(frozen=True)
class KeptNode:
    """A node chosen for release that stayed."""

    name: str
    reason: str  # WorkloadPodArrived, NotInProviderGroup
    message: str


@dataclass(frozen=True)
class NodeOutcome:
    """What happened."""

    released: tuple[str, ...] = ()  # nodes the provider removed
    kept: tuple[KeptNode, ...] = ()
    grew: bool = False  # the provider took a larger size
    size: int | None = None  # the provider's size after this tick; None: nothing was sent
    error: ProviderError | None = None

    @property
    def applied(self) -> bool:
        return self.error is None

    @property
    def resized(self) -> bool:
        """The provider's size changed: it grew, or released nodes."""
        return self.grew or bool(self.released)


def node_commands(
    plan: CapacityPlan,
    provider_ids: Mapping[str, str],
    cordons: Cordons,
    releasing: Collection[str],
) -> NodeCommands:
    """What a plan asks for, given the pool's cordoned nodes and those released earlier that
    still exist (they keep their cordon: no pod may land on a node on its way out)."""
    release = tuple(NodeRef(n, provider_ids.get(n, "")) for n in plan.release_nodes)
    return NodeCommands(
        release=release,
        grow_to=plan.desired_nodes,
        uncordon=tuple(sorted(cordons.ours - set(plan.release_nodes) - set(releasing))),
        cordoned_by_others=cordons.others,
    )


async def execute(
    todo: NodeCommands,
    provider: NodePoolProvider,
    cluster: ClusterReader,
    cordoner: NodeCordoner,
    requested_nodes: int,
) -> NodeOutcome:
    """Carry out ``todo`` on a group of ``requested_nodes``: lift stale cordons, release each
    node that is still empty, then grow. Never raises a ProviderError: the outcome carries it,
    with what was done before it."""
    released: list[str] = []
    kept: list[KeptNode] = []
    try:
        for name in todo.uncordon:
            await _checked(cordoner.uncordon(name), f"uncordon Node {name}")
        for node in todo.release:
            ours = node.name not in todo.cordoned_by_others
            stayed = await _release_one(node, provider, cluster, cordoner, ours)
            if stayed is None:
                released.append(node.name)
            else:
                kept.append(stayed)
        size = requested_nodes - len(released)
        if todo.grow_to > size:
            await provider.set_desired(todo.grow_to)
            return NodeOutcome(tuple(released), tuple(kept), grew=True, size=todo.grow_to)
    except ProviderError as error:
        size = requested_nodes - len(released)
        return NodeOutcome(tuple(released), tuple(kept), size=size, error=error)
    return NodeOutcome(tuple(released), tuple(kept), size=size)


async def _release_one(
    node: NodeRef,
    provider: NodePoolProvider,
    cluster: ClusterReader,
    cordoner: NodeCordoner,
    ours: bool,
) -> KeptNode | None:
    """Cordon, read the node's pods again, release it if still empty; else why it stayed."""
    if ours:
        await _checked(cordoner.cordon(node.name), f"cordon Node {node.name}")
    try:
        pods = await _checked(cluster.pods_on([node.name]), f"read the pods on {node.name}")
        arrived = sorted(
            f"{(p.get('metadata') or {}).get('namespace')}/{(p.get('metadata') or {}).get('name')}"
            for p in pods
            if is_workload(p)
        )
        if arrived:
            stayed = KeptNode(
                node.name,
                WORKLOAD_ARRIVED,
                f"{', '.join(arrived)} landed on it after it was chosen",
            )
        elif node.name in await provider.release([node]):
            return None
        else:
            stayed = KeptNode(
                node.name, NOT_IN_GROUP, f"the {provider.kind} provider cannot name it in its group"
            )
    except ProviderError:
        if ours:  # a later tick lifts it if this fails too (the cordon carries our mark)
            with contextlib.suppress(ProviderError):
                await _checked(cordoner.uncordon(node.name), f"uncordon Node {node.name}")
        raise
    if ours:
        await _checked(cordoner.uncordon(node.name), f"uncordon Node {node.name}")
    return stayed


async def _checked(call: Awaitable[T], what: str) -> T:
    """``call``'s result; any failure as ProviderError(ReleaseCheckFailed)."""
    try:
        return await call
    except ProviderError:
        raise
    except Exception as error:
        raise ProviderError(RELEASE_CHECK_FAILED, f"{what}: {describe(error)}") from error
