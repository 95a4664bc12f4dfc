"""Logging: our structured events and kopf's stdlib records come out as the same JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import kopf
import pytest

from fleetscale.logs import configure_logging, get_logger


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_own_and_kopf_records_share_the_json_shape() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)

    get_logger("fleetscale.test", namespace="ns", pool="llama").info("decided", reason="ScaledUp")
    reference = {"namespace": "ns", "name": "mistral", "kind": "InferencePool"}
    logging.getLogger("kopf.objects").warning(
        "Handler failed",
        extra={"k8s_ref": reference, "k8s_skip": True, "settings": kopf.OperatorSettings()},
    )
    logging.getLogger("fleetscale.test").debug("not shown at INFO")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    own, kopf_line = lines
    assert own["event"] == "decided"
    assert (own["level"], own["namespace"], own["pool"], own["reason"]) == (
        "info",
        "ns",
        "llama",
        "ScaledUp",
    )
    assert own["timestamp"].endswith("Z")
    assert kopf_line["event"] == "Handler failed"
    assert (kopf_line["level"], kopf_line["namespace"], kopf_line["pool"]) == (
        "warning",
        "ns",
        "mistral",
    )
    assert "settings" not in kopf_line
    assert "k8s_ref" not in kopf_line


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_for_humans() -> None:
    stream = io.StringIO()
    configure_logging("console", "INFO", stream=stream)
    get_logger("fleetscale.test", pool="llama").info("decided", reason="Holding")
    line = stream.getvalue()
    assert "decided" in line
    assert "pool=llama" in line
    assert not line.lstrip().startswith("{")
