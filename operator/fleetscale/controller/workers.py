"""One tick loop per live object, started and stopped as the watch reports the object.

Role: kopf watches the two kinds and hands every event to ``Workers.observe``; the workers keep
each object's latest body (updated in place, so its loop always reads the live spec) and run
one ``loop.run_ticks`` task per object, stopped when the object is deleted or the operator
exits. Unlike kopf daemons, this needs no finalizer on the objects: nothing is written to an
object just because the operator watches it, so a standby replica writes nothing at all, and
deleting thousands of pools is not held up by finalizer removals. What a deleted pool leaves
behind is cleaned by ``on_deleted`` (metrics, the shed flag). Callers: ``controller.handlers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fleetscale.logs import get_logger

ObjectKey = tuple[str, str]  # (namespace or "", name)


class StopReason(enum.Enum):
    DELETED = "Deleted"
    EXITING = "OperatorExiting"


class StopFlag:
    """A loop's stop signal: false until set; ``wait`` returns when set or after a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: StopReason | None = None

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the loop's contract)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self._event.is_set()


# (key, live body, stop flag) -> the object's loop.
LoopFactory = Callable[[ObjectKey, dict[str, Any], StopFlag], Awaitable[None]]


class Workers:
    """The running loops of one kind, by object."""

    def __init__(
        self,
        kind: str,
        run_loop: LoopFactory,
        on_deleted: Callable[[ObjectKey, Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.kind = kind
        self._run_loop = run_loop
        self._on_deleted = on_deleted
        self._bodies: dict[ObjectKey, dict[str, Any]] = {}
        self._flags: dict[ObjectKey, StopFlag] = {}
        self._tasks: dict[ObjectKey, asyncio.Task[None]] = {}
        self._log = get_logger("fleetscale.workers", kind=kind)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, key: object) -> bool:
        return key in self._tasks

    async def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Follow one watch event: start, refresh or stop the object's loop."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            await self.remove(key, body)
            return
        live = self._bodies.get(key)
        if live is not None:
            live.clear()
            live.update(body)  # the loop reads this very dict: the next tick sees the change
            return
        live = dict(body)
        flag = StopFlag()
        self._bodies[key], self._flags[key] = live, flag
        self._tasks[key] = asyncio.create_task(
            self._run(key, live, flag), name=f"fleetscale-{self.kind}-{key[0]}/{key[1]}"
        )

    async def _run(self, key: ObjectKey, live: dict[str, Any], flag: StopFlag) -> None:
        try:
            await self._run_loop(key, live, flag)
        except Exception:  # a loop that dies would silently stop managing its object
            self._log.exception("loop_failed", reason="ReconcileError", object=f"{key[0]}/{key[1]}")

    async def remove(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        """Stop the object's loop (it was deleted) and clean up after it."""
        flag, task = self._flags.pop(key, None), self._tasks.pop(key, None)
        self._bodies.pop(key, None)
        if flag is None or task is None:
            return
        flag.set(StopReason.DELETED)
        await task
        if self._on_deleted is not None:
            await self._on_deleted(key, body)

    async def stop_all(self, grace_seconds: float) -> None:
        """Stop every loop (the operator exits): an in-flight tick may finish within
        ``grace_seconds`` (so a scale write is not left without its status); then cancel."""
        for flag in self._flags.values():
            flag.set(StopReason.EXITING)
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._flags.clear()
        self._bodies.clear()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
