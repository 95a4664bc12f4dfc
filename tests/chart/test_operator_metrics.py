"""The operator's /metrics follows Prometheus conventions, and the chart's dashboard reads them.

`promtool check metrics` (Debian's prometheus package) lints the exposition of a registry in
which every series has a sample, the way a running operator exposes it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from chartkit import CHART, one, render
from prometheus_client import Counter, Gauge, Histogram

from fleetscale.metrics import OperatorMetrics, PoolSeries

DASHBOARD = CHART / "files" / "dashboard.json"


def _populated() -> OperatorMetrics:
    """Every metric of the operator with one sample on plausible labels."""
    metrics = OperatorMetrics()
    sample_labels = {"namespace": "llm", "pool": "llama-70b", "reason": "ScaledUp"}
    for value in vars(metrics).values():
        if isinstance(value, PoolSeries):  # the per-pool families, kept by fleetscale itself
            series = value.labels(*(sample_labels[n] for n in value.label_names))
            series.inc() if value.kind == "counter" else series.set(3)
            continue
        if not isinstance(value, Counter | Gauge | Histogram):
            continue
        names = value._labelnames
        child = value.labels(*(sample_labels[n] for n in names)) if names else value
        if isinstance(value, Counter):
            child.inc()
        elif isinstance(value, Gauge):
            child.set(3)
        else:
            child.observe(0.2)
    return metrics


def _exported_names() -> set[str]:
    return {family.name for family in _populated().registry.collect()}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: `apt-get install prometheus` (Debian) provides /usr/bin/promtool",
            pytrace=False,
        )
    return path


def test_metrics_exposition_passes_promtool() -> None:
    exposition = _populated().render()
    assert b"fleetscale_decisions_total{" in exposition  # the samples are really there
    result = subprocess.run(
        [_promtool(), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_promtool_flags_a_convention_breach() -> None:
    bad = b"# HELP fleetscale_x_seconds_total t\n# TYPE fleetscale_x_seconds_total gauge\n"
    bad += b"fleetscale_x_seconds_total 1\n"
    result = subprocess.run(
        [_promtool(), "check", "metrics"], input=bad, capture_output=True, check=False
    )
    assert result.returncode != 0
    assert b"_total" in result.stdout + result.stderr


def test_every_metric_is_namespaced_and_documented() -> None:
    for family in _populated().registry.collect():
        assert family.name.startswith("fleetscale_"), family.name
        assert family.documentation.strip(), f"{family.name} has no HELP text"


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_reads_only_metrics_the_operator_exports() -> None:
    exported = _exported_names()
    referenced = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in _dashboard_exprs()
        for name in re.findall(r"\bfleetscale_[a-z_]+", expr)
    }
    # Counters are exported as family `x` with samples `x_total`.
    missing = {name for name in referenced if name.removesuffix("_total") not in exported}
    assert not missing, f"the dashboard reads metrics the operator does not export: {missing}"


def test_dashboard_shows_what_an_sre_needs_per_pool() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for subject in ("replicas", "desired", "queue", "gpu", "shed", "retry-after", "decisions"):
        assert subject in titles, f"no panel about {subject}"
    per_pool = [e for e in _dashboard_exprs() if 'pool=~"$pool"' in e]
    assert len(per_pool) >= 7
    for gauge in ("fleetscale_observed_queue_depth", "fleetscale_observed_gpu_utilization_percent"):
        assert any(e.startswith(gauge + "{") for e in per_pool), f"no per-pool panel of {gauge}"
    panels = [p for p in dashboard["panels"] if "datasource" in p]
    datasources = {json.dumps(p["datasource"], sort_keys=True) for p in panels}
    assert datasources == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}


def test_dashboard_configmap_ships_the_json_unchanged() -> None:
    objects = render({"grafanaDashboard": {"enabled": True}})
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(config_map["data"]["fleetscale.json"])
    assert shipped == json.loads(DASHBOARD.read_text(encoding="utf-8"))
