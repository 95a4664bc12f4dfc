"""Logging: our structured events and kopf's stdlib records come out as the same JSON lines.

configure_logging routes every record of the process to one handler, so these tests read only
the lines of their own loggers: garbage that earlier tests left (an asyncio task destroyed
while pending, an unclosed client session) is reported through the asyncio logger whenever the
garbage collector runs, and would land in the middle of the captured stream. The global
setup itself is put back after each test by the autouse fixture in tests/conftest.py.
"""

from __future__ import annotations

import gc
import io
import json
import logging
from typing import Any

import kopf
import structlog

from fleetscale.logs import configure_logging, get_logger
from fleetscale.settings import LogFormat
from support.logging_state import preserved_logging

OWN_LOGGERS = ("fleetscale.test", "kopf.objects")


def _own_records(stream: io.StringIO) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    return [record for record in records if record.get("logger") in OWN_LOGGERS]


def _capture(log_format: LogFormat) -> io.StringIO:
    gc.collect()  # let earlier tests' garbage report itself before we capture
    stream = io.StringIO()
    configure_logging(log_format, "INFO", stream=stream)
    return stream


def test_own_and_kopf_records_share_the_json_shape() -> None:
    stream = _capture("json")

    get_logger("fleetscale.test", namespace="ns", pool="llama").info("decided", reason="ScaledUp")
    reference = {"namespace": "ns", "name": "mistral", "kind": "InferencePool"}
    logging.getLogger("kopf.objects").warning(
        "Handler failed",
        extra={"k8s_ref": reference, "k8s_skip": True, "settings": kopf.OperatorSettings()},
    )
    logging.getLogger("fleetscale.test").debug("not shown at INFO")

    lines = _own_records(stream)
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


def test_console_format_is_for_humans() -> None:
    stream = _capture("console")
    get_logger("fleetscale.test", pool="llama").info("decided", reason="Holding")
    [line] = [line for line in stream.getvalue().splitlines() if "fleetscale.test" in line]
    assert "decided" in line
    assert "pool=llama" in line
    assert not line.lstrip().startswith("{")


def test_a_stray_record_from_earlier_garbage_does_not_count_as_ours() -> None:
    stream = _capture("json")
    logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
    get_logger("fleetscale.test").info("decided")

    assert [record["event"] for record in _own_records(stream)] == ["decided"]
    assert len(stream.getvalue().splitlines()) == 2  # the stray line was there, and JSON


def test_configuring_logging_is_undone_when_the_test_ends() -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level, structlog.is_configured(), structlog.get_config())
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_before = (asyncio_logger.handlers[:], asyncio_logger.propagate)

    with preserved_logging():
        configure_logging("console", "DEBUG", stream=io.StringIO())
        kopf.configure(verbose=False)  # what KopfRunner does: silences asyncio, adds a handler
        logging.disable(logging.CRITICAL)
        assert root.handlers != before[0]

    assert (root.handlers, root.level) == (before[0], before[1])
    assert (structlog.is_configured(), structlog.get_config()) == (before[2], before[3])
    assert (asyncio_logger.handlers, asyncio_logger.propagate) == asyncio_before
    assert logging.getLogger("fleetscale.test").isEnabledFor(logging.CRITICAL)
