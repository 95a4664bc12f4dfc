"""Operator-wide settings: where Prometheus is, which namespaces to watch, how to log and serve.

Role: one validated, immutable object built from ``FLEETSCALE_*`` environment variables, with
command-line flags of ``fleetscale run`` taking precedence. A bad value is reported as one
plain line naming the variable or flag, never as a traceback. Callers: ``fleetscale run``
(cli.py), the controller (default Prometheus URL, leader election, HTTP port), tests.

Environment variables (flags in brackets):
    FLEETSCALE_PROMETHEUS_URL  [--prometheus-url]  default Prometheus for pools that name none
    FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE  [--prometheus-bearer-token-file]  file holding the
                               bearer token sent to the default Prometheus (re-read when it
                               changes, so a rotated token is picked up)
    FLEETSCALE_PROMETHEUS_CA_FILE  [--prometheus-ca-file]  PEM CA bundle that verifies the
                               default Prometheus' certificate (re-read when it changes)
    FLEETSCALE_PROMETHEUS_ALLOWED_URLS  [--prometheus-allowed-urls]  comma list of the base URLs
                               pools may name in spec.metrics.prometheus.url, besides the
                               default one; "*" allows any (single-tenant clusters only)
    FLEETSCALE_ENFORCE_NAMESPACE  [--enforce-namespace]  true: every selector of a pool's
                               queries is limited to the pool's namespace (default false)
    FLEETSCALE_NAMESPACE_LABEL  [--namespace-label]  the label that carries the namespace in
                               Prometheus (default "namespace")
    FLEETSCALE_NAMESPACES      [--namespace, repeatable]  comma list; empty watches the cluster
    FLEETSCALE_LOG_FORMAT      [--log-format]  json (default) or console
    FLEETSCALE_LOG_LEVEL       [--log-level]   DEBUG, INFO (default), WARNING, ERROR
    FLEETSCALE_HTTP_PORT       [--http-port]   /metrics, /healthz, /readyz; default 8080, 0 = any
    FLEETSCALE_LEADER_ELECTION [--leader-election]  true (default): replicas elect one leader
                               on a coordination.k8s.io Lease and only it acts; false: this
                               process acts alone (one replica only)
    FLEETSCALE_LEASE_NAME      [--lease-name]  the Lease, default "fleetscale"
    FLEETSCALE_LEASE_NAMESPACE [--lease-namespace]  its namespace; default: the pod's own
                               namespace (in a cluster), else "default"
    FLEETSCALE_IDENTITY        [--identity]  this replica's holder identity; default: the pod
                               name (the chart sets it), else host name and a random suffix
    FLEETSCALE_LEASE_DURATION_SECONDS   how long a standby waits before taking over [15]
    FLEETSCALE_RENEW_DEADLINE_SECONDS   a leader that has not renewed for this long stops
                                        acting [10]
    FLEETSCALE_RETRY_PERIOD_SECONDS     how often the Lease is renewed or tried [2]
    FLEETSCALE_SHARDS          [--shards]  split the pools into this many shards, each held by
                               one replica through its own Lease (<lease>-shard-<i>), so that
                               replicas share the work [1: one Lease, one acting replica]
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fleetscale.logs import LogFormat
from fleetscale.signals.base import Refusal
from fleetscale.signals.endpoints import ANY_URL, normalize_base_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

ENV_PREFIX = "FLEETSCALE_"
DEFAULT_LEASE_NAME = "fleetscale"
# Where a pod finds its own namespace.
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The rules the API server applies to namespace names and to most object names.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")

# Prometheus label names; names starting with "__" are reserved for internal use.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Field name -> (environment variable, command-line flag), for error messages and parsing.
_SOURCES: dict[str, tuple[str, str]] = {
    "prometheus_url": ("FLEETSCALE_PROMETHEUS_URL", "--prometheus-url"),
    "prometheus_bearer_token_file": (
        "FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE",
        "--prometheus-bearer-token-file",
    ),
    "prometheus_ca_file": ("FLEETSCALE_PROMETHEUS_CA_FILE", "--prometheus-ca-file"),
    "prometheus_allowed_urls": (
        "FLEETSCALE_PROMETHEUS_ALLOWED_URLS",
        "--prometheus-allowed-urls",
    ),
    "enforce_namespace": ("FLEETSCALE_ENFORCE_NAMESPACE", "--enforce-namespace"),
    "namespace_label": ("FLEETSCALE_NAMESPACE_LABEL", "--namespace-label"),
    "namespaces": ("FLEETSCALE_NAMESPACES", "--namespace"),
    "log_format": ("FLEETSCALE_LOG_FORMAT", "--log-format"),
    "log_level": ("FLEETSCALE_LOG_LEVEL", "--log-level"),
    "http_port": ("FLEETSCALE_HTTP_PORT", "--http-port"),
    "leader_election": ("FLEETSCALE_LEADER_ELECTION", "--leader-election"),
    "lease_name": ("FLEETSCALE_LEASE_NAME", "--lease-name"),
    "lease_namespace": ("FLEETSCALE_LEASE_NAMESPACE", "--lease-namespace"),
    "identity": ("FLEETSCALE_IDENTITY", "--identity"),
    "lease_duration_seconds": ("FLEETSCALE_LEASE_DURATION_SECONDS", "--lease-duration-seconds"),
    "renew_deadline_seconds": ("FLEETSCALE_RENEW_DEADLINE_SECONDS", "--renew-deadline-seconds"),
    "retry_period_seconds": ("FLEETSCALE_RETRY_PERIOD_SECONDS", "--retry-period-seconds"),
    "shards": ("FLEETSCALE_SHARDS", "--shards"),
}


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line that names the variable or flag."""


class Settings(BaseModel):
    """The operator's settings after environment and flags are merged and validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus_url: str | None = None
    """Prometheus used by pools whose spec names no URL; None means such pools report an error.
    Stored normalized (see ``signals.endpoints``)."""
    prometheus_bearer_token_file: Path | None = None
    """Bearer token for the default Prometheus, read from this file (re-read when it changes).
    Only sent to ``prometheus_url``: a pool that names its own URL uses its own Secrets."""
    prometheus_ca_file: Path | None = None
    """PEM CA bundle that verifies the default Prometheus (re-read when it changes)."""
    prometheus_allowed_urls: tuple[str, ...] = ()
    """Base URLs pools may name besides ``prometheus_url`` (normalized), or ``*`` for any."""
    enforce_namespace: bool = False
    """Limit every selector of a pool's queries to the pool's namespace (multi-tenant)."""
    namespace_label: str = "namespace"
    """The Prometheus label that carries the Kubernetes namespace of a series."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster."""
    log_format: LogFormat = "json"
    log_level: LogLevel = "INFO"
    http_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the /metrics, /healthz and /readyz server; 0 picks a free port (tests)."""
    leader_election: bool = True
    """Elect one acting replica on a Lease (the chart runs two); False: act alone."""
    lease_name: str = DEFAULT_LEASE_NAME
    lease_namespace: str | None = None
    """None: the pod's own namespace (in a cluster), else "default"."""
    identity: str | None = None
    """Holder identity in the Lease; None: host name and a random suffix."""
    lease_duration_seconds: float = Field(default=15.0, gt=0, le=3600)
    renew_deadline_seconds: float = Field(default=10.0, gt=0, le=3600)
    retry_period_seconds: float = Field(default=2.0, gt=0, le=3600)
    shards: int = Field(default=1, ge=1, le=64)
    """Pools are split into this many shards by a stable hash; each shard is held by one
    replica through its own Lease. 1: the leader Lease alone (one acting replica)."""

    @field_validator("namespaces")
    @classmethod
    def _valid_namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _DNS_LABEL.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid namespace name (DNS-1123 label)")
        return value

    @field_validator("lease_name")
    @classmethod
    def _valid_lease_name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid Lease name (DNS-1123 subdomain)")
        return value

    @field_validator("lease_namespace")
    @classmethod
    def _valid_lease_namespace(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid namespace name (DNS-1123 label)")
        return value

    @model_validator(mode="after")
    def _lease_timing_holds(self) -> Settings:
        # A leader must stop acting (renew deadline) before a standby may take over (lease
        # duration), and renew more than once per deadline.
        duration, deadline = self.lease_duration_seconds, self.renew_deadline_seconds
        if self.leader_election and not duration > deadline > self.retry_period_seconds:
            raise ValueError(
                "FLEETSCALE_LEASE_DURATION_SECONDS > FLEETSCALE_RENEW_DEADLINE_SECONDS > "
                "FLEETSCALE_RETRY_PERIOD_SECONDS must hold, got "
                f"{duration:g} > {deadline:g} > {self.retry_period_seconds:g}"
            )
        return self

    @field_validator("prometheus_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normalized = normalize_base_url(value)
        if isinstance(normalized, Refusal):
            raise ValueError(normalized.reason)
        return normalized

    @field_validator("prometheus_allowed_urls")
    @classmethod
    def _base_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        normalized = []
        for url in value:
            checked = url if url == ANY_URL else normalize_base_url(url)
            if isinstance(checked, Refusal):
                raise ValueError(f"{url!r}: {checked.reason}")
            normalized.append(checked)
        return tuple(dict.fromkeys(normalized))

    @field_validator("namespace_label")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not _LABEL_NAME.fullmatch(value) or value.startswith("__"):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("prometheus_bearer_token_file", "prometheus_ca_file")
    @classmethod
    def _existing_file(cls, value: Path | None) -> Path | None:
        # Checked at startup so a typo stops the command; later changes are re-read each tick.
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError("no such readable file")
        return value

    @property
    def allowed_prometheus_urls(self) -> frozenset[str]:
        """The base URLs a pool may name: the listed ones and the operator-wide one."""
        default = () if self.prometheus_url is None else (self.prometheus_url,)
        return frozenset((*self.prometheus_allowed_urls, *default))

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def resolved_lease_namespace(self) -> str:
        """The Lease's namespace: as set, else the pod's own, else "default"."""
        if self.lease_namespace is not None:
            return self.lease_namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"

    def resolved_identity(self) -> str:
        """This replica's holder identity: as set, else host name and a random suffix."""
        return self.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


# Comma-separated lists in the environment.
_LISTS = ("namespaces", "prometheus_allowed_urls")
# Settings whose empty variable means "none".
_EMPTY_IS_NONE = (
    "prometheus_url",
    "prometheus_bearer_token_file",
    "prometheus_ca_file",
    "lease_namespace",
    "identity",
)
# Settings whose empty variable means "use the default", as if it were unset.
_EMPTY_IS_DEFAULT = ("enforce_namespace", "namespace_label")


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field_name, (variable, _flag) in _SOURCES.items():
        raw = environ.get(variable)
        if raw is None:
            continue
        raw = raw.strip()
        if not raw and field_name in _EMPTY_IS_DEFAULT:
            continue
        if field_name in _LISTS:
            values[field_name] = _split(raw)
        elif field_name in _EMPTY_IS_NONE:
            values[field_name] = raw or None
        else:
            values[field_name] = raw
    return values


def load_settings(
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from the environment, then flags (``overrides``, None = not given).

    Raises SettingsError with one line naming the offending variable or flag.
    """
    values = _from_env(environ)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    if isinstance(given.get("namespaces"), Sequence):
        given["namespaces"] = tuple(given["namespaces"])
    if given.get("namespaces") == ():
        del given["namespaces"]  # an empty repeatable flag means "not given"
    if isinstance(given.get("prometheus_allowed_urls"), str):
        given["prometheus_allowed_urls"] = _split(given["prometheus_allowed_urls"])
    values.update(given)
    if isinstance(values.get("log_format"), str):
        values["log_format"] = values["log_format"].lower()
    if isinstance(values.get("log_level"), str):
        values["log_level"] = values["log_level"].upper()
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise SettingsError(_explain(error, given)) from None


def _explain(error: ValidationError, flags_given: Mapping[str, Any]) -> str:
    problems = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:  # a rule across settings: the message names them
            problems.append(message)
            continue
        field_name = str(item["loc"][0])
        variable, flag = _SOURCES.get(field_name, (field_name, field_name))
        source = flag if field_name in flags_given else variable
        problems.append(f"{source}={item.get('input')!r}: {message}")
    return "invalid setting: " + "; ".join(problems)
