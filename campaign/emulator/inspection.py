# ruff: noqa: ARG001 - every inspection handler takes the same (context, stats, request)
"""`/_emulator/*`: what tests, benchmarks and people use to look inside, without auth."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from functools import partial
from typing import Any

import orjson

from campaign.emulator.errors import ApiError
from campaign.emulator.faults import FaultError, Faults
from campaign.emulator.http import Request, Response, Router
from campaign.emulator.model import Route, iso
from campaign.emulator.routes import EmulatorContext, json_response
from campaign.emulator.stats import RequestStats

__all__ = ["add_inspection_routes"]


def show_stats(ctx: EmulatorContext, stats: RequestStats, request: Request) -> Response:
    store = ctx.store
    by_status: Counter[str] = Counter()
    unaddressable = 0
    for _, message in store.iter_messages(0):
        if message.route is Route.UNADDRESSABLE:
            unaddressable += 1
        by_status[store.status(message)[0].value] += 1
    return json_response(
        {
            "requests": stats.snapshot(),
            "recipients_accepted": store.recipients_accepted,
            "duplicates": store.duplicates,
            "operations": len(store.operations),
            "messages_by_status": dict(sorted(by_status.items())),
            "unaddressable": unaddressable,
            "in_flight": ctx.faults.in_flight,
            "delivery": {"speed": store.clock.speed, **asdict(store.profile)},
        }
    )


def _whole_number(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError.invalid(f"{name} must be a whole number")
    return int(raw)


def messages(ctx: EmulatorContext, stats: RequestStats, request: Request) -> Response:
    """Every accepted recipient, oldest first; `offset`, `limit`, `operationId`, `campaign` narrow it."""
    store = ctx.store
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


def reset(ctx: EmulatorContext, stats: RequestStats, request: Request) -> Response:
    ctx.store.reset()
    stats.reset()
    return json_response({"reset": True})


def get_faults(ctx: EmulatorContext, stats: RequestStats, request: Request) -> Response:
    return json_response(ctx.faults.faults.to_json())


def put_faults(ctx: EmulatorContext, stats: RequestStats, request: Request) -> Response:
    try:
        faults = Faults.from_json(orjson.loads(request.body))
    except (FaultError, ValueError) as exc:
        raise ApiError.invalid(str(exc)) from None
    ctx.faults.configure(faults)
    return json_response(faults.to_json())


def add_inspection_routes(router: Router, ctx: EmulatorContext, stats: RequestStats) -> None:
    for method, path, handler in (
        ("GET", "/_emulator/stats", show_stats),
        ("GET", "/_emulator/messages", messages),
        ("POST", "/_emulator/reset", reset),
        ("GET", "/_emulator/faults", get_faults),
        ("PUT", "/_emulator/faults", put_faults),
    ):
        router.add(method, path, partial(handler, ctx, stats), name=f"{method} {path}")
