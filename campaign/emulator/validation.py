"""Strict checks of a `POST /Messages` body, as the API makes them: any fault rejects it all.

Runs once per recipient for up to 10,000 recipients a request, so the per-recipient loop is
written for speed: no per-recipient allocations beyond the rendered tag values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from campaign.e164 import is_valid_e164
from campaign.emulator.errors import INVALID_ADDRESS, MISSING_CONTENT, ApiError
from campaign.emulator.rendering import CompiledTemplate, TemplateError, compile_template
from campaign.segments import GSM7_BASIC_CHARS, count_segments

__all__ = ["MAX_RECIPIENTS", "MAX_TAGS", "SendRequest", "validate_send"]

MAX_RECIPIENTS = 10_000
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_SCHEDULE_AHEAD = timedelta(days=7)
_TAG_RE = re.compile(r"[a-zA-Z0-9._~-]+")
_CONTENT_ID_RE = re.compile(r"HX[0-9a-fA-F]{32}")
_TOP_KEYS = frozenset({"from", "to", "content", "tags", "schedule"})
_TO_KEYS = frozenset({"address", "channel", "variables"})
# Recipient channels as the API accepts them (upper or lower case): is it WhatsApp?
_CHANNELS = {"PHONE": False, "phone": False, "WHATSAPP": True, "whatsapp": True}
_WHATSAPP_NAMES = frozenset({"WHATSAPP", "whatsapp"})
_EMPTY: dict[str, str] = {}
_FROM_CHANNELS = frozenset({"SMS", "RCS", "WHATSAPP"})


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A valid request, its recipients held column by column (index i is recipient i)."""

    from_pool_id: str | None
    from_sender_id: str | None
    from_address: tuple[str, str] | None  # (address, channel)
    addresses: list[str]
    whatsapp: bytearray  # 1 where the recipient's channel is WHATSAPP
    segments: list[int]  # SMS segments of each recipient's rendered text
    tag_keys: tuple[str, ...]
    tag_columns: tuple[list[str] | str, ...]  # rendered per recipient, or one shared value
    send_at: datetime | None

    @property
    def count(self) -> int:
        return len(self.addresses)


def segments_of(text: str) -> int:
    return count_segments(text).segments


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


def _check_tag_value(key: str, value: str, index: int | None) -> None:
    if len(value) > MAX_TAG_VALUE or not _TAG_RE.fullmatch(value):
        where = "" if index is None else f"to[{index}]: "
        raise _fail(
            f"{where}tag {key} renders to {value[:40]!r}, which must be 1-{MAX_TAG_VALUE} "
            "characters of [a-zA-Z0-9._~-]"
        )


def validate_send(body: Any, now_s: float) -> SendRequest:
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
    send_at = None
    if body.get("schedule") is not None:
        send_at = _parse_schedule(body["schedule"], datetime.fromtimestamp(now_s, UTC))
    to = body.get("to")
    if not isinstance(to, list) or not to:
        raise _fail("to must be a list of 1 to 10,000 recipients")
    if len(to) > MAX_RECIPIENTS:
        raise _fail(f"to holds {len(to)} recipients; at most {MAX_RECIPIENTS:,} are allowed")
    addresses, whatsapp, segments, tag_columns = _recipients(to, text, tags)
    return SendRequest(
        from_pool_id=pool_id,
        from_sender_id=sender_id,
        from_address=from_address,
        addresses=addresses,
        whatsapp=whatsapp,
        segments=segments,
        tag_keys=tuple(key for key, _ in tags),
        tag_columns=tag_columns,
        send_at=send_at,
    )


_Columns = tuple[list[str], bytearray, list[int], tuple[list[str] | str, ...]]


def _recipients(
    to: list[Any], text: CompiledTemplate | None, tags: list[tuple[str, CompiledTemplate]]
) -> _Columns:
    """Check and render every recipient: at batch speed when all is well, else one by one."""
    return _recipients_at_once(to, text, tags) or _recipients_one_by_one(to, text, tags)


_NoneType = type(None)
# Many rendered tag values joined by newlines, each one valid: one regex call for a batch.
_TAG_LINES_RE = re.compile(r"[a-zA-Z0-9._~-]{1,256}(?:\n[a-zA-Z0-9._~-]{1,256})*")
# Any character outside the ASCII part of the GSM-7 basic table (newline included there).
_NOT_PLAIN_GSM_RE = re.compile(
    "[^" + re.escape("".join(c for c in GSM7_BASIC_CHARS if c.isascii())) + "]"
)


def _recipients_at_once(  # noqa: PLR0912 - each early return hands over to the careful path
    to: list[Any], text: CompiledTemplate | None, tags: list[tuple[str, CompiledTemplate]]
) -> _Columns | None:
    """The common case, column by column in comprehensions (several times faster than one
    recipient at a time); None as soon as anything is unusual, so that the careful path can
    name exactly what is wrong."""
    try:
        if not all(map(_TO_KEYS.issuperset, to)):
            return None
        addresses = [item["address"] for item in to]
        channels = [item["channel"] for item in to]
        channel_names = set(channels)
    except (TypeError, KeyError):
        return None  # not objects, a missing field, or an unhashable channel
    if set(map(type, addresses)) != {str} or not channel_names <= _CHANNELS.keys():
        return None
    if not all(map(is_valid_e164, addresses)):
        return None
    raw = [item.get("variables") for item in to]
    if not set(map(type, raw)) <= {dict, _NoneType}:
        return None
    variables: list[dict[str, str]] = [v if v is not None else _EMPTY for v in raw]
    if not set(map(type, chain.from_iterable(map(dict.values, variables)))) <= {str}:
        return None
    whatsapp = (
        bytearray(map(_CHANNELS.__getitem__, channels))
        if channel_names & _WHATSAPP_NAMES
        else bytearray(len(to))
    )
    try:
        columns: list[list[str] | str] = []
        for key, template in tags:
            if template.is_constant:
                value = template.render({})
                _check_tag_value(key, value, None)
                columns.append(value)
                continue
            values = template.render_all(variables)
            joined = "\n".join(values)
            if joined.count("\n") != len(values) - 1 or not _TAG_LINES_RE.fullmatch(joined):
                return None
            columns.append(values)
        if text is None or text.is_constant:
            segments = [segments_of(text.render({}) if text else "")] * len(to)
        else:
            texts = text.render_all(variables)
            if _NOT_PLAIN_GSM_RE.search("\n".join(texts)) is None:
                # Plain GSM-7 text: one segment up to 160 characters, then 153 a part.
                segments = [1 if n <= 160 else -(-n // 153) for n in map(len, texts)]
            else:
                segments = [segments_of(t) for t in texts]
    except TemplateError:
        return None
    return addresses, whatsapp, segments, tuple(columns)


def _recipients_one_by_one(  # noqa: PLR0912 - one tight loop, kept flat
    to: list[Any], text: CompiledTemplate | None, tags: list[tuple[str, CompiledTemplate]]
) -> _Columns:
    constant_segments = 1
    per_recipient_text = text is not None and not text.is_constant
    if not per_recipient_text:
        constant_segments = segments_of(text.render({}) if text else "")
    columns: list[list[str] | str] = []
    varying: list[tuple[str, CompiledTemplate, list[str]]] = []
    for key, template in tags:
        if template.is_constant:
            value = template.render({})
            _check_tag_value(key, value, None)
            columns.append(value)
        else:
            column: list[str] = []
            columns.append(column)
            varying.append((key, template, column))
    empty: dict[str, str] = {}
    addresses: list[str] = []
    whatsapp = bytearray(len(to))
    segments: list[int] = []
    channels = _CHANNELS
    index = 0
    try:
        for index, item in enumerate(to):
            # The common case runs straight through; anything odd goes to _recipient_error,
            # which works out what exactly is wrong.
            if type(item) is not dict or not _TO_KEYS.issuperset(item):
                raise _recipient_error(item, index)
            address = item.get("address")
            channel = item.get("channel")
            if type(address) is not str or type(channel) is not str or channel not in channels:
                raise _recipient_error(item, index)
            if not is_valid_e164(address):
                raise ApiError.invalid(
                    f"to[{index}].address {address!r} is not a valid phone number in E.164 format",
                    INVALID_ADDRESS,
                )
            if channels[channel]:
                whatsapp[index] = 1
            variables = item.get("variables")
            if variables is None:
                variables = empty
            elif type(variables) is dict:
                for value in variables.values():
                    if type(value) is not str:
                        raise _recipient_error(item, index)
            else:
                raise _recipient_error(item, index)
            for key, template, column in varying:
                value = template.render(variables)
                if len(value) > MAX_TAG_VALUE or not _TAG_RE.fullmatch(value):
                    _check_tag_value(key, value, index)
                column.append(value)
            addresses.append(address)
            segments.append(
                segments_of(text.render(variables))  # type: ignore[union-attr]
                if per_recipient_text
                else constant_segments
            )

    except TemplateError as exc:
        raise _fail(
            f"to[{index}]: a template cannot be rendered with these variables: {exc}"
        ) from None
    return addresses, whatsapp, segments, tuple(columns)


def _recipient_error(item: Any, index: int) -> ApiError:
    """The precise complaint about a recipient the fast loop would not take."""
    where = f"to[{index}]"
    if type(item) is not dict:
        return _fail(f"{where} must be an object")
    unknown = set(item) - _TO_KEYS
    if unknown:
        return _fail(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    if type(item.get("address")) is not str:
        return _fail(f"{where}.address is required and must be a string")
    channel = item.get("channel")
    if type(channel) is not str or channel not in _CHANNELS:
        return _fail(f"{where}.channel must be PHONE or WHATSAPP, got {channel!r}")
    return _fail(f"{where}.variables must be an object of strings")
