"""Retry policy of the Kubernetes adapters: what is retried, and how long it waits (loop time)."""

from __future__ import annotations

import asyncio

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from fleetscale.actuators.rest import RetryPolicy, describe, is_transient, with_retries

POLICY = RetryPolicy(attempts=4, first_backoff_seconds=0.5, max_backoff_seconds=1.5)


def api_error(status: int, body: str = "") -> ApiException:
    return ApiException(status=status, reason="Reason", body=body)


class Flaky:
    """Fails with the given errors, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.looptime
async def test_transient_failures_back_off_doubling_up_to_the_cap() -> None:
    attempt = Flaky(api_error(503), api_error(429), urllib3.exceptions.ProtocolError("reset"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await with_retries(attempt, POLICY) == "ok"
    assert attempt.calls == 4
    assert loop.time() - started == pytest.approx(0.5 + 1.0 + 1.5)


@pytest.mark.looptime
async def test_permanent_failures_are_raised_at_once() -> None:
    attempt = Flaky(api_error(403))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ApiException):
        await with_retries(attempt, POLICY)
    assert attempt.calls == 1
    assert loop.time() == started


@pytest.mark.looptime
async def test_transient_failures_give_up_after_the_attempts() -> None:
    attempt = Flaky(*[api_error(500) for _ in range(10)])
    with pytest.raises(ApiException):
        await with_retries(attempt, POLICY)
    assert attempt.calls == POLICY.attempts


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(api_error(429), True, id="throttled"),
        pytest.param(api_error(500), True, id="internal"),
        pytest.param(api_error(503), True, id="unavailable"),
        pytest.param(api_error(504), True, id="gateway-timeout"),
        pytest.param(urllib3.exceptions.NewConnectionError(None, "refused"), True, id="refused"),  # type: ignore[arg-type]
        pytest.param(ConnectionResetError(), True, id="reset"),
        pytest.param(api_error(400), False, id="bad-request"),
        pytest.param(api_error(403), False, id="forbidden"),
        pytest.param(api_error(404), False, id="not-found"),
        pytest.param(api_error(409), False, id="conflict-is-the-callers-business"),
        pytest.param(api_error(422), False, id="invalid"),
        pytest.param(ValueError("bug"), False, id="not-an-api-error"),
    ],
)
def test_is_transient(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            api_error(403, '{"kind": "Status", "message": "deployments.apps is forbidden"}'),
            "HTTP 403 Reason: deployments.apps is forbidden",
            id="status-message",
        ),
        pytest.param(
            api_error(502, "<html>bad gateway</html>"),
            "HTTP 502 Reason: <html>bad gateway</html>",
            id="not-json",
        ),
        pytest.param(api_error(500), "HTTP 500 Reason", id="no-body"),
        pytest.param(
            ConnectionResetError("peer reset"), "ConnectionResetError: peer reset", id="network"
        ),
    ],
)
def test_describe(exc: Exception, expected: str) -> None:
    assert describe(exc) == expected
