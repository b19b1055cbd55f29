"""Turning an error answer into the right exception, whatever shape its body takes.

The documented body is `{"code", "message", "more_info", "status"}`, but gateways and newer
API versions answer otherwise: camelCase `moreInfo`, a nested `{"error": {...}}`, a list
under `errors`, an HTML page from a load balancer, or nothing at all. Each is read for
what it holds, and the HTTP status decides the class.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import orjson

from campaign.exceptions import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnexpectedResponseError,
)

__all__ = ["ErrorDetails", "error_for_response", "parse_error_body", "parse_retry_after", "redact"]

_MESSAGE_KEYS = ("message", "detail", "title", "description", "reason", "error_description")
_MORE_INFO_KEYS = ("more_info", "moreInfo", "href", "type")
_MAX_TEXT = 300
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """What an error body says: the Twilio code, its message and a documentation link."""

    code: int | None = None
    message: str | None = None
    more_info: str | None = None


def parse_error_body(body: bytes) -> ErrorDetails:
    """Read whatever an error body holds; never raises."""
    if not body.strip():
        return ErrorDetails()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ErrorDetails(message=_plain_text(body.decode("utf-8", "replace")))
    return _from_json(data)


def _from_json(data: Any) -> ErrorDetails:
    if isinstance(data, str):
        return ErrorDetails(message=_short(data))
    if isinstance(data, list):
        return _from_list(data)
    if not isinstance(data, dict):
        return ErrorDetails(message=_short(str(data)))
    nested = data.get("error")
    if isinstance(nested, dict):
        inner = _from_json(nested)
        return ErrorDetails(
            inner.code if inner.code is not None else _code(data.get("code")),
            inner.message or _message(data),
            inner.more_info or _more_info(data),
        )
    code, message = _code(data.get("code")), _message(data)
    if message is None and isinstance(nested, str):
        message = _short(nested)
    if message is None:
        for key in ("errors", "details", "violations"):
            if isinstance(data.get(key), list):
                listed = _from_list(data[key])
                code, message = code if code is not None else listed.code, listed.message
                break
    return ErrorDetails(code, message, _more_info(data))


def _from_list(items: list[Any]) -> ErrorDetails:
    messages: list[str] = []
    code = None
    for item in items[:3]:
        if isinstance(item, dict):
            text = _message(item)
            where = next(
                (item[k] for k in ("field", "path", "property", "parameter") if item.get(k)), None
            )
            if text:
                messages.append(f"{where}: {text}" if isinstance(where, str) else text)
            if code is None:
                code = _code(item.get("code"))
        elif isinstance(item, str):
            messages.append(item)
    return ErrorDetails(code, _short("; ".join(messages)) or None)


def _message(data: Mapping[str, Any]) -> str | None:
    for key in _MESSAGE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return _short(value)
    return None


def _more_info(data: Mapping[str, Any]) -> str | None:
    for key in _MORE_INFO_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.startswith("http"):
            return value
    return None


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _plain_text(text: str) -> str | None:
    title = _TITLE.search(text)
    if title is not None:
        text = title.group(1)
    return _short(html.unescape(_TAG.sub(" ", text))) or None


def _short(text: str) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret (of four characters or more) replaced."""
    for secret in secrets:
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def error_for_response(
    status: int,
    body: bytes,
    *,
    retry_after: str | None = None,
    method: str = "",
    url: str = "",
    secrets: Iterable[str] = (),
) -> ApiError:
    """The exception for an answer with this status and body."""
    details = parse_error_body(body)
    try:
        fallback = f"{HTTPStatus(status).phrase}"
    except ValueError:
        fallback = f"HTTP {status}"
    secrets = tuple(secrets)
    message = redact(details.message or fallback, secrets)
    more_info = redact(details.more_info, secrets) if details.more_info else None
    kind: type[ApiError]
    if status == 429:
        kind = RateLimitedError
    elif status in (401, 403):
        kind = AuthenticationError
    elif status == 404:
        kind = NotFoundError
    elif status >= 500 or status == 408:
        kind = ServerError
    elif 400 <= status < 500:
        kind = RequestRejectedError
    else:
        kind = UnexpectedResponseError
    return kind(
        message,
        status=status,
        code=details.code,
        retry_after_s=parse_retry_after(retry_after),
        more_info=more_info,
        method=method,
        url=redact(url, secrets),
    )
