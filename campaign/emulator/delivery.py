"""What happens behind the 202: each sender drains its own queue at its own rate.

Nothing runs in the background. When a request is accepted, every recipient gets a plan:
which sender carries it, whether RCS is tried first and falls back to SMS, and the emulated
second it leaves its sender's queue. Its status at any later moment is a pure function of
that plan and the clock, so millions of queued messages cost no timers and tests move time
by moving a fake clock.
"""

from __future__ import annotations

import bisect
import math
import time
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from campaign.emulator.model import (
    NO_SENDER,
    Message,
    MessageOperation,
    MessageStatus,
    Route,
    Sender,
)

__all__ = [
    "BatchPlan",
    "Clock",
    "DeliveryProfile",
    "Routes",
    "attempts_of",
    "operation_stats",
    "plan_batch",
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


_MODULUS = 100_003


def _fraction(address: str, salt: int) -> float:
    """A stable number in [0, 1) for an address: the same handset always behaves the same."""
    return _spread(zlib.crc32(address.encode()), salt)


def _spread(digest: int, salt: int) -> float:
    return ((digest * _SPREAD_FACTOR + salt * 40503) % _MODULUS) / _MODULUS


_SENDING_CHANNELS = ("RCS", "SMS", "WHATSAPP")


@dataclass(frozen=True, slots=True)
class Routes:
    """The senders a request may use, grouped by channel, worked out once per pool."""

    by_channel: dict[str, list[Sender]]
    senders: list[Sender]  # every usable sender; a message stores its position in this list
    position: dict[int, int]  # id(sender) -> position in `senders`
    pool_id: str | None  # None when the request names one sender

    @classmethod
    def of(cls, senders: Iterable[Sender], pool_id: str | None) -> Routes:
        by_channel: dict[str, list[Sender]] = {}
        for sender in senders:
            if sender.status == "ACTIVATED" and sender.channel in _SENDING_CHANNELS:
                by_channel.setdefault(sender.channel, []).append(sender)
        usable = [s for channel in _SENDING_CHANNELS for s in by_channel.get(channel, ())]
        return cls(by_channel, usable, {id(s): i for i, s in enumerate(usable)}, pool_id)


@dataclass(slots=True)
class BatchPlan:
    """Where each recipient of one request goes, column by column (see MessageOperation)."""

    senders: list[Sender]
    sender_index: bytearray
    routes: bytearray
    send_emu_s: array[float]


def plan_batch(  # noqa: PLR0915 - the per-recipient loop stays inline for speed
    addresses: list[str],
    whatsapp: bytearray,
    segments: list[int],
    ready_s: float,
    now_s: float,
    routes: Routes,
    profile: DeliveryProfile,
) -> BatchPlan:
    """Choose each recipient's sender and route, and reserve its slot in that sender's queue.

    PHONE recipients whose handset supports RCS (decided from the number) go to an RCS
    sender when the pool has one; a share of those attempts fail and fall back to SMS.
    Other PHONE recipients go to SMS, WHATSAPP ones to WhatsApp; with no such sender a
    recipient is unaddressable. Each sender's queue drains at its rate, and whatever would
    wait longer than the channel's queue lifetime expires instead. A scheduled send
    (`ready_s` after `now_s`) takes slots at its time without delaying sends made now.
    """
    count = len(addresses)
    scheduled = ready_s > now_s
    by_channel, position = routes.by_channel, routes.position
    plan = BatchPlan(
        routes.senders, bytearray(count), bytearray(count), array("d", bytes(8 * count))
    )
    sender_index, route_of, send_times = plan.sender_index, plan.routes, plan.send_emu_s
    rcs = _Lanes(by_channel.get("RCS", []))
    sms = _Lanes(by_channel.get("SMS", []))
    wa = _Lanes(by_channel.get("WHATSAPP", []))
    # Integer thresholds on the address hash: the same verdicts as _spread(...) < share.
    capable_below = math.ceil(profile.rcs_capable_share * _MODULUS) if rcs.senders else -1
    failure_below = math.ceil(profile.rcs_failure_share * _MODULUS) if sms.senders else -1
    sms_ttl, wa_ttl = profile.sms_queue_ttl_s, profile.whatsapp_queue_ttl_s
    fallback_delay = profile.sent_to_final_s
    crc32 = zlib.crc32
    direct, fallback, expired = int(Route.DIRECT), int(Route.RCS_FALLBACK), int(Route.EXPIRED)
    for index in range(count):
        route = direct
        start = ready_s
        if whatsapp[index]:
            lanes, ttl = wa, wa_ttl
        else:
            lanes, ttl = sms, sms_ttl
            if capable_below > 0:
                digest = crc32(addresses[index].encode()) * _SPREAD_FACTOR
                if (digest + _SALT_1) % _MODULUS < capable_below:
                    lanes = rcs
                    if (digest + _SALT_2) % _MODULUS < failure_below:
                        # The RCS attempt takes its slot and fails; then SMS is queued.
                        rcs_sender = rcs.pick()
                        rcs_busy_s = segments[index] / rcs_sender.rate_per_s
                        if scheduled or rcs_sender.reserved:
                            rcs_start = _find_slot(rcs_sender, ready_s, rcs_busy_s)
                            _take_slot(rcs_sender, rcs_start, rcs_busy_s, now_s)
                        else:
                            rcs_start = max(ready_s, rcs_sender.next_free_s)
                            rcs_sender.next_free_s = rcs_start + rcs_busy_s
                        start = rcs_start + fallback_delay
                        route = fallback
                        lanes = sms
        if not lanes.senders:
            sender_index[index] = NO_SENDER
            route_of[index] = Route.UNADDRESSABLE
            send_times[index] = ready_s
            continue
        sender = lanes.pick()
        busy_s = segments[index] / sender.rate_per_s
        careful = scheduled or sender.reserved
        slot = _find_slot(sender, start, busy_s) if careful else max(start, sender.next_free_s)
        if slot - ready_s > ttl:
            # Twilio drops what has waited too long; the queue does not advance for it.
            route = expired
            slot = ready_s + ttl
        elif careful:
            _take_slot(sender, slot, busy_s, now_s)
        else:
            sender.next_free_s = slot + busy_s
        sender_index[index] = position[id(sender)]
        route_of[index] = route
        send_times[index] = slot
    return plan


def _find_slot(sender: Sender, earliest_s: float, busy_s: float) -> float:
    """The first moment from `earliest_s` on when the sender is free for `busy_s` seconds."""
    slot = max(earliest_s, sender.next_free_s)
    for start, end in sender.reserved:
        if slot + busy_s <= start:
            break
        slot = max(slot, end)
    return slot


def _take_slot(sender: Sender, slot_s: float, busy_s: float, now_s: float) -> None:
    """Mark [slot_s, slot_s + busy_s) taken, found free by _find_slot."""
    end_s = slot_s + busy_s
    reserved = sender.reserved
    if slot_s <= max(now_s, sender.next_free_s):
        # Right after the queue's current work (or now, when idle): the queue moves on, and
        # swallows the scheduled blocks it has reached.
        sender.next_free_s = end_s
        while reserved and reserved[0][0] <= end_s:
            sender.next_free_s = max(sender.next_free_s, reserved.pop(0)[1])
        return
    at = bisect.bisect_left(reserved, slot_s, key=_block_start)
    if at > 0 and reserved[at - 1][1] == slot_s:
        reserved[at - 1][1] = end_s  # extends the block before, the usual case in a batch
        at -= 1
    else:
        reserved.insert(at, [slot_s, end_s])
    if at + 1 < len(reserved) and reserved[at + 1][0] <= reserved[at][1]:
        reserved[at][1] = max(reserved[at][1], reserved.pop(at + 1)[1])


def _block_start(block: list[float]) -> float:
    return block[0]


_SPREAD_FACTOR = 2654435761
_SALT_1 = 1 * 40503
_SALT_2 = 2 * 40503


class _Lanes:
    """The senders of one channel, handing out the one whose queue frees up first.

    Only the sender just picked gets busier, so it stays the pick until it passes the next
    least busy one; that saves a scan of all senders for most recipients.
    """

    __slots__ = ("best", "senders", "threshold_s")

    def __init__(self, senders: list[Sender]) -> None:
        self.senders = senders
        self.best: Sender | None = None
        self.threshold_s = 0.0

    def pick(self) -> Sender:
        best = self.best
        if best is not None and best.next_free_s <= self.threshold_s:
            return best
        senders = self.senders
        best = min(senders, key=_next_free)
        self.best = best
        self.threshold_s = min((s.next_free_s for s in senders if s is not best), default=math.inf)
        return best


def _next_free(sender: Sender) -> float:
    return sender.next_free_s


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
