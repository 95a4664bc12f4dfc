"""Keep the process-wide logging setup from leaking from one test into the next.

Role: ``fleetscale run`` configures logging for the whole process (root handler, levels,
structlog), and so do kopf's command line (KopfRunner) and any test that calls either. Left in
place, the next tests log into a stream that pytest already closed, with another format, or
with the asyncio logger silenced. ``preserved_logging`` snapshots the root logger, every
existing logger's handlers, level, propagation and disabled flag, ``logging.disable`` and
structlog's configuration, and puts them back on exit. Callers: tests/conftest.py (around
every test), tests.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog


@dataclass(frozen=True)
class _LoggerState:
    handlers: list[logging.Handler]
    level: int
    propagate: bool
    disabled: bool

    @classmethod
    def of(cls, logger: logging.Logger) -> _LoggerState:
        return cls(logger.handlers[:], logger.level, logger.propagate, logger.disabled)

    def apply(self, logger: logging.Logger) -> None:
        logger.handlers[:] = self.handlers
        logger.setLevel(self.level)
        logger.propagate = self.propagate
        logger.disabled = self.disabled


def _loggers() -> dict[str, logging.Logger]:
    found = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)  # not the placeholders of unused parents
    }
    found[""] = logging.getLogger()
    return found


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore stdlib logging and structlog to what they were on entry."""
    saved = {name: _LoggerState.of(logger) for name, logger in _loggers().items()}
    disabled_below = logging.Logger.manager.disable
    structlog_configured = structlog.is_configured()
    structlog_config: dict[str, Any] = structlog.get_config()
    try:
        yield
    finally:
        current = _loggers()
        for name, state in saved.items():
            state.apply(current[name])
        # Loggers created meanwhile keep what their modules set up at import.
        logging.disable(disabled_below)
        if structlog_configured:
            structlog.configure(**structlog_config)
        else:
            structlog.reset_defaults()
