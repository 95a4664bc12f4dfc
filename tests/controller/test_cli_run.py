"""`fleetscale run` refuses bad settings and missing credentials with one plain line."""

from __future__ import annotations

from pathlib import Path

import kubernetes.config
import pytest

from fleetscale.cli import main


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param(["--http-port", "eighty"], {}, "--http-port='eighty'", id="flag"),
        pytest.param([], {"FLEETSCALE_LOG_FORMAT": "xml"}, "FLEETSCALE_LOG_FORMAT='xml'", id="env"),
        pytest.param(["--namespace", "Bad_NS"], {}, "--namespace", id="namespace"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    argv: list[str],
    environ: dict[str, str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert main(["run", *argv]) == 2

    error = capsys.readouterr().err
    assert error.startswith("fleetscale run: invalid setting: ")
    assert expected in error
    assert error.count("\n") == 1


def test_no_cluster_credentials_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod
    # No kubeconfig either; the client reads the default location once, at import.
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "none")
    )
    monkeypatch.setenv("FLEETSCALE_HTTP_PORT", "0")

    assert main(["run"]) == 1

    error = capsys.readouterr().err
    assert error.startswith("fleetscale run: no cluster credentials: ")
    assert error.count("\n") == 1


def test_prometheus_credential_flags_reach_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetscale.controller.handlers as handlers
    import fleetscale.logs as logs
    from fleetscale.settings import Settings

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("t0k3n", encoding="utf-8")
    ca.write_text("PEM", encoding="utf-8")
    started: list[Settings] = []

    def fake_run_operator(settings: Settings, *_factories: object) -> int:
        started.append(settings)
        return 0

    monkeypatch.setattr(handlers, "run_operator", fake_run_operator)
    monkeypatch.setattr(logs, "configure_logging", lambda *_: None)  # keep global logging

    argv = ["--prometheus-bearer-token-file", str(token), "--prometheus-ca-file", str(ca)]
    assert main(["run", *argv]) == 0

    [settings] = started
    assert settings.prometheus_bearer_token_file == token
    assert settings.prometheus_ca_file == ca
