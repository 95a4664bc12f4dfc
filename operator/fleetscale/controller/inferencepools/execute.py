"""The execute step of an InferencePool tick: turn a decision into writes, report what happened.

Role: ``commands`` (pure) says what a decision asks the world to change, as plain data: the
target's new size, the shed flag to publish, and the ConfigMaps whose flag must go off because
this pool no longer publishes there. ``withdrawal`` (pure) is the last of these alone, for a
tick that does not decide (Paused, an invalid spec, a missing target). ``execute`` carries the
commands out through the ports and returns an ``Outcome`` that says what actually happened.
Nothing here records history: ``planner.commit`` does that from the outcome. Callers: ``tick``.

The shed flag never sticks on: a pool that published the flag on (``status.shedLoad`` records
where) and then stops publishing it, because it is Paused, DryRun, invalid, lost its target or
now names another ConfigMap, turns it off where it was published, with the reason.

Only the pool's own ConfigMap is ever written: one that exists and is not the pool's
(``ConfigMapNotOwned``) is left untouched, and the outcome says so; withdrawing a flag from it
is a no-op (no flag of the pool's is there).

Gateway policies (``spec.shedLoad.gateway``, ``fleetscale.gateways``) follow the same rules:
while an Active pool sheds, its order (fraction, Retry-After, message) is written to the policy
``status.shedLoad.gatewayPolicy`` records; when the flag drops, the pool leaves Active or is
deleted, or the spec names another policy, the recorded one is withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetscale.actuators.base import (
    ActuatorError,
    ConfigMapNotOwned,
    ScaleTargetRef,
    ShedFlag,
    TargetNotFound,
)
from fleetscale.api.inferencepool import (
    GatewayShed,
    InferencePoolSpec,
    InferencePoolStatus,
    PendingScale,
)
from fleetscale.controller.conditions import optional_datetime, whole_seconds
from fleetscale.controller.inferencepools.memory import (
    published_gateway_policy,
    published_shed_config_map,
    shed_was_on,
)
from fleetscale.controller.inferencepools.ports import InferencePoolDependencies, InferencePoolRef
from fleetscale.gateways import target_of
from fleetscale.gateways.base import GatewayConflict, GatewayError, GatewayTarget, Owner, ShedOrder
from fleetscale.kubeapi import describe
from fleetscale.planner.observe import TargetSize
from fleetscale.planner.types import Decision, PlannerState

SCALE_FAILED = "ScaleFailed"
DRY_RUN = "DryRun"
CONFIG_MAP_RENAMED = "ConfigMapRenamed"
SHED_FLAG_PUBLISH_FAILED = "ShedFlagPublishFailed"
CONFIG_MAP_NOT_OWNED = "ConfigMapNotOwned"
GATEWAY_POLICY_CONFLICT = "GatewayPolicyConflict"
GATEWAY_POLICY_FAILED = "GatewayPolicyFailed"


@dataclass(frozen=True)
class Commands:
    """What one tick asks to change; None and empty fields change nothing."""

    target: ScaleTargetRef | None
    current_replicas: int
    scale_to: int | None  # the target's new spec.replicas
    shed_flag: ShedFlag | None  # the flag to publish in ``config_map_name``
    config_map_name: str | None
    withdraw_from: tuple[str, ...] = ()  # ConfigMaps whose flag goes off ...
    withdraw_reason: str = ""  # ... and why
    gateway: GatewayTarget | None = None  # the gateway policy to write ``gateway_order`` in
    gateway_order: ShedOrder | None = None
    gateway_withdraw: tuple[GatewayTarget, ...] = ()  # gateway policies to withdraw

    @property
    def withdraws(self) -> bool:
        """Whether anything this pool published is to be withdrawn."""
        return bool(self.withdraw_from or self.gateway_withdraw)


@dataclass(frozen=True)
class Outcome:
    """What executing the commands actually did."""

    scaled_to: int | None = None  # the size now set; None when the target was left alone
    target_after: TargetSize | None = None  # the target as the write left it
    # The change of size as recorded in status before it was made (wire form), if it was.
    intent: dict[str, Any] | None = None
    scale_error: str | None = None  # why the scale write failed
    shed_error: str | None = None  # why the flag could not be published (or withdrawn)
    withdrawn: tuple[str, ...] = ()  # ConfigMaps whose flag was turned off
    gateway_error: str | None = None  # why the gateway policy could not be written/withdrawn
    gateway_conflict: bool = False  # ... because fleetscale does not own the object
    gateway_withdraw_failed: bool = False  # a recorded policy is still there: keep the record
    # Why the flag could not be published: ShedFlagPublishFailed, or ConfigMapNotOwned when
    # the ConfigMap exists and is not this pool's (it was left untouched).
    shed_error_reason: str = SHED_FLAG_PUBLISH_FAILED

    def applied_delta(self, current_replicas: int) -> int:
        """The change of size that happened (0: none)."""
        return 0 if self.scaled_to is None else self.scaled_to - current_replicas


def shed_flag_of(
    decision: Decision, state: PlannerState, gateway: GatewayShed | None = None
) -> ShedFlag:
    """The flag as gateways read it, from a decision and the state after it."""
    low = gateway.low_priority if gateway is not None else None
    return ShedFlag(
        active=decision.shed.active,
        reason=decision.shed.reason,
        since=optional_datetime(state.shed.since),
        retry_after_seconds=decision.shed.retry_after_seconds if decision.shed.active else None,
        fraction=decision.shed.fraction if decision.shed.active else 0.0,
        message=gateway.message if gateway is not None else None,
        low_priority_header=(low.header_name, low.header_value) if low is not None else None,
    )


def shed_order_of(decision: Decision, spec: InferencePoolSpec) -> ShedOrder | None:
    """What a gateway policy enforces while the flag is on; None while it is off."""
    shed = decision.shed
    if not shed.active or spec.shed_load.gateway is None:
        return None
    return ShedOrder(
        fraction=shed.fraction,
        retry_after_seconds=shed.retry_after_seconds or spec.poll_interval_seconds,
        message=spec.shed_load.gateway.message,
        reason=shed.reason,
    )


def gateway_withdrawal(
    stored: InferencePoolStatus, namespace: str, keep: GatewayTarget | None = None
) -> tuple[GatewayTarget, ...]:
    """The gateway policy this pool recorded while shedding, unless it is ``keep``."""
    key = published_gateway_policy(stored) if shed_was_on(stored) else None
    recorded = GatewayTarget.recorded(namespace, key) if key else None
    if recorded is None or (keep is not None and recorded.key == keep.key):
        return ()
    return (recorded,)


def withdrawal(
    stored: InferencePoolStatus, reason: str, fallback_config_map: str | None
) -> tuple[str, ...]:
    """The ConfigMap whose flag goes off when this pool stops publishing it: where the flag was
    published while on (``fallback_config_map`` when the status does not say)."""
    if not shed_was_on(stored):
        return ()
    name = published_shed_config_map(stored) or fallback_config_map
    return (name,) if name else ()


def withdrawal_commands(
    stored: InferencePoolStatus,
    reason: str,
    fallback_config_map: str | None,
    namespace: str = "",
) -> Commands:
    """The writes of a tick that does not decide: only the shed flag, turned off (and the
    gateway policy it recorded, withdrawn)."""
    return Commands(
        target=None,
        current_replicas=stored.replicas or 0,
        scale_to=None,
        shed_flag=None,
        config_map_name=None,
        withdraw_from=withdrawal(stored, reason, fallback_config_map),
        withdraw_reason=reason,
        gateway_withdraw=gateway_withdrawal(stored, namespace) if namespace else (),
    )


def commands(
    pool: InferencePoolRef,
    spec: InferencePoolSpec,
    decision: Decision,
    planned_state: PlannerState,
    stored: InferencePoolStatus,
) -> Commands:
    """The writes a decision asks for. DryRun scales nothing and publishes no flag (it only
    reports), but turns off a flag it had published while Active."""
    active = spec.mode == "Active"
    resize = active and decision.desired_replicas != decision.current_replicas
    wanted = spec.shed_load.config_map_name
    config_map = wanted if active else None
    published = published_shed_config_map(stored)
    stale: tuple[str, ...] = ()
    if active:
        stale = (published,) if published is not None and published != wanted else ()
        reason = CONFIG_MAP_RENAMED
    else:
        stale, reason = withdrawal(stored, DRY_RUN, wanted), DRY_RUN
    gateway = target_of(pool.namespace, pool.name, spec.shed_load) if active else None
    order = shed_order_of(decision, spec) if gateway is not None else None
    return Commands(
        target=ScaleTargetRef.of(pool.namespace, spec.target_ref),
        current_replicas=decision.current_replicas,
        scale_to=decision.desired_replicas if resize else None,
        shed_flag=(
            shed_flag_of(decision, planned_state, spec.shed_load.gateway) if config_map else None
        ),
        config_map_name=config_map,
        withdraw_from=stale,
        withdraw_reason=reason,
        gateway=gateway if order is not None else None,
        gateway_order=order,
        gateway_withdraw=gateway_withdrawal(
            stored, pool.namespace, keep=gateway if order else None
        ),
    )


async def execute(
    pool: InferencePoolRef, todo: Commands, deps: InferencePoolDependencies, now: float
) -> Outcome:
    """Carry out ``todo``; never raises for a failed write (the outcome says why)."""
    scaled_to: int | None = None
    target_after: TargetSize | None = None
    scale_error: str | None = None
    intent: dict[str, Any] | None = None
    if todo.scale_to is not None and todo.target is not None:
        try:
            intent = await _record_intent(pool, todo.current_replicas, todo.scale_to, now, deps)
            scale = await deps.scaler.set_replicas(todo.target, todo.scale_to)
        except IntentNotRecorded as error:
            scale_error = (
                f"Did not scale {todo.target.kind} {todo.target.name} to {todo.scale_to} "
                f"replicas: the change could not be recorded in status first ({error})"
            )
        except (TargetNotFound, ActuatorError) as error:
            scale_error = (
                f"Could not scale {todo.target.kind} {todo.target.name} from "
                f"{todo.current_replicas} to {todo.scale_to} replicas: {error}"
            )
        else:
            scaled_to = todo.scale_to
            target_after = TargetSize(
                scale.spec_replicas, scale.ready_replicas, scale.accelerators_per_replica
            )
    problems = []
    if todo.shed_flag is not None and todo.config_map_name is not None:
        problems.append(await _publish(pool, todo.config_map_name, todo.shed_flag, deps))
    withdrawn = []
    off = ShedFlag(active=False, reason=todo.withdraw_reason, since=None, retry_after_seconds=None)
    for name in todo.withdraw_from:
        problem = await _publish(pool, name, off, deps)
        if problem is None or problem[0] == CONFIG_MAP_NOT_OWNED:
            # Not this pool's ConfigMap (any more): no flag of its own is there to turn off, and
            # it is not written, not even to withdraw.
            withdrawn.append(name)
        else:
            problems.append(problem)
    shed_reason, shed_error = next((p for p in problems if p is not None), (None, None))
    gateway_error, conflict, kept = await _gateway(pool, todo, deps)
    return Outcome(
        scaled_to=scaled_to,
        target_after=target_after,
        intent=intent,
        scale_error=scale_error,
        shed_error=shed_error,
        withdrawn=tuple(withdrawn),
        gateway_error=gateway_error,
        gateway_conflict=conflict,
        gateway_withdraw_failed=kept,
        shed_error_reason=shed_reason or SHED_FLAG_PUBLISH_FAILED,
    )


class IntentNotRecorded(Exception):  # noqa: N818  (reads as what happened)
    """The change of size could not be recorded in status before it was made."""


async def _record_intent(
    pool: InferencePoolRef, current: int, to: int, now: float, deps: InferencePoolDependencies
) -> dict[str, Any] | None:
    """Record the change in ``status.pendingScale`` before making it, so that it counts against
    the rate policies even if the status write after it fails or the process dies in between
    (the next tick settles it against the target's size). Raises IntentNotRecorded."""
    if deps.status_writer is None:
        return None
    intent = PendingScale(time=whole_seconds(now), from_replicas=current, to_replicas=to)
    wire = intent.model_dump(mode="json", by_alias=True)
    try:
        await deps.status_writer.patch_status(pool.namespace, pool.name, {"pendingScale": wire})
    except Exception as error:
        raise IntentNotRecorded(describe(error)) from error
    return wire


async def _gateway(
    pool: InferencePoolRef, todo: Commands, deps: InferencePoolDependencies
) -> tuple[str | None, bool, bool]:
    """Withdraw, then write, the gateway policies of ``todo``; the first error, whether it was
    a conflict, and whether a withdrawal failed. An order equal to the last one written is not
    written again. A policy fleetscale does not own is never written; withdrawing it is a no-op
    (nothing of ours is there)."""
    writer = deps.gateway
    if writer is None or not (todo.gateway_withdraw or todo.gateway_order):
        return None, False, False
    involved = pool.involved
    owner = Owner(involved.api_version, involved.kind, involved.name, involved.uid)
    error: str | None = None
    for target in todo.gateway_withdraw:
        try:
            await writer.withdraw(owner, target)
        except GatewayConflict:
            pass
        except GatewayError as failure:
            error = error or f"Could not withdraw the shed policy {target.key}: {failure}"
            continue
        deps.gateway_orders.pop((pool.namespace, pool.name, target.key), None)
    kept = error is not None
    if todo.gateway is None or todo.gateway_order is None:
        return error, False, kept
    key = (pool.namespace, pool.name, todo.gateway.key)
    if deps.gateway_orders.get(key) == todo.gateway_order:
        return error, False, kept
    try:
        await writer.write(owner, todo.gateway, todo.gateway_order)
    except GatewayError as failure:
        deps.gateway_orders.pop(key, None)
        words = f"Could not write the shed policy {todo.gateway.key} for {todo.gateway.route}"
        return f"{words}: {failure}", isinstance(failure, GatewayConflict), kept
    deps.gateway_orders[key] = todo.gateway_order
    return error, False, kept


async def _publish(
    pool: InferencePoolRef, config_map_name: str, flag: ShedFlag, deps: InferencePoolDependencies
) -> tuple[str, str] | None:
    """Publish the flag unless it is already there; None, or why not (reason, words)."""
    key = (pool.namespace, pool.name, config_map_name)
    if deps.published_flags.get(key) == flag:
        return None
    try:
        await deps.shed_publisher.publish(pool.involved, config_map_name, flag)
    except ConfigMapNotOwned as error:
        return CONFIG_MAP_NOT_OWNED, f"Did not publish the shed flag: {error}"
    except ActuatorError as error:
        message = f"Could not publish the shed flag in ConfigMap {config_map_name}: {error}"
        return SHED_FLAG_PUBLISH_FAILED, message
    deps.published_flags[key] = flag
    return None
