"""Which Prometheus a pool may name: parsed, normalized, and on the operator's allow-list (#11).

A tenant writes ``spec.metrics.prometheus.url``; the operator's pod reaches it. Without a
policy that is a request forgery primitive: any URL the pod can reach, with the path suffix
neutralised by ``#`` or ``?x=``, with credentials in the URL. These tests pin the pure policy
(``signals.endpoints``) and its use by the controller, which turns a refusal into
MetricsAvailable=False (QueryRefused) without ever sending a request.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleetscale.actuators.fake import FakeSecretReader
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.controller.credentials import CredentialFiles
from fleetscale.controller.inferencepools.measure import prometheus_endpoint
from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.settings import Settings, SettingsError, load_settings
from fleetscale.signals.base import PrometheusEndpoint, Refusal
from fleetscale.signals.endpoints import ANY_URL, allowed_base_url, normalize_base_url

DEFAULT = "http://prometheus.monitoring:9090"


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        pytest.param("http://prometheus.monitoring:9090", DEFAULT, id="plain"),
        pytest.param("http://prometheus.monitoring:9090/", DEFAULT, id="trailing-slash"),
        pytest.param("HTTP://Prometheus.Monitoring:9090", DEFAULT, id="case"),
        pytest.param("https://thanos.example:443/", "https://thanos.example", id="default-port"),
        pytest.param("http://mimir:8080/prometheus/", "http://mimir:8080/prometheus", id="prefix"),
        pytest.param("http://[::1]:9090", "http://[::1]:9090", id="ipv6"),
    ],
)
def test_base_urls_are_normalized(url: str, normalized: str) -> None:
    assert normalize_base_url(url) == normalized


@pytest.mark.parametrize(
    ("url", "reason_part"),
    [
        pytest.param("http://prom:9090/#", "fragment", id="fragment"),
        pytest.param("http://prom:9090/x#y", "fragment", id="fragment-with-text"),
        pytest.param("http://prom:9090/?x=", "query", id="query"),
        pytest.param("http://prom:9090/?", "query", id="empty-query"),
        pytest.param("http://user:pw@prom:9090", "credentials", id="userinfo"),
        pytest.param("http://@prom:9090", "credentials", id="empty-userinfo"),
        pytest.param("ftp://prom:9090", "http or https", id="scheme"),
        pytest.param("file:///etc/passwd", "http or https", id="file"),
        pytest.param("http://:9090", "host", id="no-host"),
        pytest.param("http://prom:99999", "port", id="bad-port"),
        pytest.param("http://prom:9090/a/../b", "dot segments", id="dot-segments"),
        pytest.param("http://prom:9090/%2e%2e/admin", "percent", id="percent-encoding"),
        pytest.param("http://prom:9090/a b", "whitespace", id="space"),
        pytest.param("http://prom:9090\\@evil", "backslash", id="backslash"),
    ],
)
def test_urls_that_could_escape_the_api_path_are_refused(url: str, reason_part: str) -> None:
    refused = normalize_base_url(url)
    assert isinstance(refused, Refusal)
    assert reason_part in refused.reason


@pytest.mark.parametrize(
    ("url", "allowed", "expected"),
    [
        pytest.param(DEFAULT + "/", [DEFAULT], DEFAULT, id="listed"),
        pytest.param("http://team-prom:9090", [DEFAULT], None, id="not-listed"),
        pytest.param("http://prometheus.monitoring:9091", [DEFAULT], None, id="other-port"),
        pytest.param(DEFAULT + "/api/v1/admin", [DEFAULT], None, id="longer-path"),
        pytest.param("http://team-prom:9090", [ANY_URL], "http://team-prom:9090", id="any"),
        pytest.param("http://team-prom:9090/?x=", [ANY_URL], None, id="any-still-normalized"),
        pytest.param(DEFAULT, [], None, id="nothing-allowed"),
    ],
)
def test_only_listed_base_urls_are_allowed(
    url: str, allowed: list[str], expected: str | None
) -> None:
    result = allowed_base_url(url, allowed)
    if expected is None:
        assert isinstance(result, Refusal)
    else:
        assert result == expected


def test_the_allow_list_defaults_to_the_operator_wide_url() -> None:
    settings = load_settings({"FLEETSCALE_PROMETHEUS_URL": DEFAULT + "/"})
    assert settings.allowed_prometheus_urls == frozenset({DEFAULT})


def test_the_allow_list_is_opened_by_a_setting() -> None:
    settings = load_settings(
        {
            "FLEETSCALE_PROMETHEUS_URL": DEFAULT,
            "FLEETSCALE_PROMETHEUS_ALLOWED_URLS": "http://team-a-prom:9090/, https://thanos:443",
        }
    )
    assert settings.allowed_prometheus_urls == frozenset(
        {DEFAULT, "http://team-a-prom:9090", "https://thanos"}
    )


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        pytest.param(
            {"FLEETSCALE_PROMETHEUS_ALLOWED_URLS": "http://a:9090/?x="},
            "FLEETSCALE_PROMETHEUS_ALLOWED_URLS",
            id="allowed-with-query",
        ),
        pytest.param(
            {"FLEETSCALE_PROMETHEUS_URL": "http://user:pw@prom:9090"},
            "FLEETSCALE_PROMETHEUS_URL",
            id="default-with-userinfo",
        ),
    ],
)
def test_a_bad_url_setting_stops_the_operator(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ)


def _spec(url: str | None) -> InferencePoolSpec:
    metrics: dict[str, Any] = {"engine": "custom", "queueDepth": {"query": "sum(q)"}}
    if url is not None:
        metrics["prometheus"] = {"url": url}
    return InferencePoolSpec.model_validate(
        {"targetRef": {"name": "vllm"}, "replicas": {"max": 4}, "metrics": metrics}
    )


async def _endpoint(url: str | None, settings: Settings) -> PrometheusEndpoint | MetricReading:
    return await prometheus_endpoint(
        "team-a", _spec(url), FakeSecretReader(), settings, CredentialFiles()
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(DEFAULT + "/secret#", id="fragment"),
        pytest.param(DEFAULT + "/secret?x=", id="query"),
        pytest.param("http://admin:admin@prometheus.monitoring:9090", id="userinfo"),
        pytest.param("http://169.254.169.254/latest/meta-data", id="not-allowed"),
        pytest.param("http://kubernetes.default.svc:443", id="api-server"),
    ],
)
async def test_the_controller_refuses_a_pool_url_outside_the_policy(url: str) -> None:
    settings = Settings(prometheus_url=DEFAULT)
    endpoint = await _endpoint(url, settings)
    assert isinstance(endpoint, MetricReading)
    assert endpoint.problem is MetricProblem.QUERY_REFUSED
    assert "spec.metrics.prometheus.url" in endpoint.detail


async def test_the_controller_uses_the_normalized_url_of_an_allowed_pool_url() -> None:
    settings = Settings(
        prometheus_url=DEFAULT, prometheus_allowed_urls=("http://team-a-prom:9090",)
    )
    endpoint = await _endpoint("http://Team-A-Prom:9090/", settings)
    assert isinstance(endpoint, PrometheusEndpoint)
    assert endpoint.url == "http://team-a-prom:9090"
    default = await _endpoint(None, settings)
    assert isinstance(default, PrometheusEndpoint)
    assert default.url == DEFAULT
