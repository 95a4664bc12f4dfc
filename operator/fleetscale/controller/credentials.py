"""Credential files of the operator's default Prometheus, re-read when they change.

Role: the bearer token and CA bundle of the default Prometheus (``FLEETSCALE_PROMETHEUS_*_FILE``)
come from files, in a cluster a Secret mounted into the pod. Tokens rotate: the kubelet swaps
the mounted files in place, so each tick stats the file (cheap) and reads it again only when
its modification time, size or inode changed; otherwise the cached text is used. A file that
cannot be read raises ``CredentialFileError`` with the path and the cause, which reconcile
turns into MetricsAvailable=False (the pool holds its size). Callers: ``inferencepools.measure``,
tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class CredentialFileError(Exception):
    """A credential file is missing, unreadable or empty; the message names the file."""


@dataclass
class _Cached:
    version: tuple[int, int, int, int]
    text: str


@dataclass
class CredentialFiles:
    """Text of credential files, cached per path and re-read when a file changes."""

    _cache: dict[Path, _Cached] = field(default_factory=dict)
    reads: int = 0
    """How many times a file was actually read (not served from the cache)."""

    def read(self, path: Path) -> str:
        """The file's text, re-read only if it changed since the last call."""
        try:
            info = os.stat(path)  # follows the symlinks of a mounted Secret to the current file
            version = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev)
            cached = self._cache.get(path)
            if cached is not None and cached.version == version:
                return cached.text
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self._cache.pop(path, None)
            raise CredentialFileError(f"cannot read {path}: {_cause(error)}") from error
        self.reads += 1
        if not text.strip():
            self._cache.pop(path, None)
            raise CredentialFileError(f"{path} is empty")
        self._cache[path] = _Cached(version, text)
        return text


def _cause(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
