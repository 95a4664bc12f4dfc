"""Which Prometheus base URLs the operator may query: parse, normalize, check an allow-list.

Role: a pool's ``spec.metrics.prometheus.url`` is written by a tenant, and the operator's pod
sends requests to it. These pure functions decide whether a URL is a plain base URL of a
Prometheus HTTP API (scheme, host, optional port and path prefix, nothing else) and whether it
is one the platform allowed. Everything that could change where the request goes or what it
asks once ``/api/v1/query`` is appended is refused, never repaired: a fragment or a query
string (they neutralise the suffix), credentials in the URL, dot segments, percent-encoding,
backslashes and whitespace (parsers disagree on them). Allowed URLs are compared exactly, after
normalization (lower-case scheme and host, no default port, no trailing slash), never as
prefixes. Callers: ``settings`` (validates the configured URLs), the controller (a pool's URL),
``signals.prometheus`` (checks again before every request).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from urllib.parse import urlsplit

from fleetscale.signals.base import Refusal

# The allow-list entry that admits any URL that passes normalization (single-tenant clusters).
ANY_URL = "*"

_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 1123 host names: dot-separated labels of letters, digits and hyphens.
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]*")
_MAX_URL_CHARS = 2048


def normalize_base_url(url: str) -> str | Refusal:
    """The canonical form of a Prometheus base URL, or why it is not one.

    ``HTTP://Prom.Monitoring:9090/`` -> ``http://prom.monitoring:9090``;
    ``https://thanos:443/prefix/`` -> ``https://thanos/prefix``.
    """
    if len(url) > _MAX_URL_CHARS:
        return Refusal(f"the URL is longer than {_MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return Refusal("the URL contains whitespace or control characters")
    if "\\" in url:
        return Refusal("the URL contains a backslash")
    if "#" in url:
        return Refusal("the URL has a fragment (#); give the base URL only")
    if "?" in url:
        return Refusal("the URL has a query string (?); give the base URL only")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return Refusal("the URL must start with http or https")
    if "@" in parts.netloc:
        return Refusal("the URL must not carry credentials (user@); use a bearer token Secret")
    host = _normal_host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    if isinstance(host, Refusal):
        return host
    try:
        port = parts.port
    except ValueError:
        return Refusal("the URL has an invalid port")
    if parts.netloc.endswith(":") or (port is not None and port == 0):
        return Refusal("the URL has an invalid port")
    path = _normal_path(parts.path)
    if isinstance(path, Refusal):
        return path
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{authority}{path}"


def allowed_base_url(url: str, allowed: Collection[str]) -> str | Refusal:
    """The normalized URL if it is on the allow-list (normalized entries, or ``ANY_URL``)."""
    normalized = normalize_base_url(url)
    if isinstance(normalized, Refusal):
        return normalized
    if ANY_URL in allowed or normalized in allowed:
        return normalized
    return Refusal(
        f"{normalized} is not an allowed Prometheus URL "
        "(FLEETSCALE_PROMETHEUS_ALLOWED_URLS lists them)"
    )


def _normal_host(host: str, *, bracketed: bool) -> str | Refusal:
    # urlsplit lower-cases hostname and strips the brackets of an IPv6 literal.
    if not host:
        return Refusal("the URL has no host")
    if bracketed:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return Refusal("the URL has an invalid IPv6 address")
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return Refusal("the URL's host is not a valid DNS name or IP address")
    return ".".join(labels)


def _normal_path(path: str) -> str | Refusal:
    if "%" in path:
        return Refusal("the URL's path contains percent-encoded characters")
    segments = [segment for segment in path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        return Refusal("the URL's path contains dot segments (. or ..)")
    if not all(_PATH_SEGMENT.fullmatch(segment) for segment in segments):
        return Refusal("the URL's path contains characters that are not allowed")
    return "".join(f"/{segment}" for segment in segments)
