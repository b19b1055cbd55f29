"""`/_emulator/*`: what tests, benchmarks and people use to look inside, without auth."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from campaign.emulator.errors import ApiError
from campaign.emulator.faults import FaultError, Faults
from campaign.emulator.model import Route, iso
from campaign.emulator.routes import CONTEXT, json_response
from campaign.emulator.stats import RequestStats

__all__ = ["STATS", "add_inspection_routes"]

STATS = web.AppKey("emulator_stats", RequestStats)


async def stats(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    by_status: Counter[str] = Counter()
    unaddressable = 0
    for _, message in store.iter_messages(0):
        if message.route is Route.UNADDRESSABLE:
            unaddressable += 1
        by_status[store.status(message)[0].value] += 1
    return json_response(
        {
            "requests": request.app[STATS].snapshot(),
            "recipients_accepted": store.recipients_accepted,
            "duplicates": store.duplicates,
            "operations": len(store.operations),
            "messages_by_status": dict(sorted(by_status.items())),
            "unaddressable": unaddressable,
            "in_flight": request.app[CONTEXT].faults.in_flight,
        }
    )


def _whole_number(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError.invalid(f"{name} must be a whole number")
    return int(raw)


async def messages(request: web.Request) -> web.Response:
    """Every accepted recipient, oldest first; `offset`, `limit`, `operationId`, `campaign` narrow it."""
    store = request.app[CONTEXT].store
    offset = _whole_number(request, "offset", 0) or 0
    limit = _whole_number(request, "limit", None)
    operation_id = request.query.get("operationId")
    campaign = request.query.get("campaign")
    operation = store.operation(operation_id) if operation_id else None
    items: list[dict[str, Any]] = []
    for _, message in store.iter_messages(offset, operation=operation):
        if limit is not None and len(items) >= limit:
            break
        op = message.operation
        tags = dict(zip(op.tag_keys, message.tag_values, strict=True))
        if campaign is not None and tags.get("campaign") != campaign:
            continue
        status, _ = store.status(message)
        sender = message.sender
        items.append(
            {
                "id": store.message_id(message),
                "operationId": op.id,
                "address": message.address,
                "channel": message.channel,
                "tags": tags,
                "status": status.value,
                "unaddressable": message.route is Route.UNADDRESSABLE,
                "senderId": sender.id if sender else None,
                "createdAt": iso(op.created_at),
            }
        )
    return json_response({"messages": items, "total": store.message_count})


async def reset(request: web.Request) -> web.Response:
    request.app[CONTEXT].store.reset()
    request.app[STATS].reset()
    return json_response({"reset": True})


async def get_faults(request: web.Request) -> web.Response:
    return json_response(request.app[CONTEXT].faults.faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    try:
        faults = Faults.from_json(orjson.loads(await request.read()))
    except (FaultError, ValueError) as exc:
        raise ApiError.invalid(str(exc)) from None
    request.app[CONTEXT].faults.configure(faults)
    return json_response(faults.to_json())


def add_inspection_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_get("/_emulator/messages", messages)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_put("/_emulator/faults", put_faults)
