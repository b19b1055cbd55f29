"""What happens behind the 202: each sender drains its own queue at its own rate.

Nothing runs in the background. When a request is accepted, every recipient gets a plan:
which sender carries it, whether RCS is tried first and falls back to SMS, and the emulated
second it leaves its sender's queue. Its status at any later moment is a pure function of
that plan and the clock, so millions of queued messages cost no timers and tests move time
by moving a fake clock.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from campaign.emulator.model import Message, MessageOperation, MessageStatus, Route, Sender

__all__ = [
    "Clock",
    "DeliveryProfile",
    "Plan",
    "attempts_of",
    "operation_stats",
    "plan_recipient",
    "status_of",
]

_TERMINAL = frozenset(
    {MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.UNDELIVERED, MessageStatus.FAILED}
)


class Clock:
    """Wall time for timestamps, and an emulated delivery clock that runs `speed` times faster.

    Timestamps (`createdAt`) stay on the real wall clock so that a client's date-window
    queries still line up; only delivery progress is accelerated.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._monotonic = monotonic
        self._wall = wall
        self._mono0 = monotonic()
        self._wall0 = wall()

    def wall_s(self) -> float:
        return self._wall()

    def mono_s(self) -> float:
        """Real seconds on a monotonic clock: rate limits count these, not emulated ones."""
        return self._monotonic()

    def emu_s(self) -> float:
        return (self._monotonic() - self._mono0) * self.speed

    def wall_of(self, emu_s: float) -> float:
        """The wall-clock moment an emulated second corresponds to."""
        return self._wall0 + emu_s / self.speed

    def __repr__(self) -> str:
        return f"<Clock speed={self.speed} emu_s={self.emu_s():.3f}>"


@dataclass(frozen=True, slots=True)
class DeliveryProfile:
    """Shares and delays of the simulated handsets and carriers (all seconds are emulated)."""

    rcs_capable_share: float = 0.6  # handsets that support RCS, decided from the number
    rcs_failure_share: float = 0.1  # RCS attempts that fail and fall back to SMS
    undelivered_share: float = 0.02
    failed_share: float = 0.01
    read_share: float = 0.5  # of delivered RCS/WhatsApp messages, those later READ
    sent_to_final_s: float = 2.0
    delivered_to_read_s: float = 5.0
    sms_queue_ttl_s: float = 10 * 3600.0  # queued SMS fail after about 10 hours
    whatsapp_queue_ttl_s: float = 4 * 3600.0


def _fraction(address: str, salt: int) -> float:
    """A stable number in [0, 1) for an address: the same handset always behaves the same."""
    return ((zlib.crc32(address.encode()) * 2654435761 + salt * 40503) % 100_003) / 100_003


@dataclass(frozen=True, slots=True)
class Plan:
    sender: Sender | None
    route: Route
    send_emu_s: float


def _take_slot(sender: Sender, ready_s: float, segments: int) -> float:
    start = max(ready_s, sender.next_free_s)
    sender.next_free_s = start + segments / sender.rate_per_s
    return start


def _least_loaded(senders: Sequence[Sender]) -> Sender:
    if len(senders) == 1:
        return senders[0]
    return min(senders, key=lambda s: s.next_free_s)


def plan_recipient(
    address: str,
    channel: str,
    segments: int,
    ready_s: float,
    by_channel: dict[str, list[Sender]],
    profile: DeliveryProfile,
) -> Plan:
    """Choose the sender and route for one recipient and reserve its slot in that queue."""
    if channel == "WHATSAPP":
        candidates = by_channel.get("WHATSAPP")
        ttl = profile.whatsapp_queue_ttl_s
        route = Route.DIRECT
    else:
        rcs = by_channel.get("RCS")
        sms = by_channel.get("SMS")
        ttl = profile.sms_queue_ttl_s
        if rcs and _fraction(address, 1) < profile.rcs_capable_share:
            rcs_sender = _least_loaded(rcs)
            if not (sms and _fraction(address, 2) < profile.rcs_failure_share):
                return _planned(rcs_sender, Route.DIRECT, ready_s, segments, ttl)
            # The RCS attempt takes its slot, fails after the usual delay, then SMS is queued.
            failed_at = _take_slot(rcs_sender, ready_s, segments) + profile.sent_to_final_s
            return _planned(
                _least_loaded(sms), Route.RCS_FALLBACK, failed_at, segments, ttl, ready_s
            )
        candidates = sms
        route = Route.DIRECT
    if not candidates:
        return Plan(None, Route.UNADDRESSABLE, ready_s)
    return _planned(_least_loaded(candidates), route, ready_s, segments, ttl)


def _planned(
    sender: Sender,
    route: Route,
    ready_s: float,
    segments: int,
    ttl_s: float,
    queued_since_s: float | None = None,
) -> Plan:
    since = ready_s if queued_since_s is None else queued_since_s
    if max(ready_s, sender.next_free_s) - since > ttl_s:
        # Twilio drops what has waited too long; the sender's queue does not advance for it.
        return Plan(sender, Route.EXPIRED, since + ttl_s)
    return Plan(sender, route, _take_slot(sender, ready_s, segments))


def status_of(
    message: Message, now_s: float, profile: DeliveryProfile
) -> tuple[MessageStatus, float]:
    """The message's status at emulated second `now_s`, and the emulated second it began."""
    op = message.operation
    if now_s < op.send_at_emu_s:
        return MessageStatus.SCHEDULED, op.accepted_emu_s
    route = message.route
    if route is Route.UNADDRESSABLE:
        return MessageStatus.FAILED, op.send_at_emu_s
    sent_at = message.send_emu_s
    if route is Route.EXPIRED:
        if now_s < sent_at:
            return MessageStatus.QUEUED, op.send_at_emu_s
        return MessageStatus.FAILED, sent_at
    if now_s < sent_at:
        return MessageStatus.QUEUED, op.send_at_emu_s
    final_at = sent_at + profile.sent_to_final_s
    if now_s < final_at:
        return MessageStatus.SENT, sent_at
    outcome = _fraction(message.address, message.seq)
    if outcome < profile.failed_share:
        return MessageStatus.FAILED, final_at
    if outcome < profile.failed_share + profile.undelivered_share:
        return MessageStatus.UNDELIVERED, final_at
    sender = message.sender
    readable = sender is not None and sender.channel in ("RCS", "WHATSAPP")
    read_at = final_at + profile.delivered_to_read_s
    if readable and now_s >= read_at and _fraction(message.address, 3) < profile.read_share:
        return MessageStatus.READ, read_at
    return MessageStatus.DELIVERED, final_at


def attempts_of(message: Message, now_s: float) -> int:
    """Channel attempts made so far: an RCS attempt that fell back to SMS counts as two."""
    route = message.route
    if route in (Route.UNADDRESSABLE, Route.EXPIRED) or now_s < message.operation.send_at_emu_s:
        return 0
    sent = now_s >= message.send_emu_s
    if route is Route.RCS_FALLBACK:
        # The RCS attempt happened before the SMS one was queued.
        return 2 if sent else 1
    return 1 if sent else 0


def operation_stats(
    op: MessageOperation, messages: Iterable[Message], now_s: float, profile: DeliveryProfile
) -> tuple[str, dict[str, int]]:
    """The operation's status and its `stats` object, counted from its messages now."""
    counts = dict.fromkeys(
        (
            "scheduled",
            "queued",
            "sent",
            "delivered",
            "read",
            "undelivered",
            "unaddressable",
            "failed",
            "canceled",
        ),
        0,
    )
    attempts = 0
    unfinished = 0
    for message in messages:
        attempts += attempts_of(message, now_s)
        if message.route is Route.UNADDRESSABLE:
            counts["unaddressable"] += 1
            continue
        status, _ = status_of(message, now_s, profile)
        counts[status.value.lower()] += 1
        if status not in _TERMINAL:
            unfinished += 1
    state = "SCHEDULED" if now_s < op.send_at_emu_s else "PROCESSING" if unfinished else "COMPLETED"
    return state, {"total": op.count, "recipients": op.count, "attempts": attempts, **counts}
