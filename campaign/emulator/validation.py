"""Strict checks of a `POST /Messages` body, as the API makes them: any fault rejects it all.

Runs once per recipient for up to 10,000 recipients a request, so the per-recipient loop is
written for speed: no per-recipient allocations beyond the rendered tag values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaign.e164 import is_valid_e164
from campaign.emulator.errors import INVALID_ADDRESS, MISSING_CONTENT, ApiError
from campaign.emulator.rendering import CompiledTemplate, TemplateError, compile_template
from campaign.segments import count_segments

__all__ = ["MAX_RECIPIENTS", "MAX_TAGS", "Recipient", "SendRequest", "validate_send"]

MAX_RECIPIENTS = 10_000
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_SCHEDULE_AHEAD = timedelta(days=7)
_TAG_RE = re.compile(r"[a-zA-Z0-9._~-]+")
_CONTENT_ID_RE = re.compile(r"HX[0-9a-fA-F]{32}")
_TOP_KEYS = frozenset({"from", "to", "content", "tags", "schedule"})
_TO_KEYS = frozenset({"address", "channel", "variables"})
_CHANNELS = {"PHONE": "PHONE", "phone": "PHONE", "WHATSAPP": "WHATSAPP", "whatsapp": "WHATSAPP"}
_FROM_CHANNELS = frozenset({"SMS", "RCS", "WHATSAPP"})


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    channel: str  # PHONE or WHATSAPP
    tag_values: tuple[str, ...]
    segments: int


@dataclass(frozen=True, slots=True)
class SendRequest:
    from_pool_id: str | None
    from_sender_id: str | None
    from_address: tuple[str, str] | None  # (address, channel)
    recipients: list[Recipient]
    tag_keys: tuple[str, ...]
    send_at: datetime | None


def _fail(message: str) -> ApiError:
    return ApiError.invalid(message)


def _require_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{where} must be an object")
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    mapping = _require_dict(value, where)
    for key, item in mapping.items():
        if not isinstance(item, str):
            raise _fail(f"{where}.{key} must be a string")
    return mapping


def _parse_from(value: Any) -> tuple[str | None, str | None, tuple[str, str] | None]:
    sender = _require_dict(value, "from")
    keys = set(sender)
    if keys in ({"senderPoolId"}, {"senderId"}):
        (key,) = keys
        ident = sender[key]
        if not isinstance(ident, str) or not ident:
            raise _fail(f"from.{key} must be a non-empty string")
        return (ident, None, None) if key == "senderPoolId" else (None, ident, None)
    if keys == {"address", "channel"}:
        address, channel = sender["address"], sender["channel"]
        if not isinstance(address, str) or not address:
            raise _fail("from.address must be a non-empty string")
        if not isinstance(channel, str) or channel.upper() not in _FROM_CHANNELS:
            raise _fail("from.channel must be one of SMS, RCS, WHATSAPP")
        return None, None, (address, channel.upper())
    raise _fail("from must be {senderPoolId}, {senderId} or {address, channel}")


def _parse_content(value: Any) -> CompiledTemplate | None:
    """The text template, or None for a Content Template (`contentId`)."""
    content = _require_dict(value, "content")
    if "contentId" in content:
        if set(content) != {"contentId"}:
            raise _fail("content.contentId cannot be combined with other content fields")
        cid = content["contentId"]
        if not isinstance(cid, str) or not _CONTENT_ID_RE.fullmatch(cid):
            raise _fail("content.contentId must be a Content Template SID (HX + 32 hex digits)")
        return None
    unknown = set(content) - {"text", "media"}
    if unknown:
        raise _fail(f"content has unknown fields: {', '.join(sorted(unknown))}")
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError.invalid(
            "content.text is required and must be a non-empty string", MISSING_CONTENT
        )
    media = content.get("media", [])
    if not isinstance(media, list) or len(media) > 10:
        raise _fail("content.media must be a list of at most 10 URLs")
    for index, item in enumerate(media):
        url = item.get("url") if isinstance(item, dict) else item
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _fail(f"content.media[{index}] must be an http(s) URL or {{url}}")
    return _compile(text, "content.text")


def _compile(source: str, where: str) -> CompiledTemplate:
    try:
        return compile_template(source)
    except TemplateError as exc:
        raise _fail(f"{where} is not a valid Liquid template: {exc}") from None


def _parse_tags(value: Any) -> list[tuple[str, CompiledTemplate]]:
    tags = _string_map(value, "tags")
    if len(tags) > MAX_TAGS:
        raise _fail(f"tags may hold at most {MAX_TAGS} entries, got {len(tags)}")
    parsed = []
    for key, source in tags.items():
        if len(key) > MAX_TAG_KEY or not _TAG_RE.fullmatch(key):
            raise _fail(f"tag key {key!r} must be 1-{MAX_TAG_KEY} characters of [a-zA-Z0-9._~-]")
        parsed.append((key, _compile(source, f"tags.{key}")))
    return parsed


def _parse_schedule(value: Any, now: datetime) -> datetime | None:
    schedule = _require_dict(value, "schedule")
    if set(schedule) - {"sendAt"}:
        raise _fail("schedule accepts only sendAt")
    send_at = schedule.get("sendAt")
    if isinstance(send_at, list) and len(send_at) == 1:
        send_at = send_at[0]
    if send_at is None:
        return None
    if not isinstance(send_at, str):
        raise _fail("schedule.sendAt must be an RFC 3339 date-time string")
    try:
        when = datetime.fromisoformat(send_at)
    except ValueError:
        raise _fail(f"schedule.sendAt {send_at!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        raise _fail("schedule.sendAt must carry a time zone offset (e.g. Z)")
    if when - now > MAX_SCHEDULE_AHEAD:
        raise _fail("schedule.sendAt may be at most 7 days ahead")
    return when


def _check_tag_value(key: str, value: str, index: int) -> None:
    if len(value) > MAX_TAG_VALUE or not _TAG_RE.fullmatch(value):
        raise _fail(
            f"to[{index}]: tag {key} renders to {value[:40]!r}, which must be 1-{MAX_TAG_VALUE} "
            "characters of [a-zA-Z0-9._~-]"
        )


def validate_send(body: Any, now: datetime) -> SendRequest:
    """Check a decoded body and render what must be rendered per recipient; raise ApiError."""
    body = _require_dict(body, "The request body")
    unknown = set(body) - _TOP_KEYS
    if unknown:
        raise _fail(f"Unknown fields in the request body: {', '.join(sorted(unknown))}")
    if "from" not in body:
        raise _fail("from is required: {senderPoolId}, {senderId} or {address, channel}")
    pool_id, sender_id, from_address = _parse_from(body["from"])
    if "content" not in body:
        raise ApiError.invalid("content is required", MISSING_CONTENT)
    text = _parse_content(body["content"])
    tags = _parse_tags(body["tags"]) if body.get("tags") is not None else []
    send_at = _parse_schedule(body["schedule"], now) if body.get("schedule") is not None else None
    to = body.get("to")
    if not isinstance(to, list) or not to:
        raise _fail("to must be a list of 1 to 10,000 recipients")
    if len(to) > MAX_RECIPIENTS:
        raise _fail(f"to holds {len(to)} recipients; at most {MAX_RECIPIENTS:,} are allowed")
    return SendRequest(
        from_pool_id=pool_id,
        from_sender_id=sender_id,
        from_address=from_address,
        recipients=_recipients(to, text, tags),
        tag_keys=tuple(key for key, _ in tags),
        send_at=send_at,
    )


def _recipients(  # noqa: PLR0912 - one tight loop over up to 10,000 recipients, kept flat for speed
    to: list[Any], text: CompiledTemplate | None, tags: list[tuple[str, CompiledTemplate]]
) -> list[Recipient]:
    constant_segments = 1
    if text is None or text.is_constant:
        constant_segments = count_segments(text.render({}) if text else "").segments
    constant_tags = all(template.is_constant for _, template in tags)
    fixed_values: tuple[str, ...] = ()
    if constant_tags:
        fixed_values = tuple(template.render({}) for _, template in tags)
        for key, value in zip((k for k, _ in tags), fixed_values, strict=True):
            _check_tag_value(key, value, 0)
    empty: dict[str, str] = {}
    result = []
    append = result.append
    for index, item in enumerate(to):
        if type(item) is not dict:
            raise _fail(f"to[{index}] must be an object")
        if not _TO_KEYS.issuperset(item):
            raise _fail(
                f"to[{index}] has unknown fields: {', '.join(sorted(set(item) - _TO_KEYS))}"
            )
        address = item.get("address")
        if type(address) is not str:
            raise _fail(f"to[{index}].address is required and must be a string")
        channel = _CHANNELS.get(item.get("channel"))  # type: ignore[arg-type]
        if channel is None:
            channel = _channel_of(item.get("channel"), index)
        if not is_valid_e164(address):
            raise ApiError.invalid(
                f"to[{index}].address {address!r} is not a valid phone number in E.164 format",
                INVALID_ADDRESS,
            )
        variables = item.get("variables")
        if variables is None:
            variables = empty
        elif type(variables) is not dict or not all(type(v) is str for v in variables.values()):
            raise _fail(f"to[{index}].variables must be an object of strings")
        if constant_tags:
            values = fixed_values
        else:
            values = tuple(template.render(variables) for _, template in tags)
            for (key, _), value in zip(tags, values, strict=True):
                _check_tag_value(key, value, index)
        segments = constant_segments
        if text is not None and not text.is_constant:
            segments = count_segments(text.render(variables)).segments
        append(Recipient(address, channel, values, segments))
    return result


def _channel_of(raw: Any, index: int) -> str:
    if isinstance(raw, str) and raw.upper() in ("PHONE", "WHATSAPP"):
        return raw.upper()
    raise _fail(f"to[{index}].channel must be PHONE or WHATSAPP, got {raw!r}")
