"""The API's resources as frozen values: read leniently from JSON, written back with stable keys.

Reading tolerates missing optional fields and unknown extra ones (the API grows); only an
object without an `id` is refused, because nothing could be done with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from campaign.exceptions import UnexpectedResponseError

__all__ = [
    "Message",
    "MessageBatch",
    "MessageOperation",
    "PoolCreation",
    "PoolOperation",
    "Recipient",
    "Sender",
    "SenderPool",
]


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise UnexpectedResponseError(f"the API returned {what} without an id")
    return raw


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def _optional_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _strings(raw: Mapping[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _counts(raw: Mapping[str, Any], key: str) -> dict[str, int]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


@dataclass(frozen=True, slots=True)
class Sender:
    """A phone number, short code, RCS agent, WhatsApp or e-mail sender of the account."""

    id: str
    display_name: str
    channel: str
    address: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def activated(self) -> bool:
        return self.status == "ACTIVATED"

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        raw = _object(raw, "a sender")
        return cls(
            id=raw["id"],
            display_name=_text(raw, "displayName"),
            channel=_text(raw, "channel").upper(),
            address=_text(raw, "address"),
            status=_text(raw, "status").upper(),
            tags=_strings(raw, "tags"),
            created_at=_optional_text(raw, "createdAt"),
            updated_at=_optional_text(raw, "updatedAt"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "channel": self.channel,
            "address": self.address,
            "status": self.status,
            "tags": self.tags,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class SenderPool:
    """A named set of senders that messages are sent `from`."""

    id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        raw = _object(raw, "a sender pool")
        return cls(
            id=raw["id"],
            name=_text(raw, "name"),
            tags=_strings(raw, "tags"),
            created_at=_optional_text(raw, "createdAt"),
            updated_at=_optional_text(raw, "updatedAt"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tags": self.tags,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class PoolOperation:
    """The progress of creating a pool or adding senders to one; `stats` has total/created/failed."""

    id: str
    status: str
    stats: dict[str, int] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def done(self) -> bool:
        """False only while the API says it is still working; no status at all counts as done."""
        return self.status not in ("PROCESSING", "QUEUED")

    @property
    def failed(self) -> int:
        return self.stats.get("failed", 0)

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        raw = _object(raw, "a sender pool operation")
        return cls(
            id=raw["id"],
            status=_text(raw, "status").upper(),
            stats=_counts(raw, "stats"),
            created_at=_optional_text(raw, "createdAt"),
            updated_at=_optional_text(raw, "updatedAt"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "stats": self.stats,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class PoolCreation:
    """A new pool, and the operation that made it (its stats count the senders that failed)."""

    pool: SenderPool
    operation: PoolOperation


@dataclass(frozen=True, slots=True)
class MessageOperation:
    """One accepted `POST /Messages`: SCHEDULED, PROCESSING, COMPLETED or CANCELED, with counts."""

    id: str
    status: str
    stats: dict[str, int] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        raw = _object(raw, "a message operation")
        return cls(
            id=raw["id"],
            status=_text(raw, "status").upper(),
            stats=_counts(raw, "stats"),
            created_at=_optional_text(raw, "createdAt"),
            updated_at=_optional_text(raw, "updatedAt"),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One recipient's message; `tags` are that recipient's rendered tags."""

    id: str
    status: str
    to_address: str
    to_channel: str
    operation_id: str | None
    sender_id: str | None
    sender_pool_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    scheduled_for: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        raw = _object(raw, "a message")
        to = raw.get("to")
        first = to[0] if isinstance(to, list) and to and isinstance(to[0], Mapping) else {}
        sent_from = raw.get("from") if isinstance(raw.get("from"), Mapping) else {}
        related = raw.get("related") if isinstance(raw.get("related"), list) else []
        operation_id = next(
            (
                r["id"]
                for r in related
                if isinstance(r, Mapping)
                and r.get("name") == "OPERATION"
                and isinstance(r.get("id"), str)
            ),
            None,
        )
        return cls(
            id=raw["id"],
            status=_text(raw, "status").upper(),
            to_address=_text(first, "address"),
            to_channel=_text(first, "channel").upper(),
            operation_id=operation_id,
            sender_id=_optional_text(sent_from, "senderId"),
            sender_pool_id=_optional_text(sent_from, "senderPoolId"),
            tags=_strings(raw, "tags"),
            scheduled_for=_optional_text(raw, "scheduledFor"),
            created_at=_optional_text(raw, "createdAt"),
            updated_at=_optional_text(raw, "updatedAt"),
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """One `to` entry: an E.164 address, PHONE or WHATSAPP, and its template variables."""

    address: str
    channel: str = "PHONE"
    variables: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"address": self.address, "channel": self.channel}
        if self.variables:
            entry["variables"] = dict(self.variables)
        return entry


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """The body of one `POST /Messages`: 1 to 10,000 recipients of one template.

    Give exactly one of `sender_pool_id` / `sender_id`, and exactly one of `text` /
    `content_id`. `send_at` is an RFC 3339 string, at most 7 days ahead.
    """

    recipients: Sequence[Recipient]
    sender_pool_id: str | None = None
    sender_id: str | None = None
    text: str | None = None
    content_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    send_at: str | None = None

    def __post_init__(self) -> None:
        if (self.sender_pool_id is None) == (self.sender_id is None):
            raise ValueError("give exactly one of sender_pool_id and sender_id")
        if (self.text is None) == (self.content_id is None):
            raise ValueError("give exactly one of text and content_id")
        if not 1 <= len(self.recipients) <= 10_000:
            raise ValueError(f"a batch holds 1 to 10,000 recipients, not {len(self.recipients)}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": (
                {"senderPoolId": self.sender_pool_id}
                if self.sender_pool_id is not None
                else {"senderId": self.sender_id}
            ),
            "to": [recipient.to_json() for recipient in self.recipients],
            "content": (
                {"text": self.text} if self.text is not None else {"contentId": self.content_id}
            ),
        }
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.send_at is not None:
            body["schedule"] = {"sendAt": self.send_at}
        return body
