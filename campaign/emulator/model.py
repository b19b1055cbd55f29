"""The emulator's records: senders, pools, operations and messages, and their JSON shapes.

Messages are the bulk of memory (millions of them), so a Message holds only what cannot be
derived: its status is computed from the delivery plan and the clock when asked
(see `delivery.py`), and its id from its sequence number.
"""

from __future__ import annotations

import enum
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHANNELS_FROM",
    "CHANNELS_TO",
    "DEFAULT_RATE_PER_S",
    "NO_SENDER",
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
    # Slots taken later on by scheduled sends, as sorted, disjoint [start, end] pairs that all
    # lie beyond next_free_s; the gaps before them stay free for sends made now.
    reserved: list[list[float]] = field(default_factory=list)

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
    """One accepted request, with its recipients stored column by column.

    Millions of recipients stay small this way (no object per recipient); a `Message` is a
    view made on demand by `message(index)`.
    """

    id: str
    # Messages of one request have consecutive sequence numbers: [first_seq, first_seq + count).
    first_seq: int
    count: int
    created_at: float  # wall clock, epoch seconds
    accepted_emu_s: float  # emulated delivery clock when accepted
    send_at_emu_s: float  # emulated second delivery may start (later when scheduled)
    scheduled_for: float | None  # wall clock of schedule.sendAt, when given
    from_pool_id: str | None
    tag_keys: tuple[str, ...]
    addresses: list[str]
    whatsapp: bytearray  # 1 where the recipient's channel is WHATSAPP, 0 for PHONE
    # Per tag key: one rendered value per recipient, or the one value all recipients share.
    tag_columns: tuple[list[str] | str, ...]
    senders: list[Sender]  # the senders this request used; sender_index points into it
    sender_index: bytearray  # NO_SENDER when no sender can reach the recipient
    routes: bytearray  # Route values
    send_emu_s: array[float]  # emulated second the final attempt leaves its sender

    def tag_values(self, index: int) -> tuple[str, ...]:
        return tuple(c if isinstance(c, str) else c[index] for c in self.tag_columns)

    def message(self, index: int) -> Message:
        sender_at = self.sender_index[index]
        return Message(
            seq=self.first_seq + index,
            operation=self,
            address=self.addresses[index],
            channel="WHATSAPP" if self.whatsapp[index] else "PHONE",
            tag_values=self.tag_values(index),
            sender=None if sender_at == NO_SENDER else self.senders[sender_at],
            route=Route(self.routes[index]),
            send_emu_s=self.send_emu_s[index],
        )


NO_SENDER = 255


@dataclass(frozen=True, slots=True)
class Message:
    """One recipient of an operation, as the API shows it."""

    seq: int
    operation: MessageOperation
    address: str
    channel: str  # the recipient's channel: PHONE or WHATSAPP
    tag_values: tuple[str, ...]
    sender: Sender | None
    route: Route
    # Emulated second the final attempt leaves its sender (or the request is given up).
    send_emu_s: float
