"""Rate limits hold across a failed status write and a crash between /scale and the status
write: the change of size is recorded in status (as an intent) before it is made, and the next
tick settles the intent against the target's own size."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from test_reconcile import NOW, POOL, QUEUE, TARGET, World, spec

from fleetscale.controller.conditions import apply_merge_patch
from fleetscale.controller.inferencepools import reconcile

# +2 replicas per 60 s, nothing else: the limit the failed writes used to lose.
TWO_PER_MINUTE = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
    },
    "scaleDown": {"stabilizationWindowSeconds": 300, "policies": []},
}


class StatusOfTheApiServer:
    """The pool's status as the API server keeps it; status writes can be made to fail."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.fail = False
        self.patches: list[dict[str, Any]] = []

    async def patch_status(
        self, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> None:
        if self.fail:
            raise ConnectionError("the API server is unreachable")
        self.patches.append(json.loads(json.dumps(dict(patch))))
        self.status = apply_merge_patch(self.status, patch)


async def tick(
    world: World, api: StatusOfTheApiServer, now: float, status_write_fails: bool = False
) -> None:
    """One tick as the daemon runs it: read the stored status, write the patch (or fail)."""
    world.signals.set_value(QUEUE, 100, sampled_at=now)
    result = await reconcile(POOL, spec(behavior=TWO_PER_MINUTE), api.status, world.deps, now)
    if result.patch and not status_write_fails:
        # A failed write is logged by the daemon and retried at the next tick.
        with contextlib.suppress(ConnectionError):
            await api.patch_status(POOL.namespace, POOL.name, result.patch)


async def test_failing_status_writes_do_not_lift_the_rate_limit() -> None:
    world = World(replicas=2)
    api = StatusOfTheApiServer()
    world.deps.status_writer = api
    # Every tick's status write (after its /scale) fails, ten ticks in a row.
    for second in range(10):
        await tick(world, api, NOW + second, status_write_fails=True)
    # The +2 per 60 s policy holds: the change was recorded before it was made.
    assert world.scaler.targets[TARGET].spec_replicas == 4


async def test_a_crash_between_scale_and_status_write_keeps_the_rate_limit() -> None:
    world = World(replicas=2)
    api = StatusOfTheApiServer()
    world.deps.status_writer = api

    # The first tick records its intent, scales, and dies before its status write.
    world.signals.set_value(QUEUE, 100, sampled_at=NOW)
    await reconcile(POOL, spec(behavior=TWO_PER_MINUTE), api.status, world.deps, NOW)
    assert world.scaler.targets[TARGET].spec_replicas == 4
    assert api.status["pendingScale"]["toReplicas"] == 4

    # A new operator (fresh memory) starts from what the API server holds.
    successor = World(replicas=2)
    successor.scaler = world.scaler
    successor.deps.scaler = world.scaler
    successor.deps.status_writer = api
    for second in range(1, 10):
        await tick(successor, api, NOW + second)
    assert world.scaler.targets[TARGET].spec_replicas == 4
    assert "pendingScale" not in api.status  # settled: the change is a scale event now
    assert [e["delta"] for e in api.status["scaleEvents"]] == [2]


async def test_an_intent_that_never_happened_is_dropped() -> None:
    """Crashed after recording the intent, before /scale: nothing counts against the limit."""
    world = World(replicas=2)
    api = StatusOfTheApiServer()
    world.deps.status_writer = api
    world.scaler.fail_next(RuntimeError("the process died here"))
    world.signals.set_value(QUEUE, 100, sampled_at=NOW)
    await reconcile(POOL, spec(behavior=TWO_PER_MINUTE), api.status, world.deps, NOW)
    assert world.scaler.targets[TARGET].spec_replicas == 2
    await tick(world, api, NOW + 1)
    assert world.scaler.targets[TARGET].spec_replicas == 4  # not held back by a phantom change


async def test_no_intent_recorded_no_scale() -> None:
    """If the intent cannot be written, the change is not made (it could not be remembered)."""
    world = World(replicas=2)
    api = StatusOfTheApiServer()
    world.deps.status_writer = api
    api.fail = True
    world.signals.set_value(QUEUE, 100, sampled_at=NOW)
    result = await reconcile(POOL, spec(behavior=TWO_PER_MINUTE), api.status, world.deps, NOW)
    assert world.scaler.targets[TARGET].spec_replicas == 2
    assert result.reason == "ScaleFailed"
