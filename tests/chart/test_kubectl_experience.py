"""What an SRE sees with kubectl alone, as the chart's CRDs define it.

`kubectl get ipools` / `kubectl get apools` (or `ipool` / `apool`) columns tell the state at a
glance, and
`kubectl explain inferencepools.spec --api-version fleetscale.io/v1alpha1` documents every field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chartkit import CHART

CRDS = {
    doc["spec"]["names"]["kind"]: doc
    for path in sorted((CHART / "crds").glob("*.yaml"))
    for doc in [yaml.safe_load(path.read_text(encoding="utf-8"))]
}
OURS = [pytest.param(kind, id=kind) for kind in ("InferencePool", "AcceleratorPool")]


def _version(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    served: dict[str, Any] = version
    return served


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in (node.get("properties") or {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict) and items.get("type") == "object":
        yield from _fields(items, f"{path}[]")


@pytest.mark.parametrize("kind", OURS)
def test_kubectl_explain_documents_every_field(kind: str) -> None:
    root = _version(kind)["schema"]["openAPIV3Schema"]
    assert root["description"]
    undocumented = [
        path
        for section in ("spec", "status")
        for path, node in _fields(root["properties"][section], section)
        if not node.get("description", "").strip()
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("kind", "short_names", "glance"),
    [
        pytest.param(
            "InferencePool", ("ipool", "ipools"),
            {"Target", "Ready", "Desired", "Queue", "GPU%", "Shed", "Refused"},
            id="ipools",
        ),
        pytest.param(
            "AcceleratorPool", ("apool", "apools"),
            {"Provider", "Ready", "Provisioning", "Desired", "Max"},
            id="apools",
        ),
    ],
)  # fmt: skip
def test_kubectl_get_tells_the_state_at_a_glance(
    kind: str, short_names: tuple[str, ...], glance: set[str]
) -> None:
    crd = CRDS[kind]
    names = crd["spec"]["names"]
    assert set(short_names) <= set(names["shortNames"])  # `kubectl get ipool` and `ipools`
    assert "infpool" not in names["shortNames"]  # the Gateway API's InferencePool owns it
    assert "fleetscale" in names["categories"]  # `kubectl get fleetscale` lists both kinds
    columns = _version(kind)["additionalPrinterColumns"]
    default_columns = {c["name"] for c in columns if not c.get("priority")}
    assert glance <= default_columns
    assert columns[-1]["name"] == "Age"
    assert all(c.get("description") for c in columns if c["name"] != "Age")
    wide = {c["name"] for c in columns if c.get("priority")}
    assert "Reason" in wide  # -o wide: why it is in this state


@pytest.mark.parametrize("kind", OURS)
def test_describe_shows_status_conditions_and_the_last_decision(kind: str) -> None:
    status = _version(kind)["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert "conditions" in status
    condition = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(condition)
    assert _version(kind)["subresources"]["status"] == {}


def test_printer_columns_point_at_fields_that_exist() -> None:
    for kind in ("InferencePool", "AcceleratorPool"):
        root = _version(kind)["schema"]["openAPIV3Schema"]
        for column in _version(kind)["additionalPrinterColumns"]:
            path = column["jsonPath"].lstrip(".").split(".")
            if path[0] == "metadata":
                continue
            node = root
            for part in path:
                node = node["properties"][part]
            assert node.get("type") in (
                column["type"],
                "integer" if column["type"] == "number" else None,
            ), column
