"""The GKE provider against a local HTTP server that answers the Container and Compute REST
APIs as Google does (both SDKs' own REST transports talk to it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1, container_v1

from fleetscale.api.acceleratorpool import GkeProvider
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    PROVIDER_FAILED,
    SHRINK_REFUSED,
    NodeRef,
    ProviderConflict,
    ProviderError,
)
from fleetscale.nodepools.gke import GkeNodePool, gce_instance, mig_parts

POOL = "projects/acme/locations/us-central1/clusters/prod/nodePools/h100"
ZONES = ("us-central1-a", "us-central1-b")


@dataclass
class FakeGoogle:
    """The state behind the fake API: one node pool with a MIG per zone."""

    base: str = ""
    autoscaling: bool = False
    exists: bool = True
    target_sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ZONES, 1))
    members: dict[str, set[str]] = field(
        default_factory=lambda: {zone: {f"gke-h100-{zone[-1]}-1"} for zone in ZONES}
    )
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def mig_url(self, zone: str) -> str:
        compute = f"{self.base}/compute/v1/projects/acme"
        return f"{compute}/zones/{zone}/instanceGroupManagers/gke-h100-{zone}"

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.calls.append((method, path, body))
        if path == f"/v1/{POOL}" and method == "GET":
            if not self.exists:
                return 404, {
                    "error": {"code": 404, "message": "node pool not found", "status": "NOT_FOUND"}
                }
            return 200, {
                "name": "h100",
                "locations": list(ZONES),
                "autoscaling": {"enabled": self.autoscaling},
                "instanceGroupUrls": [self.mig_url(zone) for zone in ZONES],
            }
        if path == f"/v1/{POOL}:setSize" and method == "POST":
            for zone in ZONES:
                self.target_sizes[zone] = int(body["nodeCount"])
            return 200, {
                "name": "operation-1",
                "operationType": "SET_NODE_POOL_SIZE",
                "status": "RUNNING",
            }
        for zone in ZONES:
            mig = self.mig_url(zone).removeprefix(self.base)
            if path == mig and method == "GET":
                return 200, {"name": f"gke-h100-{zone}", "targetSize": self.target_sizes[zone]}
            if path == f"{mig}/deleteInstances" and method == "POST":
                names = {url.rsplit("/", 1)[-1] for url in body["instances"]}
                if not names <= self.members[zone]:  # validation is never skipped
                    return 400, {"error": {"code": 400, "message": "not a member of the group"}}
                self.members[zone] -= names
                self.target_sizes[zone] -= len(names)
                return 200, {"name": "operation-2", "status": "RUNNING"}
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    state = FakeGoogle()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            status, payload = state.answer(self.command, self.path.split("?")[0], body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve  # noqa: N815  (http.server's handler names)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def provider(google: FakeGoogle) -> GkeNodePool:
    options = ClientOptions(api_endpoint=google.base)
    client = container_v1.ClusterManagerClient(
        credentials=AnonymousCredentials(), transport="rest", client_options=options
    )
    instance_groups = compute_v1.InstanceGroupManagersClient(
        credentials=AnonymousCredentials(), transport="rest", client_options=options
    )
    config = GkeProvider(project="acme", location="us-central1", cluster="prod", node_pool="h100")
    return GkeNodePool(config, client=client, instance_groups=instance_groups)


def test_gce_instance() -> None:
    assert gce_instance("gce://acme/us-central1-a/gke-h100-abcd") == (
        "us-central1-a",
        "gke-h100-abcd",
    )
    assert gce_instance("aws:///us-east-1a/i-1") is None
    url = "https://www.googleapis.com/compute/v1/projects/acme/zones/z-a/instanceGroupManagers/m"
    assert mig_parts(url) == ("acme", "z-a", "m")
    assert mig_parts("https://example.com/not/a/mig") is None


async def test_size_is_the_sum_of_the_zones(provider: GkeNodePool) -> None:
    assert (await provider.current()).desired == 2


async def test_resize_asks_each_zone_for_its_share(
    provider: GkeNodePool, google: FakeGoogle
) -> None:
    await provider.set_desired(3)
    assert ("POST", f"/v1/{POOL}:setSize", {"nodeCount": 2}) in google.calls
    assert (await provider.current()).desired == 4  # two zones hold a multiple of two
    writes = [c for c in google.calls if c[0] == "POST"]
    await provider.set_desired(4)
    assert [c for c in google.calls if c[0] == "POST"] == writes  # already there: no write


async def test_a_smaller_size_is_refused(provider: GkeNodePool, google: FakeGoogle) -> None:
    """setSize down lets each MIG pick the instances to delete, busy or not."""
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(1)
    assert raised.value.reason == SHRINK_REFUSED
    assert not [c for c in google.calls if c[0] == "POST"]


async def test_growing_never_shrinks_a_zone(provider: GkeNodePool, google: FakeGoogle) -> None:
    google.target_sizes = {"us-central1-a": 3, "us-central1-b": 0}
    await provider.set_desired(4)
    assert ("POST", f"/v1/{POOL}:setSize", {"nodeCount": 3}) in google.calls


async def test_release_deletes_exactly_those_instances(
    provider: GkeNodePool, google: FakeGoogle
) -> None:
    released = await provider.release(
        [
            NodeRef("gke-h100-b-1", "gce://acme/us-central1-b/gke-h100-b-1"),
            NodeRef("elsewhere", "gce://acme/europe-west4-a/gke-h100-x-1"),
            NodeRef("no-id"),
        ]
    )
    assert released == ("gke-h100-b-1",)
    deletes = [c for c in google.calls if c[1].endswith("/deleteInstances")]
    assert len(deletes) == 1
    assert deletes[0][2]["instances"] == ["zones/us-central1-b/instances/gke-h100-b-1"]
    assert "us-central1-b" in deletes[0][1]
    assert google.target_sizes == {"us-central1-a": 1, "us-central1-b": 0}


async def test_releasing_an_instance_of_another_group_fails(
    provider: GkeNodePool, google: FakeGoogle
) -> None:
    with pytest.raises(ProviderError) as raised:
        await provider.release([NodeRef("x", "gce://acme/us-central1-a/gke-other-pool-7")])
    assert raised.value.reason == PROVIDER_FAILED
    assert google.target_sizes == {"us-central1-a": 1, "us-central1-b": 1}


async def test_gke_autoscaling_is_a_conflict(provider: GkeNodePool, google: FakeGoogle) -> None:
    google.autoscaling = True
    with pytest.raises(ProviderConflict):
        await provider.set_desired(3)
    assert not [c for c in google.calls if c[0] == "POST"]


async def test_missing_node_pool(provider: GkeNodePool, google: FakeGoogle) -> None:
    google.exists = False
    with pytest.raises(ProviderError) as raised:
        await provider.current()
    assert raised.value.reason == GROUP_NOT_FOUND
