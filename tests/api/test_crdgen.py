"""The generated CRDs: structural, documented, committed, and faithful to the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetscale.api.crdgen import crd_manifest, iter_schema_nodes, render_yaml
from fleetscale.api.resources import ALL_CRDS, INFERENCE_POOL
from fleetscale.cli import main

REPO = Path(__file__).resolve().parents[2]


def _schema(spec: Any = INFERENCE_POOL) -> dict[str, Any]:
    schema: dict[str, Any] = crd_manifest(spec)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("crd", [pytest.param(c, id=c.kind) for c in ALL_CRDS])
def test_schema_is_structural(crd: Any) -> None:
    for path, node in iter_schema_nodes(_schema(crd)):
        if not isinstance(node, dict) or path.endswith(("/properties", "/default")):
            continue
        if path.endswith("/x-kubernetes-validations") or "/x-kubernetes-validations/" in path:
            continue
        assert "$ref" not in node, path
        assert "anyOf" not in node, path
        assert "title" not in node, path
        assert "type" in node, f"{path} has no type"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path


@pytest.mark.parametrize("crd", [pytest.param(c, id=c.kind) for c in ALL_CRDS])
def test_every_spec_field_is_documented(crd: Any) -> None:
    spec = _schema(crd)["properties"]["spec"]
    undocumented = [
        path
        for path, node in iter_schema_nodes(spec)
        if isinstance(node, dict)
        and path.count("/properties/") >= 1
        and path.rsplit("/", 2)[-2] == "properties"
        and not node.get("description")
    ]
    assert undocumented == []


def test_cel_rules_reach_the_schema() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    rules = spec["replicas"]["x-kubernetes-validations"]
    assert rules == [
        {
            "rule": "self.min <= self.max",
            "message": "replicas.min must be less than or equal to replicas.max",
        }
    ]
    assert "x-kubernetes-validations" in spec["shedLoad"]


def test_defaults_and_bounds_reach_the_schema() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["pollIntervalSeconds"]["default"] == 15
    assert spec["pollIntervalSeconds"]["minimum"] == 1
    assert spec["mode"]["enum"] == ["Active", "DryRun", "Paused"]
    assert spec["replicas"]["properties"]["max"]["minimum"] == 1
    policy = spec["behavior"]["properties"]["scaleUp"]["properties"]["policies"]["items"]
    assert policy["properties"]["value"] == {**policy["properties"]["value"], "minimum": 1}


def test_names_and_printer_columns() -> None:
    manifest = crd_manifest(INFERENCE_POOL)
    assert manifest["metadata"]["name"] == "inferencepools.fleetscale.io"
    names = manifest["spec"]["names"]
    # `kubectl get ipool` and `kubectl get ipools` both work (short names match exactly).
    assert {"ipool", "ipools"} <= set(names["shortNames"])
    assert "infpool" not in names["shortNames"]  # the Gateway API's InferencePool owns it
    assert names["categories"] == ["fleetscale"]
    columns = [c["name"] for c in manifest["spec"]["versions"][0]["additionalPrinterColumns"]]
    for expected in ("Target", "Ready", "Desired", "Queue", "GPU%", "Shed", "Age"):
        assert expected in columns


def test_rendered_yaml_has_no_aliases() -> None:
    text = render_yaml(crd_manifest(INFERENCE_POOL))
    assert "&id" not in text
    assert "*id" not in text
    assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_committed_crds_match_the_models() -> None:
    assert main(["crd", "--check", str(REPO / "crds")]) == 0, "run `make crds` and commit"


def test_check_detects_a_stale_crd(tmp_path: Path) -> None:
    assert main(["crd", "--write", str(tmp_path)]) == 0
    target = next(tmp_path.glob("inferencepools*.yaml"))
    target.write_text(target.read_text() + "# edited\n")
    assert main(["crd", "--check", str(tmp_path)]) == 1
