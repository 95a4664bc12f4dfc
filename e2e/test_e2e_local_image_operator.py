"""The operator from the image built here reconciles a pool on the real control plane.

The operator is the image's entrypoint in a container that podman runs as the chart runs the
pod (read-only root, /tmp a tmpfs, the image's non-root user, no capabilities), authenticated
as the chart's ServiceAccount and reaching the API server and Prometheus on 127.0.0.1 through
the host's network. With FLEETSCALE_E2E_OPERATOR=image (`make e2e`) every test of the suite
runs against it; this one also runs in the other modes, where it takes over for one test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import (
    Exporter,
    Kube,
    OperatorImage,
    Prometheus,
    ready_replicas,
    spec_replicas,
    wait_until,
)
from pools import condition_is, create_pool, event_reasons, get_pool, inference_pool, queue_query

MODEL = "llama"
CONCURRENCY = 4


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError(f"no root mount in /proc/{pid}/mountinfo")


def test_operator_from_the_image_scales_a_deployment_and_writes_status(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    image_operator: OperatorImage,
) -> None:
    # What runs is the image, hardened: its entrypoint, as its user, on a read-only root.
    container = image_operator.container_inspect()
    assert container["ImageName"] == image_operator.image.ref
    assert container["HostConfig"]["ReadonlyRootfs"] is True
    assert [container["Path"], *container["Args"]] == ["python", "-m", "fleetscale", "run"]
    pid = int(container["State"]["Pid"])
    status = proc_status(pid)
    uid, gid = image_operator.image.user()
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(gid)] * 4
    assert int(status["CapEff"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert "ro" in root_mount_options(pid)

    # One Ready replica serves 4 of 30: 26 wait, ceil(26 / 5) = 6 replicas.
    deploy_vllm("vllm", replicas=1, gpus=2)
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 1, 60, "1 Ready replica")
    fleet_load.set_load(namespace, "vllm", 30, model=MODEL, concurrency=CONCURRENCY)
    prometheus.wait_for_value(queue_query(namespace, MODEL), 26)
    create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, max_replicas=8))

    wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 6, 60, "6 replicas")
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and p.get("status", {}).get("observedGeneration") == p["metadata"]["generation"]
            and p["status"].get("desiredReplicas") == 6
            and p
        ),
        60,
        "status.desiredReplicas == 6 for the current generation",
    )
    assert condition_is(pool, "MetricsAvailable", "True")
    assert condition_is(pool, "Ready", "True")
    assert pool["status"]["observed"]["queueDepth"] is not None
    assert "ScaledUp" in event_reasons(kube, namespace, "llama")
    # The container is the same one that did it, and nothing in it tried to write the root.
    assert image_operator.container_inspect()["State"]["Pid"] == pid
    logs = image_operator.logs()
    assert "Read-only file system" not in logs, logs[-3000:]
