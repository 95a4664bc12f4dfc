"""The CRDs of kopf's peering resources, which keep exactly one fleetscale replica active.

Role: kopf elects the active operator through a peering object of group ``kopf.dev``: a
cluster-scoped ``ClusterKopfPeering`` when the operator watches all namespaces, a namespaced
``KopfPeering`` (in each watched namespace) when it watches a list of them. Every running
operator writes a keep-alive into that object's ``.status``; the one with the highest priority
acts, the others pause. kopf reads and writes these objects but never defines them, so fleetscale
ships their CRDs beside its own. The schema only keeps ``.status`` open (kopf owns its layout).
Callers: ``fleetscale crd`` (writes ``crds/`` and the Helm chart's copy), the chart tests.
"""

from __future__ import annotations

from typing import Any

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
PEERING_API_VERSION = f"{PEERING_GROUP}/{PEERING_VERSION}"

CLUSTER_PEERING_KIND = "ClusterKopfPeering"
CLUSTER_PEERING_PLURAL = "clusterkopfpeerings"
NAMESPACED_PEERING_KIND = "KopfPeering"
NAMESPACED_PEERING_PLURAL = "kopfpeerings"


def _peering_crd(kind: str, plural: str, scope: str, description: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{PEERING_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "fleetscale"},
        },
        "spec": {
            "group": PEERING_GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": PEERING_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "description": (
                                        "Keep-alives of the running operators, keyed by "
                                        "operator identity; written by kopf."
                                    ),
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def cluster_peering_crd() -> dict[str, Any]:
    """The CRD of ``clusterkopfpeerings.kopf.dev``: election among cluster-wide operators."""
    return _peering_crd(
        CLUSTER_PEERING_KIND,
        CLUSTER_PEERING_PLURAL,
        "Cluster",
        "ClusterKopfPeering elects one active replica among kopf operators that watch all "
        "namespaces; the others stand by until its keep-alive expires.",
    )


def namespaced_peering_crd() -> dict[str, Any]:
    """The CRD of ``kopfpeerings.kopf.dev``: election among operators of listed namespaces."""
    return _peering_crd(
        NAMESPACED_PEERING_KIND,
        NAMESPACED_PEERING_PLURAL,
        "Namespaced",
        "KopfPeering elects one active replica, per namespace, among kopf operators that "
        "watch a list of namespaces; the others stand by until its keep-alive expires.",
    )


def peering_crds() -> dict[str, dict[str, Any]]:
    """Both peering CRDs, by object name (the file names under ``crds/``)."""
    manifests = (cluster_peering_crd(), namespaced_peering_crd())
    return {manifest["metadata"]["name"]: manifest for manifest in manifests}
