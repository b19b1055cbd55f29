"""The seam between `CommsClient` and the network: one request in, one answer (or error) out.

`AiohttpTransport` is the real one. `MockTransport` hands each request to a function, so
the engine's tests can script the API without a socket. A transport reports a request
that got no answer with the exception that says whether it could have been processed:
`UnreachableError` (never sent), `RequestTimeoutError` or `ConnectionLostError` (maybe).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import aiohttp
import anyio
import yarl

from campaign.exceptions import ConnectionLostError, RequestTimeoutError, UnreachableError

__all__ = ["AiohttpTransport", "MockTransport", "Request", "Response", "Transport"]

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, fully resolved: `url` is absolute and already percent-encoded."""

    method: str
    url: str
    params: Params = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer, read in full."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of its name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class Transport(Protocol):
    """Sends one request and returns its answer; raises for no answer (see the module doc)."""

    async def handle(self, request: Request) -> Response: ...


class AiohttpTransport:
    """The real network: one `aiohttp.ClientSession` with keep-alive connection pooling.

    Create it inside the running event loop (`async with AiohttpTransport() as t`).
    """

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        state = "open" if self._session is not None and not self._session.closed else "closed"
        return f"<AiohttpTransport {state} max_connections={self._max_connections}>"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            # The client sets Authorization itself, and answers are read as bytes.
            auto_decompress=True,
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: Request) -> Response:
        if self._session is None:
            raise RuntimeError("AiohttpTransport must be entered with `async with` before use")
        url = self._url(request.url)
        method = request.method
        try:
            async with self._session.request(
                method,
                url,
                params=list(request.params) or None,
                headers=request.headers,
                data=request.body,
                timeout=self._timeout(request.timeout_s),
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
                # The headers as aiohttp parsed them (a read-only, case-blind mapping): a
                # copy per answer costs more than the rest of reading a 202.
                return Response(answer.status, answer.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _failure(exc, method, str(url.with_query(None)), request.timeout_s)
            if failure is None:
                raise
            raise failure from None

    def _url(self, text: str) -> yarl.URL:
        # Parsing a URL costs more than the rest of a request's own work here: a run sends
        # to one or two URLs, so each is parsed once (bounded, for long-lived clients).
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= 256:
                self._urls.clear()
            url = self._urls[text] = yarl.URL(text, encoded=True)
        return url

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=seconds, sock_connect=min(seconds, 10.0)
            )
        return timeout


def _failure(exc: BaseException, method: str, where: str, timeout_s: float) -> Exception | None:
    """The campaign error for what aiohttp raised; None for anything it does not explain."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UnreachableError(
            f"no connection within {min(timeout_s, 10.0):g} s", method=method, url=where
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UnreachableError(_connect_failure(exc), method=method, url=where)
    if isinstance(exc, TimeoutError):
        return RequestTimeoutError(f"no answer within {timeout_s:g} s", method=method, url=where)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return ConnectionLostError(
            f"the connection was lost before the answer came ({type(exc).__name__})",
            method=method,
            url=where,
        )
    return None


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve the host name {exc.host}"
    error = exc.os_error
    if isinstance(error, ConnectionRefusedError) or "refused" in str(error).lower():
        return f"connection refused by {exc.host}:{exc.port}"
    return f"{exc.host}:{exc.port}: {error.strerror or error}"


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """A transport that answers every request with `handler(request)` (sync or async)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    def __repr__(self) -> str:
        return f"<MockTransport requests={len(self.requests)}>"

    async def handle(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        await anyio.lowlevel.checkpoint()  # a real request always yields to the loop
        return answer
