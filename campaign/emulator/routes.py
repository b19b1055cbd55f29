"""The Communications API's routes, served under both `/preview` and `/v1`.

Handlers are plain functions of the emulator's context and a request with its body read;
they raise ApiError for any answer but success, and the app turns it into the error body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from campaign.emulator.delivery import operation_stats
from campaign.emulator.errors import ApiError
from campaign.emulator.faults import FaultInjector
from campaign.emulator.http import Request, Response, Router
from campaign.emulator.model import MessageOperation, MessageStatus, PoolOperation, iso
from campaign.emulator.pagination import Page, page_of
from campaign.emulator.store import Store
from campaign.emulator.validation import validate_send

__all__ = ["PREFIXES", "EmulatorContext", "add_api_routes", "json_response"]

PREFIXES = ("/preview", "/v1")
ContextHandler = Callable[["EmulatorContext", Request], Response]


@dataclass(slots=True)
class EmulatorContext:
    store: Store
    faults: FaultInjector
    next_as_token: bool = False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(body), headers)


def _base_url(request: Request) -> str:
    prefix = "/" + request.path.split("/", 2)[1]
    return f"http://{request.host}{prefix}"


def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise ApiError.invalid("The request body is not valid JSON") from None


def _page(
    ctx: EmulatorContext, request: Request, key: str, items: list[Any], page: Page
) -> Response:
    chunk = items[page.start : page.start + page.size]
    next_start = page.start + page.size if page.start + page.size < len(items) else None
    return json_response(
        page.body(request, key, chunk, next_start, next_as_token=ctx.next_as_token)
    )


def _filter(request: Request, name: str, allowed: Iterable[str]) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    allowed = tuple(allowed)
    if value.upper() not in allowed:
        raise ApiError.invalid(f"{name} must be one of {', '.join(allowed)}")
    return value.upper()


# Senders


def list_senders(ctx: EmulatorContext, request: Request) -> Response:
    page = page_of(request)
    status = _filter(request, "status", ("ACTIVATED", "DEACTIVATED"))
    channel = _filter(request, "channel", ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH"))
    senders = [
        s.to_json()
        for s in ctx.store.senders.values()
        if (status is None or s.status == status) and (channel is None or s.channel == channel)
    ]
    return _page(ctx, request, "senders", senders, page)


def fetch_sender(ctx: EmulatorContext, request: Request) -> Response:
    return json_response(ctx.store.sender(request.match_info["sender_id"]).to_json())


# Sender pools


def _pool_operation_accepted(request: Request, op: PoolOperation) -> Response:
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


def list_pools(ctx: EmulatorContext, request: Request) -> Response:
    page = page_of(request)
    operation_id = request.query.get("operationId")
    pools = [
        p.to_json()
        for p in ctx.store.pools.values()
        if operation_id is None or operation_id in p.operation_ids
    ]
    return _page(ctx, request, "senderPools", pools, page)


def create_pool(ctx: EmulatorContext, request: Request) -> Response:
    body = _json_body(request)
    if not isinstance(body, dict) or set(body) - {"name", "tags", "senders"}:
        raise ApiError.invalid("The body must be an object with name, tags and senders only")
    name = body.get("name", "")
    if not isinstance(name, str):
        raise ApiError.invalid("name must be a string")
    tags = _string_map(body.get("tags") or {}, "tags")
    senders = _sender_refs(body["senders"], "senders") if body.get("senders") else []
    return _pool_operation_accepted(request, ctx.store.create_pool(name, tags, senders))


def fetch_pool(ctx: EmulatorContext, request: Request) -> Response:
    return json_response(ctx.store.pool(request.match_info["pool_id"]).to_json())


def update_pool(ctx: EmulatorContext, request: Request) -> Response:
    body = _json_body(request)
    if not isinstance(body, dict) or not body or set(body) - {"name", "tags"}:
        raise ApiError.invalid("The body must be an object with name and/or tags")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ApiError.invalid("name must be a string")
    tags = _string_map(body["tags"], "tags") if "tags" in body else None
    pool = ctx.store.update_pool(request.match_info["pool_id"], name, tags)
    return json_response(pool.to_json())


def delete_pool(ctx: EmulatorContext, request: Request) -> Response:
    ctx.store.delete_pool(request.match_info["pool_id"])
    return Response(204)


def list_pool_senders(ctx: EmulatorContext, request: Request) -> Response:
    page = page_of(request)
    store = ctx.store
    pool = store.pool(request.match_info["pool_id"])
    status = _filter(request, "status", ("ACTIVATED", "DEACTIVATED"))
    channel = _filter(request, "channel", ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH"))
    senders = [store.senders[sid] for sid in pool.sender_ids if sid in store.senders]
    items = [
        s.to_json()
        for s in senders
        if (status is None or s.status == status) and (channel is None or s.channel == channel)
    ]
    return _page(ctx, request, "senders", items, page)


def add_pool_senders(ctx: EmulatorContext, request: Request) -> Response:
    body = _json_body(request)
    ids = _sender_refs(body, "The body")
    return _pool_operation_accepted(
        request, ctx.store.add_senders(request.match_info["pool_id"], ids)
    )


def remove_pool_sender(ctx: EmulatorContext, request: Request) -> Response:
    ctx.store.remove_sender(request.match_info["pool_id"], request.match_info["sender_id"])
    return Response(204)


def list_pool_operations(ctx: EmulatorContext, request: Request) -> Response:
    page = page_of(request)
    items = [op.to_json() for op in ctx.store.pool_operations.values()]
    return _page(ctx, request, "operations", items, page)


def fetch_pool_operation(ctx: EmulatorContext, request: Request) -> Response:
    return json_response(ctx.store.pool_operation(request.match_info["operation_id"]).to_json())


# Messages


def send_messages(ctx: EmulatorContext, request: Request) -> Response:
    body = _json_body(request)
    send = validate_send(body, ctx.store.clock.wall_s())
    routes = ctx.store.resolve_routes(send)
    ctx.faults.admit_recipients(send.count)
    op = ctx.store.accept(send, routes)
    location = f"{_base_url(request)}/Messages/Operations/{op.id}"
    return json_response(
        {"operationId": op.id, "operationLocation": location},
        status=202,
        headers={"Location": location, "operationId": op.id},
    )


def _date(request: Request, name: str) -> float | None:
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


def list_messages(ctx: EmulatorContext, request: Request) -> Response:
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


def fetch_message(ctx: EmulatorContext, request: Request) -> Response:
    store = ctx.store
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


def list_operations(ctx: EmulatorContext, request: Request) -> Response:
    page = page_of(request)
    store = ctx.store
    ops = store.operations[page.start : page.start + page.size]
    next_start = page.start + page.size if page.start + page.size < len(store.operations) else None
    items = [_operation_json(store, op) for op in ops]
    return json_response(
        page.body(request, "operations", items, next_start, next_as_token=ctx.next_as_token)
    )


def fetch_operation(ctx: EmulatorContext, request: Request) -> Response:
    store = ctx.store
    return json_response(
        _operation_json(store, store.operation(request.match_info["operation_id"]))
    )


_ROUTES: tuple[tuple[str, str, ContextHandler], ...] = (
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


def add_api_routes(router: Router, ctx: EmulatorContext) -> None:
    for prefix in PREFIXES:
        for method, path, handler in _ROUTES:
            router.add(method, prefix + path, partial(handler, ctx), name=f"{method} {path}")
