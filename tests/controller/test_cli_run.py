"""`fleetscale run` refuses bad settings with one plain line, before touching any cluster."""

from __future__ import annotations

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
