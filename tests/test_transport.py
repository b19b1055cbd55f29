"""The transport seam: real sockets that misbehave, and the mock the engine's tests will use."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from campaign.exceptions import ConnectionLostError, RequestTimeoutError, UnreachableError
from campaign.transport import AiohttpTransport, MockTransport, Request, Response


@asynccontextmanager
async def raw_server(close_after_request: bool) -> AsyncIterator[str]:
    """A TCP server that reads a request, then either hangs up or never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        if close_after_request:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/preview/Messages"
    finally:
        for writer in writers:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_unreachable() -> None:
    """Nobody listening: UnreachableError, which means nothing was sent."""
    url = f"http://127.0.0.1:{closed_port()}/preview/Senders"
    async with AiohttpTransport() as transport:
        with pytest.raises(UnreachableError, match="connection refused") as caught:
            await transport.handle(Request("GET", url))
    assert caught.value.url == url


async def test_a_silent_server_times_out() -> None:
    """A server that never answers gives RequestTimeoutError after timeout_s."""
    async with raw_server(close_after_request=False) as url, AiohttpTransport() as transport:
        with pytest.raises(RequestTimeoutError, match=r"no answer within 0\.05 s"):
            await transport.handle(Request("POST", url, body=b"{}", timeout_s=0.05))


async def test_a_hang_up_after_the_request_is_a_lost_connection() -> None:
    """A connection closed after the request went out gives ConnectionLostError."""
    async with raw_server(close_after_request=True) as url, AiohttpTransport() as transport:
        with pytest.raises(ConnectionLostError, match="connection was lost"):
            await transport.handle(Request("POST", url, body=b"{}"))


async def test_the_transport_must_be_entered_first() -> None:
    """Using the transport outside `async with` is a RuntimeError, not a crash in aiohttp."""
    with pytest.raises(RuntimeError, match="async with"):
        await AiohttpTransport().handle(Request("GET", "http://127.0.0.1:1/"))


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_mock_transport_answers_with_its_handler(asynchronous: bool) -> None:
    """The mock records each request and answers with a sync or async handler."""

    def answer(request: Request) -> Response:
        return Response(200, {"X-Seen": request.method}, b"{}")

    async def answer_later(request: Request) -> Response:
        return answer(request)

    transport = MockTransport(answer_later if asynchronous else answer)
    response = await transport.handle(Request("GET", "https://x/Senders"))
    assert response.header("x-seen") == "GET"
    assert [r.url for r in transport.requests] == ["https://x/Senders"]


def test_header_lookup_ignores_case() -> None:
    """Response.header finds a header whatever the case, and None when it is absent."""
    response = Response(202, {"Location": "https://x/Operations/1"})
    assert response.header("location") == "https://x/Operations/1"
    assert response.header("operationId") is None
