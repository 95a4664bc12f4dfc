"""Generate Kubernetes CustomResourceDefinitions from the pydantic models.

Role: turn a model's JSON Schema (draft 2020-12, with ``$ref``, ``anyOf`` for optionals and
numeric ``exclusiveMinimum``) into a *structural* OpenAPI v3 schema the API server accepts:
references inlined, nullable unions collapsed, booleans for exclusive bounds, titles dropped,
descriptions kept (``kubectl explain``), scalar defaults kept (the API server applies them), and
each model's ``cel_rules`` emitted as ``x-kubernetes-validations``. Callers: ``fleetscale crd``
(prints or writes ``crds/``) and the test that keeps ``crds/`` equal to the models.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from fleetscale.api.base import GROUP, VERSION, ApiModel

JsonSchema = dict[str, Any]

# Keys of JSON Schema that the API server's structural schema does not accept, or that only
# add noise to `kubectl explain`.
_DROPPED_KEYS = frozenset({"title", "$defs", "additionalProperties", "examples"})


@dataclass(frozen=True)
class PrinterColumn:
    """One `kubectl get` column."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_wire(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


@dataclass(frozen=True)
class CrdSpec:
    """Everything that defines one CRD besides its schema models."""

    kind: str
    plural: str
    singular: str
    scope: str  # "Namespaced" | "Cluster"
    spec_model: type[ApiModel]
    status_model: type[ApiModel]
    description: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    extra_status_paths: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _model_registry(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """All models reachable from `model`, by class name (the keys pydantic uses in $defs)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in found:
                return
            found[annotation.__name__] = annotation
            for info in annotation.model_fields.values():
                visit(info.annotation)
            return
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)

    visit(model)
    return found


def _cel_rules_of(model: type[BaseModel]) -> list[dict[str, str]]:
    rules = getattr(model, "cel_rules", ())
    return [{"rule": rule, "message": message} for rule, message in rules]


def _collapse_nullable(node: JsonSchema) -> JsonSchema:
    """`anyOf: [X, {type: null}]` (pydantic's Optional) becomes X with the outer annotations."""
    variants = node.get("anyOf")
    if not variants:
        return node
    non_null = [v for v in variants if v.get("type") != "null"]
    if len(non_null) != 1:
        raise ValueError(f"unions other than Optional are not structural: {variants!r}")
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged = {**non_null[0], **merged}
    if merged.get("default", ...) is None:
        del merged["default"]
    return merged


def _structural(
    node: Any, defs: Mapping[str, JsonSchema], registry: Mapping[str, type[BaseModel]]
) -> Any:
    """Rewrite one JSON Schema node (recursively) into structural OpenAPI v3."""
    if isinstance(node, list):
        return [_structural(item, defs, registry) for item in node]
    if not isinstance(node, dict):
        return node

    node = _collapse_nullable(dict(node))
    rules: list[dict[str, str]] = []
    ref = node.pop("$ref", None)
    if ref is not None:
        def_name = ref.rsplit("/", 1)[-1]
        model = registry.get(def_name)
        if model is not None:
            rules = _cel_rules_of(model)
        # Field-level keys (description, default) override the referenced model's own.
        node = {**defs[def_name], **node}

    out: JsonSchema = {}
    for key, value in node.items():
        if key == "additionalProperties" and isinstance(value, dict):
            # A map field (dict[str, X]) keeps its value schema; only `false` (closed models)
            # is dropped, the API server prunes unknown fields anyway.
            out[key] = _structural(value, defs, registry)
            continue
        if key in _DROPPED_KEYS:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "description":
            # Docstrings wrap lines; `kubectl explain` re-wraps them itself.
            out[key] = " ".join(str(value).split())
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _structural(sub, defs, registry) for name, sub in value.items()}
        elif key in ("items", "anyOf", "allOf", "oneOf", "not"):
            out[key] = _structural(value, defs, registry)
        elif key == "prefixItems":
            raise ValueError("fixed-length tuples are not structural; use tuple[X, ...]")
        else:
            out[key] = value
    if out.get("type") == "integer" and out.pop("exclusiveMinimum", None) is True:
        out["minimum"] += 1  # an integer above N is an integer of at least N+1: simpler to read
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("format") == "date-time":
        out["type"] = "string"
    if out.get("type") == "array" and out.get("default") == []:
        del out["default"]
    if out.get("type") == "object" and "default" in out:
        # Object defaults are applied by the operator, not the API server: a partial object
        # default would bypass nested required fields.
        del out["default"]
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def structural_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural OpenAPI v3 schema of one model (wire names, no references)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: JsonSchema = _structural(raw, defs, _model_registry(model))
    rules = _cel_rules_of(model)
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def crd_manifest(spec: CrdSpec) -> dict[str, Any]:
    """The whole CustomResourceDefinition object for one resource."""
    spec_schema = structural_schema(spec.spec_model)
    status_schema = structural_schema(spec.status_model)
    root = {
        "type": "object",
        "description": spec.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": spec.name,
            "labels": {"app.kubernetes.io/part-of": "fleetscale"},
        },
        "spec": {
            "group": GROUP,
            "scope": spec.scope,
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.singular,
                "shortNames": list(spec.short_names),
                "categories": list(spec.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_wire() for c in spec.printer_columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def iter_schema_nodes(schema: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, node) of a schema; used by tests to assert structural rules everywhere."""
    yield path, schema
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield from iter_schema_nodes(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from iter_schema_nodes(value, f"{path}/{index}")


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated sub-trees out in full: anchors and aliases confuse readers of CRDs."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml(manifest: Mapping[str, Any]) -> str:
    """Stable YAML text of a manifest (the bytes committed under crds/)."""
    header = "# Generated by `python -m fleetscale crd --write`. Do not edit by hand.\n"
    body = yaml.dump(
        dict(manifest), Dumper=_NoAliasDumper, sort_keys=False, width=100, allow_unicode=True
    )
    return header + body
