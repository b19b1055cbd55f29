"""The emulator's records: senders, pools, operations and messages, and their JSON shapes.

Messages are the bulk of memory (millions of them), so a Message holds only what cannot be
derived: its status is computed from the delivery plan and the clock when asked
(see `delivery.py`), and its id from its sequence number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHANNELS_FROM",
    "CHANNELS_TO",
    "DEFAULT_RATE_PER_S",
    "SENDER_CHANNELS",
    "Message",
    "MessageOperation",
    "MessageStatus",
    "PoolOperation",
    "Route",
    "Sender",
    "SenderPool",
    "iso",
]

SENDER_CHANNELS = ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH")
CHANNELS_TO = ("PHONE", "WHATSAPP")
CHANNELS_FROM = ("SMS", "RCS", "WHATSAPP")

# Message segments per second each kind of sender delivers (comms-api.md, throughput facts).
DEFAULT_RATE_PER_S = {
    "long_code": 1.0,
    "toll_free": 3.0,
    "short_code": 100.0,
    "whatsapp": 10.0,
    "rcs": 10.0,
    "email": 100.0,
    "push": 100.0,
}


def iso(epoch_s: float) -> str:
    """RFC 3339 in UTC with milliseconds, so that date windows can be drawn tightly."""
    stamp = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class MessageStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    UNDELIVERED = "UNDELIVERED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class Route(enum.IntEnum):
    """How a recipient is reached; decided once, when the request is accepted."""

    DIRECT = 0  # the first channel tried is the one that delivers
    RCS_FALLBACK = 1  # RCS was tried and failed, then SMS (two attempts)
    UNADDRESSABLE = 2  # no sender in the pool can reach this recipient
    EXPIRED = 3  # waited longer than the channel's queue lifetime: fails without sending


@dataclass(slots=True, eq=False)
class Sender:
    id: str
    display_name: str
    channel: str
    address: str
    status: str
    tags: dict[str, str]
    created_at: float
    updated_at: float
    kind: str
    rate_per_s: float
    # Emulated second at which this sender's queue is next free: the queue drains at rate_per_s.
    next_free_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "channel": self.channel,
            "address": self.address,
            "status": self.status,
            "tags": self.tags,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass(slots=True, eq=False)
class SenderPool:
    id: str
    name: str
    tags: dict[str, str]
    created_at: float
    updated_at: float
    sender_ids: list[str] = field(default_factory=list)
    operation_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tags": self.tags,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass(slots=True, eq=False)
class PoolOperation:
    id: str
    pool_id: str
    total: int
    created: int
    failed: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": "COMPLETED",
            "stats": {
                "total": self.total,
                "queued": 0,
                "created": self.created,
                "failed": self.failed,
            },
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.created_at),
        }


@dataclass(slots=True, eq=False)
class MessageOperation:
    id: str
    # Messages of one request are stored contiguously: [first_seq, first_seq + count).
    first_seq: int
    count: int
    created_at: float  # wall clock, epoch seconds
    accepted_emu_s: float  # emulated delivery clock when accepted
    send_at_emu_s: float  # emulated second delivery may start (later when scheduled)
    scheduled_for: float | None  # wall clock of schedule.sendAt, when given
    from_pool_id: str | None
    tag_keys: tuple[str, ...]


@dataclass(slots=True, eq=False)
class Message:
    seq: int
    operation: MessageOperation
    address: str
    channel: str  # the recipient's channel: PHONE or WHATSAPP
    tag_values: tuple[str, ...]
    sender: Sender | None
    route: Route
    # Emulated second the final attempt leaves its sender (or the request is given up).
    send_emu_s: float
