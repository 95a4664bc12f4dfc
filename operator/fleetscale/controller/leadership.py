"""Leadership as the controller sees it: a gate for the tick loops, and what changes with it.

Role: ``LeadershipGate`` admits the tick loops only while this replica leads (the elector's
``is_leader``, the same check the ``FencedApiClient`` makes before every write) and lets a
standby's loops wait without polling. ``on_leadership_change`` is what a transition does
beyond the elector's own log line: the ``fleetscale_leader`` gauge, and, when leadership is
lost, dropping every per-pool gauge and the memory of published shed flags, so that a former
leader shows nothing stale and, should it lead again, republishes every flag from its first
tick. The flags themselves are left to the new leader, which publishes each pool's current
flag at its first tick (within one poll interval): a replica that has lost its lease may not
write at all. Callers: ``controller.handlers``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fleetscale.controller.loop import Stopped
from fleetscale.election import LeaderElector
from fleetscale.metrics import OperatorMetrics


class LeadershipGate:
    """``loop.Gate`` over a leader elector."""

    def __init__(self, elector: LeaderElector) -> None:
        self._elector = elector
        self._acquired = asyncio.Event()

    def admits(self) -> bool:
        return self._elector.is_leader()

    def notify(self, leading: bool) -> None:
        """Wake the waiting loops when leadership is acquired."""
        if leading:
            self._acquired.set()
        else:
            self._acquired.clear()

    async def wait_admitted(self, stopped: Stopped) -> None:
        if self.admits() or stopped:
            return
        acquired = asyncio.ensure_future(self._acquired.wait())
        stopping = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait({acquired, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (acquired, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def on_leadership_change(
    metrics: OperatorMetrics, forget_published: Callable[[], None]
) -> Callable[[bool], None]:
    """What a leadership transition changes in this process."""

    def changed(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        if not leading:
            metrics.forget_all_pools()
            forget_published()

    return changed
