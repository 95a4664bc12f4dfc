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
