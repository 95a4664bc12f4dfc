"""Fake GPU nodes for kwok.

kwok manages nodes annotated ``kwok.x-k8s.io/node: fake``: its default stages
mark them Ready, keep their heartbeat, and mark the pods scheduled onto them
Running and Ready. The nodes carry the taint ``kwok.x-k8s.io/node=fake:NoSchedule``
so that only pods that tolerate it (the sample vLLM Deployment) land there.

    python e2e/gpu_nodes.py --count 2 --gpus 8 | kubectl apply -f -
    python e2e/gpu_nodes.py --count 2 --label fleetscale.io/accelerator-pool=h100 ...

Standard library only, so the scripts can call it with any Python 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


def gpu_node(
    name: str,
    gpus: int = 8,
    labels: dict[str, str] | None = None,
    resource: str = GPU_RESOURCE,
    cpu: str = "96",
    memory: str = "1Ti",
    pods: int = 110,
) -> dict[str, Any]:
    """The manifest of one fake GPU node managed by kwok."""
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods), resource: str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": f"gpu-{gpus}x",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": GPU_PRODUCT,
                "nvidia.com/gpu.count": str(gpus),
                **(labels or {}),
            },
        },
        "spec": {"taints": [dict(KWOK_TAINT)]},
        "status": {
            "allocatable": dict(capacity),
            "capacity": dict(capacity),
        },
    }


def gpu_nodes(count: int, prefix: str = "gpu-node", **kwargs: Any) -> dict[str, Any]:
    """A v1 List of ``count`` fake GPU nodes named PREFIX-0 .. PREFIX-(count-1)."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [gpu_node(f"{prefix}-{i}", **kwargs) for i in range(count)],
    }


def parse_labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise SystemExit(f"--label wants KEY=VALUE, got {p!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print fake GPU Node manifests for kwok (JSON).")
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--prefix", default="gpu-node")
    ap.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    ap.add_argument("--resource", default=GPU_RESOURCE)
    ap.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    doc = gpu_nodes(
        args.count,
        prefix=args.prefix,
        gpus=args.gpus,
        resource=args.resource,
        labels=parse_labels(args.label),
    )
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
