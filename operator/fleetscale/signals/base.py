"""The contract every metric backend implements, and the values that cross it.

Role: name a query (``MetricQuery``: which Prometheus, which PromQL) and read many of them for
one scheduled tick (``SignalSource.read``). Implementations classify what they received
(no data, several series, NaN, negative) into ``MetricReading`` problems; they never decide
staleness, because the planner owns the clock. Callers: the controller's reconcile (one read per
tick for all pools), ``fleetscale explain``; implemented by ``signals.prometheus`` and
``signals.fake``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fleetscale.planner.types import MetricReading


@dataclass(frozen=True)
class Refusal:
    """Why the operator will not use a URL or send a query: one short sentence of our own.

    Shown to tenants in conditions and Events, so it never quotes a remote answer; it may
    quote what the tenant wrote (their own URL or PromQL).
    """

    reason: str


@dataclass(frozen=True)
class PrometheusEndpoint:
    """Where and how to reach one Prometheus-compatible HTTP API.

    Hashable, so it can key connection pools and caches. The caller resolves the bearer token
    and CA bundle from Secrets before building it; adapters never read Secrets themselves.
    """

    url: str
    bearer_token: str | None = field(default=None, repr=False)  # never printed in logs
    ca_pem: str | None = field(default=None, repr=False)
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class MetricQuery:
    """One PromQL instant query against one endpoint; equal queries are read once per tick."""

    endpoint: PrometheusEndpoint
    promql: str


class SignalSource(Protocol):
    """Reads instant values of PromQL queries, one backend round-trip per distinct query."""

    async def read(
        self, queries: Collection[MetricQuery], tick: float
    ) -> Mapping[MetricQuery, MetricReading]:
        """Read every query as of the scheduled tick (epoch seconds).

        Reads of the same query for the same tick, also concurrent ones from several pools,
        share one backend call. Never raises for a failed query: the reading carries the
        problem (QueryFailed, NoData, MultipleSeries, NotANumber, NegativeValue) and a detail.
        ``sampled_at`` is the sample's own timestamp, so the planner can judge staleness.
        """
        ...

    async def close(self) -> None:
        """Release connections; the source is not used afterwards."""
        ...
