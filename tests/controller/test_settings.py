"""Operator settings: environment, flags overriding it, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetscale.settings import Settings, SettingsError, load_settings


def test_defaults_watch_the_cluster_with_json_logs_and_leader_election() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.clusterwide
    assert settings.leader_election
    assert (settings.log_format, settings.http_port, settings.lease_name) == (
        "json",
        8080,
        "fleetscale",
    )
    # client-go's defaults: a leader stops acting 5 s before a standby may take over.
    assert (
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    ) == (15, 10, 2)
    assert settings.resolved_identity() != settings.resolved_identity()  # unique when unset


def test_environment_is_read() -> None:
    settings = load_settings(
        {
            "FLEETSCALE_PROMETHEUS_URL": "http://prom.monitoring:9090",
            "FLEETSCALE_NAMESPACES": "team-a, team-b,,",
            "FLEETSCALE_LOG_FORMAT": "Console",
            "FLEETSCALE_LOG_LEVEL": "debug",
            "FLEETSCALE_HTTP_PORT": "9100",
            "FLEETSCALE_LEADER_ELECTION": "false",
            "FLEETSCALE_LEASE_NAME": "gpu-fleet",
            "FLEETSCALE_LEASE_NAMESPACE": "ops",
            "FLEETSCALE_IDENTITY": "fleetscale-7d9c6-x2k4q",
        }
    )
    assert settings.prometheus_url == "http://prom.monitoring:9090"
    assert settings.namespaces == ("team-a", "team-b")
    assert (settings.log_format, settings.log_level, settings.http_port) == (
        "console",
        "DEBUG",
        9100,
    )
    assert not settings.leader_election
    assert (settings.lease_name, settings.resolved_lease_namespace()) == ("gpu-fleet", "ops")
    assert settings.resolved_identity() == "fleetscale-7d9c6-x2k4q"


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
        pytest.param({}, {"leader_election": "maybe"}, "--leader-election", id="election-flag"),
        pytest.param({"FLEETSCALE_LEASE_NAME": "../x"}, {}, "FLEETSCALE_LEASE_NAME", id="lease"),
        pytest.param(
            {"FLEETSCALE_LEASE_DURATION_SECONDS": "10"},
            {},
            "FLEETSCALE_LEASE_DURATION_SECONDS > FLEETSCALE_RENEW_DEADLINE_SECONDS",
            id="standby-could-take-over-while-the-leader-acts",
        ),
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


def test_prometheus_credential_files_come_from_env_or_flags(tmp_path: Path) -> None:
    token, ca, other = tmp_path / "token", tmp_path / "ca.crt", tmp_path / "other-token"
    for path in (token, ca, other):
        path.write_text("x", encoding="utf-8")
    environ = {
        "FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE": str(token),
        "FLEETSCALE_PROMETHEUS_CA_FILE": str(ca),
    }
    from_env = load_settings(environ)
    assert (from_env.prometheus_bearer_token_file, from_env.prometheus_ca_file) == (token, ca)

    flagged = load_settings(environ, {"prometheus_bearer_token_file": str(other)})
    assert flagged.prometheus_bearer_token_file == other
    assert flagged.prometheus_ca_file == ca

    empty = {"FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE": "", "FLEETSCALE_PROMETHEUS_CA_FILE": " "}
    assert load_settings(empty) == Settings()


@pytest.mark.parametrize(
    ("environ", "flags", "expected"),
    [
        pytest.param(
            {"FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE": "/nonexistent/token"},
            {},
            "FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE='/nonexistent/token': no such readable file",
            id="token-env",
        ),
        pytest.param(
            {},
            {"prometheus_ca_file": "/nonexistent/ca.crt"},
            "--prometheus-ca-file='/nonexistent/ca.crt': no such readable file",
            id="ca-flag",
        ),
    ],
)
def test_a_missing_credential_file_stops_at_startup_naming_it(
    environ: dict[str, str], flags: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, flags)
    assert expected in str(raised.value)


def test_a_directory_is_not_a_credential_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FLEETSCALE_PROMETHEUS_CA_FILE"):
        load_settings({"FLEETSCALE_PROMETHEUS_CA_FILE": str(tmp_path)})


def test_prometheus_isolation_flags_override_environment() -> None:
    settings = load_settings(
        {
            "FLEETSCALE_PROMETHEUS_ALLOWED_URLS": "http://env:9090",
            "FLEETSCALE_ENFORCE_NAMESPACE": "false",
            "FLEETSCALE_NAMESPACE_LABEL": "",
        },
        {
            "prometheus_allowed_urls": "http://flag-a:9090/, http://flag-b:9090",
            "enforce_namespace": "true",
            "namespace_label": "exported_namespace",
        },
    )
    assert settings.prometheus_allowed_urls == ("http://flag-a:9090", "http://flag-b:9090")
    assert settings.enforce_namespace
    assert settings.namespace_label == "exported_namespace"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"FLEETSCALE_ENFORCE_NAMESPACE": "perhaps"}, "FLEETSCALE_ENFORCE_NAMESPACE", id="bool"
        ),
        pytest.param(
            {"FLEETSCALE_NAMESPACE_LABEL": "__name__"}, "FLEETSCALE_NAMESPACE_LABEL", id="label"
        ),
        pytest.param(
            {"FLEETSCALE_PROMETHEUS_ALLOWED_URLS": "http://a:9090,ftp://b"},
            "FLEETSCALE_PROMETHEUS_ALLOWED_URLS",
            id="allowed-scheme",
        ),
    ],
)
def test_bad_isolation_settings_name_their_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)
