"""Gateway writers: the shed decision written into a gateway's own policy objects.

One backend per module behind one narrow protocol (``base.GatewayWriter``), an in-memory fake
(``fake.FakeGatewayWriter``). ``target_of`` says, from a pool's spec, where its decision goes
(None: no writer is named). Caller: the InferencePool controller (execute step, wiring).
"""

from __future__ import annotations

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.gateways.base import GatewayTarget, RouteTarget

ENVOY_GATEWAY = "EnvoyGateway"
POLICY_SUFFIX = "-shed"


def target_of(namespace: str, pool: str, spec: ShedLoadSpec) -> GatewayTarget | None:
    """The gateway object the pool's spec names, in the pool's namespace; None when none."""
    gateway = spec.gateway
    if gateway is None or gateway.envoy_gateway is None:
        return None
    envoy = gateway.envoy_gateway
    route = envoy.route_ref
    return GatewayTarget(
        writer=ENVOY_GATEWAY,
        namespace=namespace,
        policy_name=envoy.policy_name or f"{pool}{POLICY_SUFFIX}"[:253],
        route=RouteTarget(route.group, route.kind, route.name, route.section_name),
    )
