"""An in-memory gateway writer for tests: records every call, keeps the policies, fails on
demand.

Role: the same behaviour as the real writers where the controller relies on it: a policy of
that name that is not this pool's raises ``GatewayConflict`` and is left as it was; withdrawing
a policy that is gone succeeds; names are checked as the real writer checks them. Callers:
controller unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetscale.gateways.base import (
    GatewayConflict,
    GatewayError,
    GatewayTarget,
    Owner,
    ShedOrder,
    check_name,
)


@dataclass(frozen=True)
class GatewayCall:
    verb: str  # "write" | "withdraw"
    owner: Owner
    target: GatewayTarget
    order: ShedOrder | None = None


@dataclass
class FakeGatewayWriter:
    """Policies by (namespace, name): the owner's uid (None: someone else's) and the order."""

    kind: str = "EnvoyGateway"
    calls: list[GatewayCall] = field(default_factory=list)
    policies: dict[tuple[str, str], tuple[str | None, ShedOrder | None]] = field(
        default_factory=dict
    )
    _fail_next: list[Exception] = field(default_factory=list)

    def foreign(self, namespace: str, name: str) -> None:
        """Someone else's object of that name exists (no fleetscale mark)."""
        self.policies[(namespace, name)] = (None, None)

    def fail_next(self, error: Exception | None = None) -> None:
        self._fail_next.append(error or GatewayError("injected failure"))

    def order(self, namespace: str, name: str) -> ShedOrder | None:
        """The order the policy carries now (None: no policy, or not ours)."""
        return self.policies.get((namespace, name), (None, None))[1]

    def _check(self, owner: Owner, target: GatewayTarget) -> tuple[str, str]:
        check_name("policy name", target.policy_name)
        if target.route is not None:
            check_name("route name", target.route.name)
        if self._fail_next:
            raise self._fail_next.pop(0)
        key = (target.namespace, target.policy_name)
        found = self.policies.get(key)
        if found is not None and found[0] != owner.uid:
            raise GatewayConflict(
                f"BackendTrafficPolicy {key[0]}/{key[1]} exists and was not created by fleetscale"
            )
        return key

    async def write(self, owner: Owner, target: GatewayTarget, order: ShedOrder) -> None:
        self.calls.append(GatewayCall("write", owner, target, order))
        key = self._check(owner, target)
        self.policies[key] = (owner.uid, order)

    async def withdraw(self, owner: Owner, target: GatewayTarget) -> None:
        self.calls.append(GatewayCall("withdraw", owner, target))
        key = self._check(owner, target)
        self.policies.pop(key, None)
