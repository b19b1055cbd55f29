"""A small HTTP/1.1 server for the emulator, on a plain asyncio.Protocol.

Why not aiohttp.web: the emulator must be cheap enough that benchmarks measure the client,
not the emulator. aiohttp.web's per-request machinery costs several times what the
emulator's own work on a one-recipient request does; a protocol that parses the request
head with one `split` and writes the answer with one `write` removes most of it.

What it speaks: HTTP/1.1 keep-alive and pipelining (answers go out in request order),
HTTP/1.0, `Content-Length` and `chunked` request bodies, `Expect: 100-continue`, and a
body-size limit answered with 413 after the body is read and dropped. Handlers are plain
functions from a `Request` to a `Response`; the `Dispatcher` given to the protocol decides
what runs and whether a request waits (latency) or loses its connection (faults).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, unquote

from yarl import URL

__all__ = [
    "DROP",
    "Dispatcher",
    "Handler",
    "HttpProtocol",
    "PendingRequest",
    "Request",
    "Resolved",
    "Response",
    "Router",
]

_REASONS = {
    100: "Continue",
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class Request:
    """One request, its body already read."""

    method: str
    target: str  # path and query as sent
    path: str
    query_string: str
    headers: dict[str, str]  # names in lower case
    host: str
    body: bytes = b""
    match_info: dict[str, str] = field(default_factory=dict)
    _query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the first value wins when a name repeats."""
        if self._query is None:
            query: dict[str, str] = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query

    @property
    def url(self) -> URL:
        return URL.build(
            scheme="http", authority=self.host, path=self.path, query_string=self.query_string
        )


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    content_type: str = "application/json"

    def encode(self, *, close: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}"]
        if self.status != 204:
            lines.append(f"Content-Type: {self.content_type}")
            lines.append(f"Content-Length: {len(self.body)}")
        if self.headers:
            lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        if close:
            lines.append("Connection: close")
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + self.body


DROP = Response(0)  # a dispatcher's way of saying: close the connection, answer nothing


@dataclass(slots=True, eq=False)
class PendingRequest:
    """A request whose head has arrived; the dispatcher may hold state on it meanwhile."""

    request: Request
    close_after: bool
    body_left: int  # bytes of a Content-Length body still to come; -1 for chunked
    too_large: bool = False
    state: object = None  # the dispatcher's, e.g. whether it counted the request in
    ready: bool = False
    chunks: list[bytes] = field(default_factory=list)


class Dispatcher(Protocol):
    """What the protocol asks of the application."""

    max_body_bytes: int

    def on_head(self, pending: PendingRequest) -> None:
        """The head is in (the body may not be): a place to count the request as in flight."""

    def delay_s(self, pending: PendingRequest) -> float:
        """How long to hold the request before answering it."""

    def answer(self, pending: PendingRequest) -> Response:
        """The answer, or DROP; must not raise."""

    def too_large(self, pending: PendingRequest) -> Response:
        """The answer to a body over max_body_bytes."""

    def bad_request(self, why: str) -> Response:
        """The answer to a request that is not HTTP as this server speaks it."""

    def abandon(self, pending: PendingRequest) -> None:
        """The connection closed before this request was answered."""


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests as bytes arrive, answer them in order."""

    def __init__(self, dispatcher: Dispatcher, connections: set[HttpProtocol]) -> None:
        self._dispatcher = dispatcher
        self._connections = connections
        self._buffer = bytearray()
        self._requests: deque[PendingRequest] = deque()
        self._reading: PendingRequest | None = None  # the one whose body is arriving
        self._waiting: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._local_host = "127.0.0.1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP only
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        if sockname:
            self._local_host = f"{sockname[0]}:{sockname[1]}"
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - asyncio's signature
        self._connections.discard(self)
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        # Requests that never get an answer still leave the dispatcher's books straight.
        for pending in self._requests:
            self._dispatcher.abandon(pending)
        self._requests.clear()
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except _BadRequest as exc:
            self._fail(str(exc))
            return
        self._answer_ready()

    # Parsing

    def _parse(self) -> None:
        buffer = self._buffer
        while buffer:
            if self._reading is not None:
                if not self._read_body(self._reading):
                    return
                continue
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD_BYTES:
                    raise _BadRequest("request head too large")
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._start_request(head)

    def _start_request(self, head: bytes) -> None:
        try:
            text = head.decode("latin-1")
            request_line, *header_lines = text.split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError:
            raise _BadRequest("malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise _BadRequest("only HTTP/1.x is spoken here")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest("malformed header line")
            headers[name.lower()] = value.strip()
        path, _, query_string = target.partition("?")
        request = Request(
            method=method,
            target=target,
            path=unquote(path),
            query_string=query_string,
            headers=headers,
            host=headers.get("host") or self._local_host,
        )
        connection = headers.get("connection", "").lower()
        close_after = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive"
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body_left = -1
        else:
            length = headers.get("content-length", "0")
            if not length.isdigit():
                raise _BadRequest("Content-Length is not a whole number")
            body_left = int(length)
        pending = PendingRequest(request, close_after, body_left)
        pending.too_large = body_left > self._dispatcher.max_body_bytes
        self._requests.append(pending)
        self._dispatcher.on_head(pending)
        if body_left == 0:
            pending.ready = True
            return
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._reading = pending

    def _read_body(self, pending: PendingRequest) -> bool:
        """Take what body bytes there are; True when the body is complete."""
        buffer = self._buffer
        if pending.body_left >= 0:
            take = min(pending.body_left, len(buffer))
            if not pending.too_large:
                pending.chunks.append(bytes(buffer[:take]))
            del buffer[:take]
            pending.body_left -= take
            if pending.body_left:
                return False
        elif not self._read_chunks(pending):
            return False
        pending.request.body = b"".join(pending.chunks)
        pending.chunks.clear()
        pending.ready = True
        self._reading = None
        return True

    def _read_chunks(self, pending: PendingRequest) -> bool:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if size == 0:
                # The last chunk: optional trailer lines, then an empty line.
                end = buffer.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return False
                del buffer[: end + 4]
                return True
            if len(buffer) < line_end + 2 + size + 2:
                return False
            start = line_end + 2
            received = sum(len(c) for c in pending.chunks) + size
            if received > self._dispatcher.max_body_bytes:
                pending.too_large = True
                pending.chunks.clear()
            if not pending.too_large:
                pending.chunks.append(bytes(buffer[start : start + size]))
            del buffer[: start + size + 2]

    # Answering

    def _answer_ready(self) -> None:
        """Answer waiting requests in order, pausing at one that must be held a while."""
        dispatcher = self._dispatcher
        while self._requests and self._waiting is None and self._transport is not None:
            pending = self._requests[0]
            if not pending.ready:
                return
            if pending.too_large:
                self._requests.popleft()
                self._send(dispatcher.too_large(pending), pending.close_after)
                continue
            delay = dispatcher.delay_s(pending)
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._waiting = loop.call_later(delay, self._resume)
                return
            self._requests.popleft()
            self._send(dispatcher.answer(pending), pending.close_after)

    def _resume(self) -> None:
        self._waiting = None
        if not self._requests or self._transport is None:
            return
        pending = self._requests.popleft()
        self._send(self._dispatcher.answer(pending), pending.close_after)
        self._answer_ready()

    def _send(self, response: Response, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        if response is DROP:
            transport.abort()
            return
        transport.write(response.encode(close=close))
        if close:
            transport.close()
            self._transport = None

    def _fail(self, why: str) -> None:
        if self._transport is not None:
            self._transport.write(self._dispatcher.bad_request(why).encode(close=True))
            self._transport.close()
            self._transport = None


class _BadRequest(Exception):
    pass


Handler = Callable[[Request], Response]
Resolved = tuple[str, Handler, dict[str, str]]


class Router:
    """Routes by method and path template (`/Messages/{message_id}`), fixed paths first."""

    def __init__(self) -> None:
        self._fixed: dict[str, dict[str, tuple[str, Handler]]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, tuple[str, Handler]]]] = []

    def add(self, method: str, template: str, handler: Handler, *, name: str) -> None:
        """Serve `template`; `name` is what stats call the route (e.g. "POST /Messages")."""
        if "{" not in template:
            self._fixed.setdefault(template, {})[method] = (name, handler)
            return
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        for pattern, methods in self._patterns:
            if pattern.pattern == f"^{regex}$":
                methods[method] = (name, handler)
                return
        self._patterns.append((re.compile(f"^{regex}$"), {method: (name, handler)}))

    def resolve(self, method: str, path: str) -> Resolved | list[str] | None:
        """(route name, handler, path parameters); the allowed methods when only the method
        is wrong; None when no route has this path."""
        methods = self._fixed.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidates in self._patterns:
                match = pattern.match(path)
                if match is not None:
                    methods, params = candidates, match.groupdict()
                    break
            else:
                return None
        found = methods.get(method)
        if found is None:
            return sorted(methods)
        return found[0], found[1], params
