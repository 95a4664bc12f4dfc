"""A small real HTTP server that answers like Prometheus's ``/api/v1/query``.

Role: let tests exercise the real Prometheus client code (HTTP, JSON, auth, TLS, timeouts)
without a Prometheus binary. It serves instant queries from answers the test sets per PromQL
text, in Prometheus's own JSON shapes (``vector``, ``scalar``, errors with ``errorType``),
records every query it receives, and can require a bearer token and serve TLS with a
self-signed CA made on the fly. Unknown queries answer an empty vector, as Prometheus does for
a metric that does not exist. For the hostile cases it can also misbehave like a server a tenant
points the operator at: redirect elsewhere, drip a body one byte at a time, or stream a huge
body, and it logs what each such answer sent and when the client went away (``streams``).
Callers: tests/signals, tests/security, tests/integration (controller).

Usage::

    async with PrometheusServer() as prometheus:            # or bearer_token=..., tls=make_tls()
        prometheus.set_value("sum(queue)", 12, sampled_at=1_700_000_000)
        ...  # point the code under test at prometheus.url
        assert prometheus.query_count("sum(queue)") == 1

To know that requests are in flight rather than guess it with a delay, ``hold`` a query: its
requests wait until ``release``; ``wait_held(n)`` returns once ``n`` of them are waiting.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import math
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

Labels = Mapping[str, str]


@dataclass(frozen=True)
class RecordedQuery:
    """One request the server received on /api/v1/query."""

    promql: str
    method: str
    params: Mapping[str, str]
    authorization: str | None
    received_at: float  # wall clock, seconds since the epoch
    evaluated_at: float  # the ``time`` parameter, else received_at: unset sample times get it
    client_port: int | None = None  # the same port again means a reused connection


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: Any  # JSON body, or bytes for a non-JSON body
    delay_seconds: float = 0.0


@dataclass
class StreamLog:
    """What one streamed answer (drip or huge body) sent, and when it ended."""

    promql: str
    started_at: float  # time.monotonic()
    ended_at: float | None = None
    bytes_sent: int = 0
    client_gone: bool = False  # the client closed the connection before the body was done

    @property
    def held_seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


_Streamer = Callable[[web.Request, StreamLog], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class TlsMaterial:
    """PEM text of a self-signed CA and of a server certificate it signed for 127.0.0.1."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def make_tls(common_name: str = "fleetscale-test-ca") -> TlsMaterial:
    """A fresh CA and a server certificate for 127.0.0.1/localhost, valid for one day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TlsMaterial(
        ca_pem=ca_cert.public_bytes(pem).decode(),
        cert_pem=server_cert.public_bytes(pem).decode(),
        key_pem=server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def _format_value(value: float) -> str:
    # Prometheus renders special floats this way in JSON strings.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class PrometheusServer:
    """See the module docstring. Bound to 127.0.0.1 on a free port once started."""

    bearer_token: str | None = None
    tls: TlsMaterial | None = None
    requests: list[RecordedQuery] = field(default_factory=list)
    streams: list[StreamLog] = field(default_factory=list)
    # Path and query string of every request, on any route (also the ones that answer 404).
    paths: list[str] = field(default_factory=list)
    _answers: dict[str, _Answer] = field(default_factory=dict)
    _delays: dict[str, float] = field(default_factory=dict)
    _streamers: dict[str, _Streamer] = field(default_factory=dict)
    _redirects: dict[str, str] = field(default_factory=dict)
    _streams_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _held: set[str] = field(default_factory=set)
    _holding: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _hold_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _port: int | None = None

    # ----- answers -----

    def set_value(
        self,
        promql: str,
        value: float,
        sampled_at: float | None = None,
        labels: Labels | None = None,
    ) -> None:
        """Answer a one-series instant vector (``sampled_at`` defaults to the time of the query)."""
        self.set_series(promql, [(labels or {}, value)], sampled_at=sampled_at)

    def set_series(
        self,
        promql: str,
        series: Iterable[tuple[Labels, float]],
        sampled_at: float | None = None,
    ) -> None:
        """Answer an instant vector of any number of series (none: an empty result)."""
        result = [
            {"metric": dict(labels), "value": [sampled_at, _format_value(value)]}
            for labels, value in series
        ]
        self._answers[promql] = _Answer(200, _success("vector", result))

    def set_empty(self, promql: str) -> None:
        """Answer an empty instant vector (no series matched)."""
        self.set_series(promql, [])

    def set_scalar(self, promql: str, value: float, sampled_at: float | None = None) -> None:
        """Answer a scalar, e.g. for ``scalar(...)`` or a number literal."""
        self._answers[promql] = _Answer(200, _success("scalar", [sampled_at, _format_value(value)]))

    def set_matrix(
        self, promql: str, labels: Labels, samples: Iterable[tuple[float, float]]
    ) -> None:
        """Answer a range vector (what an instant query of ``x[5m]`` returns)."""
        values = [[at, _format_value(value)] for at, value in samples]
        self._answers[promql] = _Answer(
            200, _success("matrix", [{"metric": dict(labels), "values": values}])
        )

    def set_error(
        self,
        promql: str,
        *,
        status: int = 400,
        error_type: str = "bad_data",
        error: str = "invalid parameter",
    ) -> None:
        """Answer an API error as Prometheus does (``status: error``, ``errorType``, ``error``)."""
        payload = {"status": "error", "errorType": error_type, "error": error}
        self._answers[promql] = _Answer(status, payload)

    def set_raw(self, promql: str, status: int, body: bytes) -> None:
        """Answer arbitrary bytes, e.g. an HTML error page of a proxy in front of Prometheus."""
        self._answers[promql] = _Answer(status, body)

    def set_redirect(self, promql: str, location: str, status: int = 302) -> None:
        """Answer with a redirect to ``location`` (e.g. another server's query URL)."""
        self._answers[promql] = _Answer(status, b"")
        self._redirects[promql] = location

    def set_drip(
        self, promql: str, *, interval_seconds: float = 0.05, give_up_after_seconds: float = 10.0
    ) -> None:
        """Answer 200 and then one byte every ``interval_seconds``: a body that never ends.

        Each byte arrives well within any per-read socket timeout, so only a total deadline
        stops it. The server stops by itself after ``give_up_after_seconds``.
        """

        async def drip(request: web.Request, log: StreamLog) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            deadline = time.monotonic() + give_up_after_seconds
            while time.monotonic() < deadline:
                await response.write(b" ")
                log.bytes_sent += 1
                await asyncio.sleep(interval_seconds)
            return response

        self._streamers[promql] = drip

    def set_huge_body(
        self, promql: str, total_bytes: int, *, chunk_bytes: int = 1 << 20, declare_length: bool
    ) -> None:
        """Answer 200 with ``total_bytes`` of JSON whitespace, sent as fast as the client reads.

        ``declare_length`` sends a Content-Length header; without it the body is chunked, so
        only counting the bytes read can stop the client.
        """

        async def stream(request: web.Request, log: StreamLog) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            if declare_length:
                response.content_length = total_bytes
            await response.prepare(request)
            chunk = b" " * chunk_bytes
            while log.bytes_sent < total_bytes:
                piece = chunk[: total_bytes - log.bytes_sent]
                await response.write(piece)
                log.bytes_sent += len(piece)
            await response.write_eof()
            return response

        self._streamers[promql] = stream

    async def wait_for_streams_to_start(self, count: int, timeout_seconds: float) -> None:
        """Return once ``count`` streamed answers have started; TimeoutError otherwise."""
        async with asyncio.timeout(timeout_seconds), self._streams_changed:
            await self._streams_changed.wait_for(lambda: len(self.streams) >= count)

    async def wait_for_streams_to_end(self, timeout_seconds: float) -> list[StreamLog]:
        """The stream logs once every started stream has ended (or the timeout passed)."""

        def all_ended() -> bool:
            return all(log.ended_at is not None for log in self.streams)

        try:
            async with asyncio.timeout(timeout_seconds), self._streams_changed:
                await self._streams_changed.wait_for(all_ended)
        except TimeoutError:
            pass  # the caller's assertions on ``ended_at`` tell what is still open
        return list(self.streams)

    def set_delay(self, promql: str, seconds: float) -> None:
        """Wait ``seconds`` before answering ``promql`` (to provoke client timeouts)."""
        self._delays[promql] = seconds

    def hold(self, promql: str) -> None:
        """Keep requests for ``promql`` waiting, unanswered, until :meth:`release`."""
        self._held.add(promql)
        self._released.clear()

    async def wait_held(self, count: int) -> None:
        """Return once ``count`` held requests are waiting at the same time."""
        async with self._hold_changed:
            await self._hold_changed.wait_for(lambda: self._holding >= count)

    def release(self) -> None:
        """Answer every held request, and answer ``promql`` at once from now on."""
        self._held.clear()
        self._released.set()

    def clear(self) -> None:
        """Forget all answers, delays, holds and recorded requests."""
        self._answers.clear()
        self._delays.clear()
        self._streamers.clear()
        self._redirects.clear()
        self.release()
        self.requests.clear()
        self.streams.clear()
        self.paths.clear()

    # ----- what it received -----

    def query_count(self, promql: str | None = None) -> int:
        """How many requests asked ``promql`` (all requests when None)."""
        return sum(1 for r in self.requests if promql is None or r.promql == promql)

    # ----- lifecycle -----

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the server is not started")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_path])
        app.router.add_route("GET", "/api/v1/query", self._handle_query)
        app.router.add_route("POST", "/api/v1/query", self._handle_query)
        app.router.add_route("GET", "/-/ready", self._handle_ready)
        # Short: a test that provoked a slow answer must not wait for it on teardown.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context())
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._port = None

    async def __aenter__(self) -> PrometheusServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads files only; they live just long enough to be loaded.
        with tempfile.TemporaryDirectory() as directory:
            cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert_path.write_text(self.tls.cert_pem)
            key_path.write_text(self.tls.key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context

    # ----- handlers -----

    @web.middleware
    async def _record_path(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        return await handler(request)

    async def _handle_ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    async def _handle_query(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        promql = params.get("query", "")
        authorization = request.headers.get("Authorization")
        received_at = time.time()
        evaluated_at = float(params["time"]) if "time" in params else received_at
        self.requests.append(
            RecordedQuery(
                promql=promql,
                method=request.method,
                params=params,
                authorization=authorization,
                received_at=received_at,
                evaluated_at=evaluated_at,
                client_port=_client_port(request),
            )
        )
        if self.bearer_token is not None and authorization != f"Bearer {self.bearer_token}":
            return web.Response(status=401, text="Unauthorized\n")
        if not promql:
            payload = {"status": "error", "errorType": "bad_data", "error": "query is required"}
            return web.json_response(payload, status=400)
        if promql in self._held:
            async with self._hold_changed:
                self._holding += 1
                self._hold_changed.notify_all()
            try:
                await self._released.wait()
            finally:
                self._holding -= 1
        delay = self._delays.get(promql, 0.0)
        if delay:
            await asyncio.sleep(delay)
        streamer = self._streamers.get(promql)
        if streamer is not None:
            return await self._stream(request, promql, streamer)
        answer = self._answers.get(promql, _Answer(200, _success("vector", [])))
        if promql in self._redirects:
            return web.Response(status=answer.status, headers={"Location": self._redirects[promql]})
        if isinstance(answer.payload, bytes):
            return web.Response(status=answer.status, body=answer.payload)
        return web.json_response(
            _fill_timestamps(answer.payload, evaluated_at), status=answer.status
        )

    async def _stream(
        self, request: web.Request, promql: str, streamer: _Streamer
    ) -> web.StreamResponse:
        log = StreamLog(promql=promql, started_at=time.monotonic())
        self.streams.append(log)
        async with self._streams_changed:
            self._streams_changed.notify_all()
        try:
            return await streamer(request, log)
        except (ConnectionError, asyncio.CancelledError):
            # The client closed the connection: writing to it fails (or the handler is
            # cancelled). Either way the client stopped reading.
            log.client_gone = True
            raise
        finally:
            log.ended_at = time.monotonic()
            async with self._streams_changed:
                self._streams_changed.notify_all()


def _client_port(request: web.Request) -> int | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _success(result_type: str, result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": result_type, "result": result}}


def _fill_timestamps(payload: Any, evaluated_at: float) -> Any:
    """Replace unset (None) sample timestamps with the evaluation time, as Prometheus reports."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return payload
    result = data["result"]
    if data["resultType"] == "scalar":
        result = [evaluated_at if result[0] is None else result[0], result[1]]
    elif data["resultType"] == "vector":
        result = [
            {
                **s,
                "value": [evaluated_at if s["value"][0] is None else s["value"][0], s["value"][1]],
            }
            for s in result
        ]
    return {**payload, "data": {**data, "result": result}}
