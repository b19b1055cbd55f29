"""`CommsClient`: one connection pool, one set of credentials, every route of the API.

    async with CommsClient(base_url=emu.base_url) as client:
        async for sender in client.list_senders(status="ACTIVATED"):
            ...
        operation_id = await client.send(MessageBatch(...))

Failures are raised as the exceptions drawn in `campaign.exceptions`. `send` retries only a
429 (never processed); GETs also retry 5xx, timeouts and dropped connections; every other
call retries only a 429. List methods are async iterators that follow `pagination.next`,
whether the API gives a token or a URL.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import orjson
import yarl

from campaign import __version__
from campaign.api_errors import error_for_response
from campaign.credentials import Credentials, resolve_base_url
from campaign.exceptions import UnexpectedResponseError
from campaign.resources import (
    Message,
    MessageBatch,
    MessageOperation,
    PoolCreation,
    PoolOperation,
    Sender,
    SenderPool,
)
from campaign.responses import Params, next_link, next_page, operation_id_of
from campaign.retries import Retryable, RetryPolicy
from campaign.transport import AiohttpTransport, Request, Response, Transport

__all__ = ["CommsClient"]

T = TypeVar("T")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class CommsClient:
    """The Communications API over one keep-alive session; use it as an async context manager.

    Credentials default to the TWILIO_* environment variables and the base URL to
    $CAMPAIGN_API_BASE_URL or the public preview API; both are checked here, before any I/O.
    `transport` replaces the network (see `campaign.transport`); the client does not close it.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        max_connections: int = 100,
        environ: Mapping[str, str] | None = None,
        pool_wait_s: float = 30.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = resolve_base_url(base_url, environ)
        self.credentials = credentials or Credentials.from_environment(environ)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.pool_wait_s = pool_wait_s
        self._origin = yarl.URL(self.base_url).origin()
        self._given_transport = transport
        self._max_connections = max_connections
        self._owned: AiohttpTransport | None = None
        self._transport: Transport | None = None
        self._state = _State.UNOPENED
        self._secrets = self.credentials.secrets()
        self._headers = {
            "Authorization": self.credentials.authorization(),
            "Accept": "application/json",
            "User-Agent": f"campaign/{__version__}",
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._messages_url = self.url("Messages")

    def __repr__(self) -> str:
        return f"<CommsClient {self._state.value} base_url={self.base_url!r} credentials={self.credentials!r}>"

    async def __aenter__(self) -> Self:
        if self._state is _State.OPEN:
            raise RuntimeError("Cannot open a CommsClient that is already open")
        if self._state is _State.CLOSED:
            raise RuntimeError(
                "Cannot reopen a CommsClient once it has been closed; create a new one"
            )
        if self._given_transport is None:
            self._owned = AiohttpTransport(max_connections=self._max_connections)
            await self._owned.__aenter__()
            self._transport = self._owned
        else:
            self._transport = self._given_transport
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        self._transport = None
        if self._owned is not None:
            owned, self._owned = self._owned, None
            await owned.__aexit__(exc_type, exc, tb)

    # Plumbing

    def url(self, *segments: str) -> str:
        """The absolute URL of a route; each segment (an id, say) is percent-encoded."""
        for segment in segments:
            if not segment or not segment.strip():
                raise ValueError("an id in a request path must not be empty")
        return "/".join([self.base_url, *(quote(s, safe="") for s in segments)])

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        json: Any = None,
        retryable: Retryable = Retryable.RATE_LIMITS,
    ) -> Response:
        """One call with retries as `retryable` allows; a 2xx answer, or the error raised."""
        headers = self._headers
        body = None
        if json is not None:
            headers = self._json_headers
            body = orjson.dumps(json)
        request = Request(method, url, tuple(params), headers, body, self.timeout_s)
        return await self._call(request, retryable)

    async def _call(self, request: Request, retryable: Retryable) -> Response:
        transport = self._transport
        if transport is None:
            if self._state is _State.CLOSED:
                raise RuntimeError("Cannot send a request: this CommsClient has been closed")
            raise RuntimeError("Open the CommsClient with `async with` before calling it")
        if retryable is Retryable.NEVER:
            return await self._attempt(transport, request)
        return await self.retry.run(lambda: self._attempt(transport, request), retryable)

    async def _attempt(self, transport: Transport, request: Request) -> Response:
        response = await transport.handle(request)
        if 200 <= response.status < 300:
            return response
        raise error_for_response(
            response.status,
            response.body,
            retry_after=response.header("Retry-After"),
            method=request.method,
            url=request.url,
            secrets=self._secrets,
        )

    async def _json(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        json: Any = None,
        retryable: Retryable = Retryable.RATE_LIMITS,
    ) -> Any:
        response = await self.request(method, url, params=params, json=json, retryable=retryable)
        try:
            return orjson.loads(response.body)
        except orjson.JSONDecodeError:
            raise UnexpectedResponseError(
                "the API answered with a body that is not JSON",
                status=response.status,
                method=method,
                url=url,
            ) from None

    async def _get(self, url: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        return await self._json("GET", url, params=params, retryable=Retryable.ANY_TRANSIENT)

    async def _pages(self, url: str, key: str, params: Params) -> AsyncIterator[Any]:
        """Every item under `key` of a list route, page after page."""
        first_url, query, seen = url, params, set[str]()
        while True:
            data = await self._get(url, query)
            items = data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise UnexpectedResponseError(
                    f"the list answer has no {key!r} array", status=200, method="GET", url=url
                )
            for item in items:
                yield item
            link = next_link(data)
            if link is None or link in seen:
                return
            seen.add(link)
            url, query = next_page(
                link, first_url=first_url, params=params, origin=self._origin, current=url
            )

    def _operation_id(self, response: Response, method: str, url: str) -> str:
        """The operation id of a 202, or UnexpectedResponseError: it was accepted, but as what?"""
        operation_id = operation_id_of(response)
        if operation_id is None:
            raise UnexpectedResponseError(
                "the API accepted the request but named no operation id in its body or headers",
                status=response.status,
                method=method,
                url=url,
            )
        return operation_id

    async def _poll(self, fetch: Callable[[], Awaitable[T]], ready: Callable[[T], bool]) -> T:
        """`fetch()` until `ready(result)`, within `pool_wait_s` of waiting; the last result."""
        waited_s, wait_s = 0.0, 0.25
        while True:
            result = await fetch()
            if ready(result) or waited_s >= self.pool_wait_s:
                return result
            wait_s = min(wait_s, self.pool_wait_s - waited_s)
            await self.retry.sleep(wait_s)
            waited_s += wait_s
            wait_s *= 2

    # Senders

    def list_senders(
        self, *, status: str | None = None, channel: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Sender]:
        """The account's senders, optionally only ACTIVATED/DEACTIVATED ones of one channel."""
        return self._senders(self.url("Senders"), status, channel, page_size)

    async def fetch_sender(self, sender_id: str) -> Sender:
        return Sender.from_json(await self._get(self.url("Senders", sender_id)))

    async def _senders(
        self, url: str, status: str | None, channel: str | None, page_size: int | None
    ) -> AsyncIterator[Sender]:
        params = _params(status=status, channel=channel, pageSize=page_size)
        async for raw in self._pages(url, "senders", params):
            yield Sender.from_json(raw)

    # Sender pools

    async def list_pools(
        self, *, operation_id: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[SenderPool]:
        params = _params(operationId=operation_id, pageSize=page_size)
        async for raw in self._pages(self.url("SenderPools"), "senderPools", params):
            yield SenderPool.from_json(raw)

    async def create_pool(
        self, name: str, *, tags: Mapping[str, str] | None = None, sender_ids: Iterable[str] = ()
    ) -> PoolCreation:
        """Create a pool, wait for its operation, and find the new pool through it."""
        body: dict[str, Any] = {"name": name}
        if tags:
            body["tags"] = dict(tags)
        senders = [{"senderId": s} for s in sender_ids]
        if senders:
            body["senders"] = senders
        url = self.url("SenderPools")
        response = await self.request("POST", url, json=body)
        operation_id = self._operation_id(response, "POST", url)
        operation = await self._settle(operation_id)

        async def find() -> list[SenderPool]:
            return [pool async for pool in self.list_pools(operation_id=operation_id)]

        found = await self._poll(find, bool)
        if not found:
            raise UnexpectedResponseError(
                f"the API accepted the new pool (operation {operation_id}) but does not list it",
                status=200,
                method="GET",
                url=url,
            )
        return PoolCreation(found[0], operation)

    async def fetch_pool(self, pool_id: str) -> SenderPool:
        return SenderPool.from_json(await self._get(self.url("SenderPools", pool_id)))

    async def update_pool(
        self, pool_id: str, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> SenderPool:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = dict(tags)
        if not body:
            raise ValueError("update_pool needs a name or tags")
        url = self.url("SenderPools", pool_id)
        return SenderPool.from_json(await self._json("PATCH", url, json=body))

    async def delete_pool(self, pool_id: str) -> None:
        await self.request("DELETE", self.url("SenderPools", pool_id))

    def list_pool_senders(
        self,
        pool_id: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Sender]:
        return self._senders(
            self.url("SenderPools", pool_id, "Senders"), status, channel, page_size
        )

    async def add_pool_senders(self, pool_id: str, sender_ids: Iterable[str]) -> PoolOperation:
        """Add senders and wait for the operation; its `failed` count says how many were refused."""
        body = [{"senderId": s} for s in sender_ids]
        if not body:
            raise ValueError("add_pool_senders needs at least one sender id")
        url = self.url("SenderPools", pool_id, "Senders")
        response = await self.request("POST", url, json=body)
        return await self._settle(self._operation_id(response, "POST", url))

    async def remove_pool_sender(self, pool_id: str, sender_id: str) -> None:
        await self.request("DELETE", self.url("SenderPools", pool_id, "Senders", sender_id))

    async def fetch_pool_operation(self, operation_id: str) -> PoolOperation:
        url = self.url("SenderPools", "Operations", operation_id)
        return PoolOperation.from_json(await self._get(url))

    async def list_pool_operations(
        self, *, page_size: int | None = None
    ) -> AsyncIterator[PoolOperation]:
        params = _params(pageSize=page_size)
        async for raw in self._pages(self.url("SenderPools", "Operations"), "operations", params):
            yield PoolOperation.from_json(raw)

    async def _settle(self, operation_id: str) -> PoolOperation:
        return await self._poll(lambda: self.fetch_pool_operation(operation_id), lambda op: op.done)

    # Messages

    async def send(
        self, batch: MessageBatch, *, retryable: Retryable = Retryable.RATE_LIMITS
    ) -> str:
        """POST /Messages; the operation id. Only a 429 is retried: anything else may have sent.

        `retryable=Retryable.NEVER` leaves even a 429 to the caller."""
        return await self.send_json(orjson.dumps(batch.to_json()), retryable=retryable)

    async def send_json(self, body: bytes, *, retryable: Retryable = Retryable.RATE_LIMITS) -> str:
        """`send` for a body already serialised: what `MessageBatch.to_json()` gives, as JSON.

        The engine builds its bodies so, in one step, at up to thousands of requests a second.
        """
        url = self._messages_url
        request = Request("POST", url, (), self._json_headers, body, self.timeout_s)
        return self._operation_id(await self._call(request, retryable), "POST", url)

    async def list_messages(
        self,
        *,
        operation_id: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        status: str | None = None,
        channel: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Message]:
        params = _params(
            operationId=operation_id,
            startDate=start_date,
            endDate=end_date,
            status=status,
            channel=channel,
            pageSize=page_size,
        )
        async for raw in self._pages(self.url("Messages"), "messages", params):
            yield Message.from_json(raw)

    async def fetch_message(self, message_id: str) -> Message:
        return Message.from_json(await self._get(self.url("Messages", message_id)))

    async def fetch_operation(self, operation_id: str) -> MessageOperation:
        url = self.url("Messages", "Operations", operation_id)
        return MessageOperation.from_json(await self._get(url))

    async def list_operations(
        self, *, page_size: int | None = None
    ) -> AsyncIterator[MessageOperation]:
        params = _params(pageSize=page_size)
        async for raw in self._pages(self.url("Messages", "Operations"), "operations", params):
            yield MessageOperation.from_json(raw)


def _params(**values: str | int | None) -> Params:
    """Query parameters without the unset ones; status and channel filters in upper case."""
    params: Params = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        params.append((key, text.upper() if key in ("status", "channel") else text))
    return params
