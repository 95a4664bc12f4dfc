"""Operator settings: environment, flags overriding it, and one-line errors."""

from __future__ import annotations

import pytest

from fleetscale.settings import Settings, SettingsError, load_settings


def test_defaults_watch_the_cluster_with_json_logs_and_peering() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.clusterwide
    assert not settings.standalone
    assert (settings.log_format, settings.http_port, settings.peering) == (
        "json",
        8080,
        "fleetscale",
    )


def test_environment_is_read() -> None:
    settings = load_settings(
        {
            "FLEETSCALE_PROMETHEUS_URL": "http://prom.monitoring:9090",
            "FLEETSCALE_NAMESPACES": "team-a, team-b,,",
            "FLEETSCALE_LOG_FORMAT": "Console",
            "FLEETSCALE_LOG_LEVEL": "debug",
            "FLEETSCALE_HTTP_PORT": "9100",
            "FLEETSCALE_PEERING": "",
        }
    )
    assert settings.prometheus_url == "http://prom.monitoring:9090"
    assert settings.namespaces == ("team-a", "team-b")
    assert (settings.log_format, settings.log_level, settings.http_port) == (
        "console",
        "DEBUG",
        9100,
    )
    assert settings.standalone


def test_flags_override_environment() -> None:
    settings = load_settings(
        {"FLEETSCALE_NAMESPACES": "team-a", "FLEETSCALE_PROMETHEUS_URL": "http://env:9090"},
        {"namespaces": ["team-c"], "prometheus_url": "http://flag:9090", "log_level": None},
    )
    assert settings.namespaces == ("team-c",)
    assert settings.prometheus_url == "http://flag:9090"
    assert settings.log_level == "INFO"


@pytest.mark.parametrize(
    ("environ", "flags", "expected"),
    [
        pytest.param({"FLEETSCALE_HTTP_PORT": "eighty"}, {}, "FLEETSCALE_HTTP_PORT", id="port-env"),
        pytest.param({}, {"http_port": "70000"}, "--http-port", id="port-flag"),
        pytest.param({"FLEETSCALE_LOG_FORMAT": "xml"}, {}, "FLEETSCALE_LOG_FORMAT", id="format"),
        pytest.param({}, {"prometheus_url": "prom:9090"}, "--prometheus-url", id="url-scheme"),
        pytest.param({"FLEETSCALE_NAMESPACES": "Team_A"}, {}, "FLEETSCALE_NAMESPACES", id="ns"),
    ],
)
def test_bad_values_are_one_line_naming_the_source(
    environ: dict[str, str], flags: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, flags)
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
