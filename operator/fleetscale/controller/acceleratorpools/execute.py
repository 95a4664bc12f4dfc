"""The execute step of an AcceleratorPool tick: node commands to the provider, and what happened.

Role: ``node_commands`` (pure) turns a ``CapacityPlan`` into what the provider is told: the
empty nodes to prefer for removal (named, with their provider IDs) and the size to hold.
``execute`` sends them and returns a ``NodeOutcome``: which releases and which resize the
provider took, or the ``ProviderError`` that stopped it. Nothing here records history:
``planner.commit.commit_node_actions`` does that from the outcome. Callers: ``tick``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetscale.nodepools.base import NodePoolProvider, NodeRef, ProviderError
from fleetscale.planner.capacity import CapacityPlan


@dataclass(frozen=True)
class NodeCommands:
    """What the provider is told this tick."""

    prefer_removal: tuple[NodeRef, ...]  # empty nodes the next shrink must take
    set_size: int | None  # the size to hold; None when the provider already holds it


@dataclass(frozen=True)
class NodeOutcome:
    """What the provider took."""

    released: tuple[str, ...] = ()  # nodes marked and shrunk away
    resized: bool = False  # the planned size differs from the previous one and was taken
    error: ProviderError | None = None

    @property
    def applied(self) -> bool:
        return self.error is None


def node_commands(
    plan: CapacityPlan, requested_nodes: int, provider_ids: Mapping[str, str]
) -> NodeCommands:
    """The provider calls a plan asks for, given the size the provider holds now."""
    return NodeCommands(
        prefer_removal=tuple(NodeRef(n, provider_ids.get(n, "")) for n in plan.release_nodes),
        set_size=plan.desired_nodes if plan.desired_nodes != requested_nodes else None,
    )


async def execute(
    plan: CapacityPlan, provider: NodePoolProvider, todo: NodeCommands
) -> NodeOutcome:
    """Send ``todo`` to the provider: marks first, then the size. Never raises a
    ProviderError: the outcome carries it, and then nothing counts as done."""
    try:
        if todo.prefer_removal:
            await provider.prefer_removal(list(todo.prefer_removal))
        if todo.set_size is not None:
            await provider.set_desired(todo.set_size)
    except ProviderError as error:
        return NodeOutcome(error=error)
    return NodeOutcome(
        released=tuple(node.name for node in todo.prefer_removal),
        resized=plan.desired_nodes != plan.current_nodes,
    )
