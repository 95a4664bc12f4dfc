"""HAProxy: keep an HAProxy's shed maps at what fleetscale decided (``fleetscale haproxy-agent``).

Role: a small agent that runs next to HAProxy (a sidecar, or a process on the same host). It
reads a pool's shed-load ConfigMap (``spec.shedLoad.configMapName``) from the API server every
``interval`` seconds and, when the decision changed, sets HAProxy's maps through HAProxy's
Runtime API (``set map`` on the stats socket), so HAProxy never reloads:

    fraction      share of requests to refuse, in per mille (0-1000); 0 while the flag is off
    retry_after   whole seconds for the Retry-After header (at least 1)

and, in a second map of text values (HAProxy types a map by the first converter that loads it,
so integers and text cannot share one), ``message``: the text of the JSON body.

HAProxy's configuration does the rest on each request (docs/gateways.md has it, and the e2e
suite runs it): it counts requests per class in a stick table, refuses lower-priority requests
first with probability ``fraction x all / low`` and the others with
``(fraction x all - low) / (all - low)`` (rates over the last 10 s), and answers 429 with
``Retry-After`` and the JSON body.

Failure behaviour: a ConfigMap that cannot be read keeps the last maps (as the planner keeps
the flag when metrics blink); a ConfigMap that is gone (the pool was deleted) sets the
fraction to 0. A map write that fails is retried at the next read. Callers: ``fleetscale
haproxy-agent`` (cli), tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fleetscale.gateways.base import check_name
from fleetscale.kubeapi import KubeJson, RetryPolicy, describe, status_of

logger = logging.getLogger(__name__)

FRACTION = "fraction"
RETRY_AFTER = "retry_after"
MESSAGE = "message"
OFF: dict[str, str] = {FRACTION: "0", RETRY_AFTER: "1"}


def map_values(data: Mapping[str, str] | None) -> dict[str, str]:
    """The integer map's entries for a ConfigMap's data (None: the ConfigMap is gone)."""
    if not data or data.get("active") != "true":
        return dict(OFF)
    try:
        fraction = float(data.get("fraction", "1"))
    except ValueError:
        fraction = 1.0  # the flag is on and the share unreadable: refuse, as before fractions
    if not math.isfinite(fraction):
        fraction = 1.0
    permille = round(min(max(fraction, 0.0), 1.0) * 1000)
    try:
        retry = max(1, int(data.get("retryAfterSeconds", "1")))
    except ValueError:
        retry = 1
    return {FRACTION: str(permille), RETRY_AFTER: str(retry)}


def cli_word(text: str) -> str:
    """``text`` as one argument of the Runtime API: spaces and backslashes escaped, control
    characters and semicolons (the command separator) replaced by spaces."""
    cleaned = "".join(" " if ch < " " or ch in ";\x7f" else ch for ch in text)
    return cleaned.replace("\\", "\\\\").replace(" ", "\\ ")


def set_map_command(map_path: str, key: str, value: str) -> str:
    return f"set map {map_path} {key} {cli_word(value)}"


def add_map_command(map_path: str, key: str, value: str) -> str:
    return f"add map {map_path} {key} {cli_word(value)}"


class RuntimeApiError(Exception):
    """HAProxy's Runtime API refused a command or could not be reached."""


RUNTIME_API_SECONDS = 5.0


async def runtime_command(socket_path: str, command: str) -> str:
    """Send one command to HAProxy's stats socket; its answer (empty when it succeeded)."""
    try:
        async with asyncio.timeout(RUNTIME_API_SECONDS):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            try:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                answer = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as error:
        raise RuntimeApiError(f"cannot talk to HAProxy at {socket_path}: {error!r}") from error
    return answer.decode(errors="replace").strip()


@dataclass
class HAProxyShedAgent:
    """Reads one ConfigMap and keeps HAProxy's maps in step; see the module docstring."""

    api: KubeJson
    namespace: str
    config_map: str
    socket_path: str
    map_path: str
    text_map_path: str | None = None
    applied: dict[str, str] | None = None  # what HAProxy holds now, as far as we know

    def __post_init__(self) -> None:
        check_name("namespace", self.namespace, label=True)
        check_name("ConfigMap", self.config_map)

    @classmethod
    def build(cls, api_client: Any, **fields: Any) -> HAProxyShedAgent:
        return cls(api=KubeJson(api_client, RetryPolicy(attempts=2)), **fields)

    async def read(self) -> Mapping[str, str] | None:
        """The ConfigMap's data; None when it does not exist. Raises on other failures."""
        path = (
            f"/api/v1/namespaces/{quote(self.namespace, safe='')}"
            f"/configmaps/{quote(self.config_map, safe='')}"
        )
        try:
            found: Mapping[str, Any] = await self.api.request("GET", path)
        except Exception as error:
            if status_of(error) == 404:
                return None
            raise
        data: Mapping[str, str] = found.get("data") or {}
        return data

    async def apply(self, values: Mapping[str, str], message: str | None) -> None:
        """Set each entry that differs from what HAProxy holds (add it when missing)."""
        wanted = dict(values)
        if message is not None and self.text_map_path is not None:
            wanted[MESSAGE] = message
        for key, value in wanted.items():
            if self.applied is not None and self.applied.get(key) == value:
                continue
            path = self.text_map_path if key == MESSAGE else self.map_path
            assert path is not None
            answer = await runtime_command(self.socket_path, set_map_command(path, key, value))
            if answer:  # the key is not in the map yet
                answer = await runtime_command(self.socket_path, add_map_command(path, key, value))
                if answer:
                    raise RuntimeApiError(f"HAProxy refused {key}={value!r}: {answer}")
            self.applied = {**(self.applied or {}), key: value}
            logger.info("set %s %s=%s", path, key, value)

    async def step(self) -> None:
        """One read and, when something changed, one update of HAProxy's maps."""
        try:
            data = await self.read()
        except Exception as error:
            logger.warning(
                "reading ConfigMap %s failed, keeping the last maps: %s",
                self.config_map,
                describe(error),
            )
            return
        message = data.get("message") if data else None
        await self.apply(map_values(data), message)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except RuntimeApiError as error:
                self.applied = None  # HAProxy may have restarted: set everything again
                logger.warning("%s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
