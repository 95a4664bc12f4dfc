"""values.schema.json rejects wrong values at install time, naming the bad value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chartkit import CHART, MATRIX, template_result, values_file

BAD_VALUES = [
    pytest.param({"replicaCount": "two"}, "replicaCount", id="replicas-not-a-number"),
    pytest.param({"replicaCount": 0}, "replicaCount", id="zero-replicas"),
    pytest.param({"operator": {"logFormat": "xml"}}, "logFormat", id="unknown-log-format"),
    pytest.param({"operator": {"logLevel": "TRACE"}}, "logLevel", id="unknown-log-level"),
    pytest.param({"operator": {"httpPort": 70000}}, "httpPort", id="port-out-of-range"),
    pytest.param(
        {"operator": {"watchNamespaces": ["Team_A"]}}, "watchNamespaces", id="bad-namespace"
    ),
    pytest.param(
        {"operator": {"watchNamespaces": "team-a"}}, "watchNamespaces", id="namespaces-not-a-list"
    ),
    pytest.param(
        {"prometheus": {"url": "prometheus:9090"}}, "url", id="prometheus-url-without-scheme"
    ),
    pytest.param(
        {"prometheus": {"secretNames": ["*"]}}, "secretNames", id="secret-wildcard-refused"
    ),
    pytest.param({"prometheus": {"bearerToken": "x"}}, "bearerToken", id="unknown-nested-key"),
    pytest.param(
        {"prometheus": {"bearerTokenSecret": {"name": "Prom_Token"}}},
        "bearerTokenSecret",
        id="token-secret-bad-name",
    ),
    pytest.param(
        {"prometheus": {"caSecret": {"name": "prom-ca", "key": "../ca.crt"}}},
        "caSecret",
        id="ca-secret-key-with-a-path",
    ),
    pytest.param(
        {"prometheus": {"caSecret": {"secretName": "prom-ca"}}},
        "secretName",
        id="ca-secret-unknown-key",
    ),
    pytest.param({"replicas": 3}, "replicas", id="unknown-top-level-key"),
    pytest.param(
        {"prometheus": {"url": "http://prom:9090/x?y="}}, "url", id="default-url-with-query"
    ),
    pytest.param(
        {"prometheus": {"allowedUrls": ["http://prom:9090/#"]}}, "allowedUrls", id="fragment"
    ),
    pytest.param(
        {"prometheus": {"allowedUrls": ["http://u:p@prom:9090"]}}, "allowedUrls", id="userinfo"
    ),
    pytest.param({"prometheus": {"enforceNamespace": "yes"}}, "enforceNamespace", id="not-bool"),
    pytest.param(
        {"prometheus": {"namespaceLabel": "__name__"}}, "namespaceLabel", id="reserved-label"
    ),
    pytest.param(
        {"networkPolicy": {"apiServerCidrs": ["10.0.0.1"]}}, "apiServerCidrs", id="no-prefix"
    ),
    pytest.param(
        {"rbac": {"extraScaleTargets": [{"apiGroup": "*", "resource": "*"}]}},
        "extraScaleTargets",
        id="scale-target-wildcard-refused",
    ),
    pytest.param(
        {"rbac": {"extraScaleTargets": [{"resource": "leaderworkersets"}]}},
        "apiGroup",
        id="scale-target-without-group",
    ),
    pytest.param({"image": {"digest": "latest"}}, "digest", id="digest-not-sha256"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy", id="bad-pull-policy"),
    pytest.param({"serviceMonitor": {"interval": "30"}}, "interval", id="duration-without-unit"),
    pytest.param({"providers": {"kwok": {"enabled": "yes"}}}, "enabled", id="bool-as-string"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES)
def test_bad_values_fail_with_the_path_of_the_value(
    values: dict[str, Any], named: str, tmp_path: Path
) -> None:
    result = template_result(values_file(values, tmp_path))
    assert result.returncode != 0, f"accepted: {values}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize("values", MATRIX)
def test_the_documented_cases_pass_the_schema(values: dict[str, Any], tmp_path: Path) -> None:
    result = template_result(values_file(values, tmp_path))
    assert result.returncode == 0, result.stderr


def test_every_default_value_is_described_by_the_schema() -> None:
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

    def undeclared(values: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(values, dict) or "properties" not in node:
            return []
        missing = []
        for key, value in values.items():
            if key not in node["properties"]:
                missing.append(f"{path}.{key}")
            else:
                missing += undeclared(value, node["properties"][key], f"{path}.{key}")
        return missing

    assert undeclared(defaults, schema, "") == []
    assert schema["additionalProperties"] is False
