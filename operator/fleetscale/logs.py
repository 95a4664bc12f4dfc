"""Logging: one structured line per event, for fleetscale's own logs and for kopf's.

Role: configure structlog and the standard library together, so that fleetscale's structured
events (``log.info("scaled", pool=..., reason=...)``) and kopf's plain stdlib records go through
the same processor chain and come out in one format: JSON lines for machines (keys: event,
level, timestamp, logger, pool, namespace, reason, ...) or colourless console lines for humans.
kopf's per-object records carry the object in ``k8s_ref``; it is turned into ``namespace`` and
``pool`` so that a pool's history can be grepped from one key whoever logged it.
Callers: ``fleetscale run`` (once, at start), the controller (``get_logger``), tests.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]

# Extras of kopf's records that are plumbing, not information.
_KOPF_PLUMBING = ("k8s_skip", "settings")


def _kopf_object_reference(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Turn kopf's ``k8s_ref`` extra into the ``namespace``/``pool`` keys our own logs use."""
    for key in _KOPF_PLUMBING:
        event_dict.pop(key, None)
    reference = event_dict.pop("k8s_ref", None)
    if isinstance(reference, MutableMapping):
        if reference.get("namespace"):
            event_dict.setdefault("namespace", reference["namespace"])
        if reference.get("name"):
            event_dict.setdefault("pool", reference["name"])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _kopf_object_reference,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(log_format: LogFormat) -> Processor:
    if log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(sort_keys=False)


def configure_logging(
    log_format: LogFormat = "json",
    level: str = "INFO",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging (kopf, aiohttp, kubernetes) into one handler.

    Idempotent: the root logger's handlers are replaced, so calling it twice does not double
    every line.
    """
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The API clients are chatty at DEBUG (every request line); keep them at WARNING unless
    # the operator itself is asked for DEBUG.
    noisy_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    # kopf says "Handler ... succeeded" at INFO for every watch event of every pool: at
    # thousands of pools that line was most of the cost of an event. Its warnings and errors
    # stay.
    for name in ("urllib3", "kubernetes", "aiohttp.access", "kopf.objects"):
        logging.getLogger(name).setLevel(noisy_level)


def get_logger(name: str = "fleetscale", **context: Any) -> Any:
    """A structlog logger bound to ``context`` (e.g. namespace and pool of one InferencePool)."""
    return structlog.stdlib.get_logger(name).bind(**context)
