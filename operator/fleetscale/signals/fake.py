"""An in-memory ``SignalSource`` for tests and the simulator-free demos of the controller.

Role: answer reads from values and problems set by the test, record every read, and inject
failures, while keeping the two promises the controller relies on: one answer per distinct
query per tick (a second read of the same query and tick returns the first answer, also after
the value was changed), and never raising for a failed query. Values are keyed by PromQL text
only (the endpoint does not matter to a fake). Callers: controller unit tests.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from fleetscale.planner.types import MetricProblem, MetricReading
from fleetscale.signals.base import MetricQuery


@dataclass(frozen=True)
class RecordedRead:
    """One call of ``read``: the tick and the queries asked, in the caller's order."""

    tick: float
    queries: tuple[MetricQuery, ...]


@dataclass
class FakeSignalSource:
    """Answers PromQL queries from memory; see the module docstring."""

    calls: list[RecordedRead] = field(default_factory=list)
    # (promql, tick) pairs that were actually "sent to the backend", in order.
    backend_queries: list[tuple[str, float]] = field(default_factory=list)
    closed: bool = False
    _readings: dict[str, MetricReading] = field(default_factory=dict)
    _answered: dict[tuple[MetricQuery, float], MetricReading] = field(default_factory=dict)
    _fail_next: dict[str | None, list[str]] = field(default_factory=dict)
    _fail_always: dict[str | None, str] = field(default_factory=dict)

    def set_value(self, promql: str, value: float, sampled_at: float) -> None:
        """From now on, ``promql`` reads as ``value`` sampled at ``sampled_at``."""
        self._readings[promql] = MetricReading.ok(value, sampled_at)

    def set_problem(self, promql: str, problem: MetricProblem, detail: str = "") -> None:
        """From now on, ``promql`` reads as failed with ``problem``."""
        self._readings[promql] = MetricReading.failed(problem, detail or problem.value)

    def fail_next(self, promql: str | None = None, *, detail: str = "injected failure") -> None:
        """The next backend read of ``promql`` (of any query when None) fails (QueryFailed)."""
        self._fail_next.setdefault(promql, []).append(detail)

    def fail_always(self, promql: str | None = None, *, detail: str = "injected failure") -> None:
        """Every backend read of ``promql`` (of any query when None) fails until ``recover``."""
        self._fail_always[promql] = detail

    def recover(self, promql: str | None = None) -> None:
        """Undo ``fail_always`` and pending ``fail_next`` for ``promql`` (None: the catch-all)."""
        self._fail_always.pop(promql, None)
        self._fail_next.pop(promql, None)

    async def read(
        self, queries: Collection[MetricQuery], tick: float
    ) -> Mapping[MetricQuery, MetricReading]:
        if self.closed:
            raise RuntimeError("the signal source is closed")
        self.calls.append(RecordedRead(tick=tick, queries=tuple(queries)))
        answers: dict[MetricQuery, MetricReading] = {}
        for query in queries:
            key = (query, tick)
            if key not in self._answered:
                self._answered[key] = self._backend_read(query.promql, tick)
            answers[query] = self._answered[key]
        return answers

    def _backend_read(self, promql: str, tick: float) -> MetricReading:
        self.backend_queries.append((promql, tick))
        for selector in (promql, None):
            pending = self._fail_next.get(selector)
            if pending:
                return MetricReading.failed(MetricProblem.QUERY_FAILED, pending.pop(0))
            if selector in self._fail_always:
                return MetricReading.failed(MetricProblem.QUERY_FAILED, self._fail_always[selector])
        return self._readings.get(
            promql, MetricReading.failed(MetricProblem.NO_DATA, "the query returned no series")
        )

    def backend_reads_of(self, promql: str) -> int:
        """How many times ``promql`` reached the "backend" (once per tick at most)."""
        return sum(1 for sent, _ in self.backend_queries if sent == promql)

    async def close(self) -> None:
        self.closed = True
