"""The Communications API's routes, served under both `/preview` and `/v1`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from campaign.emulator.delivery import operation_stats
from campaign.emulator.errors import ApiError
from campaign.emulator.faults import FaultInjector
from campaign.emulator.model import MessageOperation, MessageStatus, PoolOperation, iso
from campaign.emulator.pagination import Page, page_of
from campaign.emulator.store import Store
from campaign.emulator.validation import validate_send

__all__ = ["PREFIXES", "EmulatorContext", "add_api_routes", "json_response"]

PREFIXES = ("/preview", "/v1")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class EmulatorContext:
    store: Store
    faults: FaultInjector
    next_as_token: bool = False


CONTEXT = web.AppKey("emulator", EmulatorContext)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _ctx(request: web.Request) -> EmulatorContext:
    return request.app[CONTEXT]


def _base_url(request: web.Request) -> str:
    prefix = "/" + request.path.split("/", 2)[1]
    return f"{request.scheme}://{request.host}{prefix}"


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError.invalid("The request body is not valid JSON") from None


def _page(request: web.Request, key: str, items: list[Any], page: Page) -> web.Response:
    chunk = items[page.start : page.start + page.size]
    next_start = page.start + page.size if page.start + page.size < len(items) else None
    return json_response(
        page.body(request, key, chunk, next_start, next_as_token=_ctx(request).next_as_token)
    )


def _filter(request: web.Request, name: str, allowed: Iterable[str]) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    allowed = tuple(allowed)
    if value.upper() not in allowed:
        raise ApiError.invalid(f"{name} must be one of {', '.join(allowed)}")
    return value.upper()


# Senders


async def list_senders(request: web.Request) -> web.Response:
    page = page_of(request)
    status = _filter(request, "status", ("ACTIVATED", "DEACTIVATED"))
    channel = _filter(request, "channel", ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH"))
    senders = [
        s.to_json()
        for s in _ctx(request).store.senders.values()
        if (status is None or s.status == status) and (channel is None or s.channel == channel)
    ]
    return _page(request, "senders", senders, page)


async def fetch_sender(request: web.Request) -> web.Response:
    return json_response(_ctx(request).store.sender(request.match_info["sender_id"]).to_json())


# Sender pools


def _pool_operation_accepted(request: web.Request, op: PoolOperation) -> web.Response:
    location = f"{_base_url(request)}/SenderPools/Operations/{op.id}"
    return json_response(
        {"operationId": op.id, "operationLocation": location},
        status=202,
        headers={"Location": location},
    )


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError.invalid(f"{what} must be an object of strings")
    return dict(value)


def _sender_refs(value: Any, what: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("senderId"), str)
            or set(item) != {"senderId"}
        ):
            raise ApiError.invalid(f'{what} must be {{"senderId": "..."}} or a list of them')
        ids.append(item["senderId"])
    if not ids:
        raise ApiError.invalid(f"{what} must name at least one sender")
    return ids


async def list_pools(request: web.Request) -> web.Response:
    page = page_of(request)
    operation_id = request.query.get("operationId")
    pools = [
        p.to_json()
        for p in _ctx(request).store.pools.values()
        if operation_id is None or operation_id in p.operation_ids
    ]
    return _page(request, "senderPools", pools, page)


async def create_pool(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) - {"name", "tags", "senders"}:
        raise ApiError.invalid("The body must be an object with name, tags and senders only")
    name = body.get("name", "")
    if not isinstance(name, str):
        raise ApiError.invalid("name must be a string")
    tags = _string_map(body.get("tags") or {}, "tags")
    senders = _sender_refs(body["senders"], "senders") if body.get("senders") else []
    return _pool_operation_accepted(request, _ctx(request).store.create_pool(name, tags, senders))


async def fetch_pool(request: web.Request) -> web.Response:
    return json_response(_ctx(request).store.pool(request.match_info["pool_id"]).to_json())


async def update_pool(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict) or not body or set(body) - {"name", "tags"}:
        raise ApiError.invalid("The body must be an object with name and/or tags")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ApiError.invalid("name must be a string")
    tags = _string_map(body["tags"], "tags") if "tags" in body else None
    pool = _ctx(request).store.update_pool(request.match_info["pool_id"], name, tags)
    return json_response(pool.to_json())


async def delete_pool(request: web.Request) -> web.Response:
    _ctx(request).store.delete_pool(request.match_info["pool_id"])
    return web.Response(status=204)


async def list_pool_senders(request: web.Request) -> web.Response:
    page = page_of(request)
    store = _ctx(request).store
    pool = store.pool(request.match_info["pool_id"])
    status = _filter(request, "status", ("ACTIVATED", "DEACTIVATED"))
    channel = _filter(request, "channel", ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH"))
    senders = [store.senders[sid] for sid in pool.sender_ids if sid in store.senders]
    items = [
        s.to_json()
        for s in senders
        if (status is None or s.status == status) and (channel is None or s.channel == channel)
    ]
    return _page(request, "senders", items, page)


async def add_pool_senders(request: web.Request) -> web.Response:
    body = await _json_body(request)
    ids = _sender_refs(body, "The body")
    return _pool_operation_accepted(
        request, _ctx(request).store.add_senders(request.match_info["pool_id"], ids)
    )


async def remove_pool_sender(request: web.Request) -> web.Response:
    _ctx(request).store.remove_sender(
        request.match_info["pool_id"], request.match_info["sender_id"]
    )
    return web.Response(status=204)


async def list_pool_operations(request: web.Request) -> web.Response:
    page = page_of(request)
    items = [op.to_json() for op in _ctx(request).store.pool_operations.values()]
    return _page(request, "operations", items, page)


async def fetch_pool_operation(request: web.Request) -> web.Response:
    return json_response(
        _ctx(request).store.pool_operation(request.match_info["operation_id"]).to_json()
    )


# Messages


async def send_messages(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = await _json_body(request)
    send = validate_send(body, datetime.fromtimestamp(ctx.store.clock.wall_s(), UTC))
    routes = ctx.store.resolve_routes(send)
    ctx.faults.admit_recipients(send.count)
    op = ctx.store.accept(send, routes)
    location = f"{_base_url(request)}/Messages/Operations/{op.id}"
    return json_response(
        {"operationId": op.id, "operationLocation": location},
        status=202,
        headers={"Location": location, "operationId": op.id},
    )


def _date(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError.invalid(f"{name} must be an RFC 3339 date-time, got {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


async def list_messages(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    store = ctx.store
    page = page_of(request)
    operation_id = request.query.get("operationId") or request.query.get("operation_id")
    operation = store.operation(operation_id) if operation_id else None
    status = _filter(request, "status", [s.value for s in MessageStatus])
    channel = _filter(request, "channel", ("PHONE", "WHATSAPP", "SMS", "RCS"))
    base = _base_url(request)
    items: list[dict[str, Any]] = []
    next_start: int | None = None
    matches = store.iter_messages(
        page.start,
        operation=operation,
        since=_date(request, "startDate"),
        until=_date(request, "endDate"),
    )
    for index, message in matches:
        if (
            channel is not None
            and channel != message.channel
            and (message.sender is None or message.sender.channel != channel)
        ):
            continue
        if status is not None and store.status(message)[0] != status:
            continue
        if len(items) == page.size:
            next_start = index
            break
        items.append(store.message_json(message, base))
    return json_response(
        page.body(request, "messages", items, next_start, next_as_token=ctx.next_as_token)
    )


async def fetch_message(request: web.Request) -> web.Response:
    store = _ctx(request).store
    return json_response(
        store.message_json(store.message(request.match_info["message_id"]), _base_url(request))
    )


def _operation_json(store: Store, op: MessageOperation) -> dict[str, Any]:
    state, stats = operation_stats(op, store.messages_of(op), store.clock.emu_s(), store.profile)
    updated = max(op.created_at, store.clock.wall_s()) if state != "COMPLETED" else op.created_at
    return {
        "id": op.id,
        "status": state,
        "stats": stats,
        "createdAt": iso(op.created_at),
        "updatedAt": iso(updated),
    }


async def list_operations(request: web.Request) -> web.Response:
    page = page_of(request)
    store = _ctx(request).store
    ops = store.operations[page.start : page.start + page.size]
    next_start = page.start + page.size if page.start + page.size < len(store.operations) else None
    items = [_operation_json(store, op) for op in ops]
    return json_response(
        page.body(
            request, "operations", items, next_start, next_as_token=_ctx(request).next_as_token
        )
    )


async def fetch_operation(request: web.Request) -> web.Response:
    store = _ctx(request).store
    return json_response(
        _operation_json(store, store.operation(request.match_info["operation_id"]))
    )


_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    # Fixed paths come before the ones with an id in the same place.
    ("GET", "/Senders", list_senders),
    ("GET", "/Senders/{sender_id}", fetch_sender),
    ("GET", "/SenderPools", list_pools),
    ("POST", "/SenderPools", create_pool),
    ("GET", "/SenderPools/Operations", list_pool_operations),
    ("GET", "/SenderPools/Operations/{operation_id}", fetch_pool_operation),
    ("GET", "/SenderPools/{pool_id}/Senders/Operations/{operation_id}", fetch_pool_operation),
    ("GET", "/SenderPools/{pool_id}", fetch_pool),
    ("PATCH", "/SenderPools/{pool_id}", update_pool),
    ("DELETE", "/SenderPools/{pool_id}", delete_pool),
    ("GET", "/SenderPools/{pool_id}/Senders", list_pool_senders),
    ("POST", "/SenderPools/{pool_id}/Senders", add_pool_senders),
    ("DELETE", "/SenderPools/{pool_id}/Senders/{sender_id}", remove_pool_sender),
    ("POST", "/Messages", send_messages),
    ("GET", "/Messages", list_messages),
    ("GET", "/Messages/Operations", list_operations),
    ("GET", "/Messages/Operations/{operation_id}", fetch_operation),
    ("GET", "/Messages/{message_id}", fetch_message),
)


def add_api_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        for method, path, handler in _ROUTES:
            app.router.add_route(method, prefix + path, handler, name=None)
