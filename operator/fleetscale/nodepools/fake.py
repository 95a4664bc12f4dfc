"""An in-memory node-pool provider that records every call and injects failures.

Role: stand in for a real backend in controller and simulator tests, with the same contract
(``set_desired`` only grows and is idempotent, ``release`` removes exactly the named nodes it
can name, ``ProviderError`` on failure). Nodes it "creates" are plain names; the caller decides
when they register and turn Ready. Callers: tests, the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetscale.nodepools.base import (
    OUT_OF_BOUNDS,
    PROVIDER_FAILED,
    NodeGroupSize,
    NodeRef,
    ProviderConflict,
    ProviderError,
    shrink_refused,
)


@dataclass
class FakeNodePool:
    """A node group held in memory. ``calls`` lists every call in order, as plain tuples."""

    desired: int = 0
    kind: str = "fake"
    max_size: int | None = None  # the backend's own bound, if any
    conflict: str | None = None  # set to make every call raise ProviderConflict
    fail_next: list[ProviderError] = field(default_factory=list)  # raised one per call
    release_error: ProviderError | None = None  # raised by every release
    calls: list[tuple[object, ...]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # nodes removed, in order
    strangers: set[str] = field(default_factory=set)  # nodes it cannot name in its group
    writes: int = 0  # size changes actually applied

    def _check(self) -> None:
        if self.conflict is not None:
            raise ProviderConflict(self.conflict)
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def current(self) -> NodeGroupSize:
        self.calls.append(("current",))
        self._check()
        return NodeGroupSize(desired=self.desired, current=self.desired)

    async def set_desired(self, nodes: int) -> None:
        self.calls.append(("set_desired", nodes))
        self._check()
        if nodes < self.desired:
            raise shrink_refused("fake node group", self.desired, nodes)
        if self.max_size is not None and nodes > self.max_size:
            raise ProviderError(OUT_OF_BOUNDS, f"size {nodes} outside 0..{self.max_size}")
        if nodes != self.desired:
            self.desired = nodes
            self.writes += 1

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        self.calls.append(("release", tuple(n.name for n in nodes)))
        self._check()
        if self.release_error is not None:
            raise self.release_error
        removed = tuple(
            n.name for n in nodes if n.name not in self.strangers and n.name not in self.released
        )
        self.released.extend(removed)
        self.desired = max(0, self.desired - len(removed))
        self.writes += 1 if removed else 0
        return removed

    def fail_with(self, message: str = "backend unavailable", times: int = 1) -> None:
        """Make the next ``times`` calls raise ProviderError(ProviderFailed)."""
        self.fail_next.extend(ProviderError(PROVIDER_FAILED, message) for _ in range(times))
