"""Delivery behind the 202, driven by a fake clock: rates, RCS fallback, expiry, schedules, stats."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import (
    CERTAIN,
    DELIVERY_ACCOUNT,
    T0_WALL,
    Api,
    FakeTime,
    Launcher,
    phone,
    recipients,
    send_body,
)

from campaign.emulator import SAMPLE_POOL_ID, DeliveryProfile

STAT_STATUSES = (
    "scheduled",
    "queued",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "unaddressable",
    "failed",
    "canceled",
)
RANK = {"SCHEDULED": 0, "QUEUED": 1, "SENT": 2, "DELIVERED": 3, "UNDELIVERED": 3, "FAILED": 3}
RANK["READ"] = 4


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _profile(**changes: Any) -> DeliveryProfile:
    return dataclasses.replace(CERTAIN, **changes)


@pytest.fixture
async def api(launch: Launcher) -> AsyncIterator[Api]:
    """The delivery account (one pool per kind of sender), with no random outcomes."""
    async with launch(data=DELIVERY_ACCOUNT, profile=CERTAIN) as client:
        yield client


async def _send(api: Api, pool: str, to: list[dict[str, Any]], **extra: Any) -> str:
    return await api.send(send_body(to, pool=await api.pool_named(pool), **extra))


def _assert_stats_add_up(operation: dict[str, Any]) -> None:
    stats = operation["stats"]
    assert stats["total"] == stats["recipients"]
    assert sum(stats[name] for name in STAT_STATUSES) == stats["total"]


# QUEUED -> SENT -> DELIVERED on a long code


@pytest.mark.parametrize(
    ("at_s", "expected", "state"),
    [
        (0.0, ["SENT", "QUEUED", "QUEUED"], "PROCESSING"),
        (0.99, ["SENT", "QUEUED", "QUEUED"], "PROCESSING"),
        (1.0, ["SENT", "SENT", "QUEUED"], "PROCESSING"),
        (2.0, ["DELIVERED", "SENT", "SENT"], "PROCESSING"),
        (3.5, ["DELIVERED", "DELIVERED", "SENT"], "PROCESSING"),
        (4.0, ["DELIVERED", "DELIVERED", "DELIVERED"], "COMPLETED"),
        (86_400.0, ["DELIVERED", "DELIVERED", "DELIVERED"], "COMPLETED"),
    ],
)
async def test_long_code_progresses_queued_sent_delivered(
    api: Api, fake_time: FakeTime, at_s: float, expected: list[str], state: str
) -> None:
    """On a 1/s long code, messages leave the queue one a second and are DELIVERED 2 s after SENT."""
    operation_id = await _send(api, "long_code", recipients(3))
    fake_time.at(at_s)
    assert await api.statuses(operation_id) == expected
    operation = await api.operation(operation_id)
    assert operation["status"] == state
    assert operation["stats"]["queued"] == expected.count("QUEUED")
    assert operation["stats"]["sent"] == expected.count("SENT")
    assert operation["stats"]["delivered"] == expected.count("DELIVERED")
    _assert_stats_add_up(operation)


async def test_message_updated_at_follows_its_status(api: Api, fake_time: FakeTime) -> None:
    """A message's updatedAt is the moment it took its current status."""
    operation_id = await _send(api, "long_code", recipients(2))
    fake_time.at(10)
    second = (await api.messages(operation_id))[1]
    assert second["status"] == "DELIVERED"
    assert second["updatedAt"].startswith(_iso(T0_WALL + 3)[:19])
    assert second["createdAt"].startswith(_iso(T0_WALL)[:19])


# Per-sender rates


@pytest.mark.parametrize(
    ("pool", "channel", "rate"),
    [
        ("long_code", "PHONE", 1),
        ("toll_free", "PHONE", 3),
        ("short_code", "PHONE", 100),
        ("whatsapp", "WHATSAPP", 10),
        ("rcs", "PHONE", 10),
    ],
)
@pytest.mark.parametrize(("at_s", "queued_extra"), [(0.995, "rate+1"), (1.995, "1"), (2.001, "0")])
async def test_each_sender_drains_its_queue_at_its_rate(
    launch: Launcher,
    fake_time: FakeTime,
    pool: str,
    channel: str,
    rate: int,
    at_s: float,
    queued_extra: str,
) -> None:
    """2*rate+1 recipients leave a sender's queue over exactly 2 s: long code 1/s, toll-free 3/s, short code 100/s, WhatsApp and RCS 10/s."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(rcs_capable_share=1.0)) as api:
        operation_id = await _send(api, pool, recipients(2 * rate + 1, channel))
        fake_time.at(at_s)
        operation = await api.operation(operation_id)
    expected = {"rate+1": rate + 1, "1": 1, "0": 0}[queued_extra]
    assert operation["stats"]["queued"] == expected
    assert operation["stats"]["unaddressable"] == 0


@pytest.mark.parametrize(
    ("at_s", "expected"), [(1.99, ["SENT", "QUEUED"]), (2.0, ["DELIVERED", "SENT"])]
)
async def test_long_code_rate_counts_segments(
    api: Api, fake_time: FakeTime, at_s: float, expected: list[str]
) -> None:
    """A long code sends one segment a second: after a 2-segment message the next waits 2 s."""
    to = recipients(2)
    to[0]["variables"] = {"body": "a" * 200}
    to[1]["variables"] = {"body": "b"}
    operation_id = await _send(api, "long_code", to, text="{{ body }}")
    fake_time.at(at_s)
    assert await api.statuses(operation_id) == expected


async def test_senders_of_a_pool_share_the_load(api: Api) -> None:
    """Two long codes in a pool each carry half of the recipients, so twice as many leave at once."""
    operation_id = await _send(api, "two_long_codes", recipients(4))
    messages = await api.messages(operation_id)
    assert [m["status"] for m in messages].count("SENT") == 2
    senders = [m["from"]["senderId"] for m in messages]
    assert len(set(senders)) == 2
    assert senders.count(senders[0]) == 2


@pytest.mark.parametrize(("at_s", "third"), [(1.5, "QUEUED"), (2.0, "SENT")])
async def test_a_sender_queue_carries_over_between_requests(
    api: Api, fake_time: FakeTime, at_s: float, third: str
) -> None:
    """A second request to the same sender queues behind the first."""
    await _send(api, "long_code", recipients(2))
    later = await _send(api, "long_code", recipients(1, start=2))
    fake_time.at(at_s)
    assert await api.statuses(later) == [third]


@pytest.mark.parametrize(
    ("at_s", "expected"),
    [(0.15, ["SENT", "SENT", "QUEUED"]), (0.45, ["DELIVERED", "DELIVERED", "DELIVERED"])],
)
async def test_speed_makes_delivery_time_pass_faster(
    launch: Launcher, fake_time: FakeTime, at_s: float, expected: list[str]
) -> None:
    """With speed=10, a 1/s long code sends ten messages a real second."""
    async with launch(data=DELIVERY_ACCOUNT, profile=CERTAIN, speed=10) as api:
        operation_id = await _send(api, "long_code", recipients(3))
        fake_time.at(at_s)
        assert await api.statuses(operation_id) == expected


# RCS first, SMS fallback


@pytest.mark.parametrize(("capable", "channel"), [(1.0, "RCS"), (0.0, "SMS")])
async def test_rcs_first_for_capable_handsets(
    launch: Launcher, fake_time: FakeTime, capable: float, channel: str
) -> None:
    """A PHONE recipient goes by RCS when the handset supports it, otherwise by SMS; one attempt."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(rcs_capable_share=capable)) as api:
        operation_id = await _send(api, "rcs_sms", recipients(1))
        fake_time.at(5)
        (message,) = await api.messages(operation_id)
        operation = await api.operation(operation_id)
    assert message["from"]["channel"] == channel
    assert message["status"] == "DELIVERED"
    assert operation["stats"]["attempts"] == 1


@pytest.mark.parametrize(
    ("at_s", "status", "attempts"),
    [(0.0, "QUEUED", 1), (1.99, "QUEUED", 1), (2.0, "SENT", 2), (4.0, "DELIVERED", 2)],
)
async def test_failed_rcs_falls_back_to_sms(
    launch: Launcher, fake_time: FakeTime, at_s: float, status: str, attempts: int
) -> None:
    """A failed RCS attempt falls back to SMS; each channel tried counts one attempt."""
    profile = _profile(rcs_capable_share=1.0, rcs_failure_share=1.0)
    async with launch(data=DELIVERY_ACCOUNT, profile=profile) as api:
        operation_id = await _send(api, "rcs_sms", recipients(1))
        fake_time.at(at_s)
        (message,) = await api.messages(operation_id)
        operation = await api.operation(operation_id)
    assert message["status"] == status
    assert operation["stats"]["attempts"] == attempts
    if status != "QUEUED":
        assert message["from"]["channel"] == "SMS"


async def test_rcs_capability_is_decided_by_the_number(
    launch: Launcher, fake_time: FakeTime
) -> None:
    """With the default profile, whether a handset takes RCS depends only on its number."""
    async with launch() as api:
        first = await api.send(send_body(recipients(40)))
        second = await api.send(send_body(list(reversed(recipients(40)))))
        fake_time.at(3600)
        by_first = {m["to"][0]["address"]: m["from"]["channel"] for m in await api.messages(first)}
        by_second = {
            m["to"][0]["address"]: m["from"]["channel"] for m in await api.messages(second)
        }
    assert by_first == by_second
    assert set(by_first.values()) == {"RCS", "SMS"}


async def test_mixed_sample_pool_routes_each_channel(launch: Launcher) -> None:
    """The sample pool sends WHATSAPP recipients by WhatsApp and PHONE ones by RCS or SMS."""
    async with launch() as api:
        operation_id = await api.send(send_body(recipients(10) + recipients(5, "WHATSAPP", 50)))
        messages = await api.messages(operation_id)
    assert {m["from"]["channel"] for m in messages[10:]} == {"WHATSAPP"}
    assert {m["from"]["channel"] for m in messages[:10]} <= {"RCS", "SMS"}
    assert all(m["from"]["senderPoolId"] == SAMPLE_POOL_ID for m in messages)


# Unaddressable recipients


@pytest.mark.parametrize(
    ("pool", "channel"),
    [("long_code", "WHATSAPP"), ("rcs_sms", "WHATSAPP"), ("whatsapp", "PHONE"), ("rcs", "PHONE")],
)
async def test_recipient_no_sender_can_reach_is_unaddressable(
    api: Api, fake_time: FakeTime, pool: str, channel: str
) -> None:
    """A recipient no sender in the pool can reach is accepted and counted as unaddressable."""
    reachable = "PHONE" if channel == "WHATSAPP" else "WHATSAPP"
    if pool == "rcs":
        reachable = None  # an RCS-only pool and handsets without RCS: nobody is reachable
    to = recipients(2, channel) + (recipients(1, reachable, start=10) if reachable else [])
    operation_id = await _send(api, pool, to)
    fake_time.at(60)
    operation = await api.operation(operation_id)
    assert operation["stats"]["unaddressable"] == 2
    assert operation["stats"]["total"] == len(to)
    assert operation["status"] == "COMPLETED"
    _assert_stats_add_up(operation)
    listed = (await api.get("/_emulator/messages", params={"operationId": operation_id})).body
    assert [m["unaddressable"] for m in listed["messages"]] == [True, True] + [False] * (
        len(to) - 2
    )


async def test_whatsapp_recipient_in_whatsapp_pool_is_delivered(
    api: Api, fake_time: FakeTime
) -> None:
    """A WHATSAPP recipient in a pool with a WhatsApp sender is delivered by WhatsApp."""
    operation_id = await _send(api, "sms_whatsapp", recipients(1, "WHATSAPP"))
    fake_time.at(5)
    (message,) = await api.messages(operation_id)
    assert message["from"]["channel"] == "WHATSAPP"
    assert message["status"] == "DELIVERED"


# Queue expiry


async def test_queued_sms_fail_after_about_10_hours(api: Api, fake_time: FakeTime) -> None:
    """On a sender of 1 message per 100 s, the 362nd message would wait past 10 h: it fails unsent."""
    operation_id = await _send(api, "slow", recipients(362))
    fake_time.at(35_999)
    assert (await api.statuses(operation_id))[-2:] == ["QUEUED", "QUEUED"]
    fake_time.at(36_000.5)
    assert (await api.statuses(operation_id))[-2:] == ["SENT", "FAILED"]
    operation = await api.operation(operation_id)
    assert operation["stats"]["failed"] == 1
    assert operation["stats"]["attempts"] == 361


@pytest.mark.parametrize(
    ("pool", "channel", "ttl", "count", "expired"),
    [
        ("long_code", "PHONE", {"sms_queue_ttl_s": 3.0}, 6, 2),
        ("whatsapp", "WHATSAPP", {"whatsapp_queue_ttl_s": 1.0}, 15, 4),
    ],
)
async def test_queue_expiry_after_the_ttl(
    launch: Launcher,
    fake_time: FakeTime,
    pool: str,
    channel: str,
    ttl: dict[str, float],
    count: int,
    expired: int,
) -> None:
    """Messages that would wait longer than the channel's queue TTL fail at the TTL without being sent."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(**ttl)) as api:
        operation_id = await _send(api, pool, recipients(count, channel))
        fake_time.at(next(iter(ttl.values())) + 0.01)
        statuses = await api.statuses(operation_id)
        fake_time.at(3600)
        operation = await api.operation(operation_id)
    assert statuses[-expired:] == ["FAILED"] * expired
    assert "FAILED" not in statuses[:-expired]
    assert operation["stats"]["failed"] == expired
    assert operation["stats"]["delivered"] == count - expired
    assert operation["status"] == "COMPLETED"


async def test_expired_messages_do_not_hold_the_queue(
    launch: Launcher, fake_time: FakeTime
) -> None:
    """After expired messages, a new request to the same sender is queued only behind those sent."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(sms_queue_ttl_s=3.0)) as api:
        await _send(api, "long_code", recipients(10))
        fake_time.at(3.5)
        later = await _send(api, "long_code", recipients(1, start=10))
        fake_time.at(4.0)
        assert await api.statuses(later) == ["SENT"]


# Scheduled sends


@pytest.mark.parametrize(
    ("at_s", "state", "statuses"),
    [
        (0, "SCHEDULED", ["SCHEDULED", "SCHEDULED"]),
        (3599, "SCHEDULED", ["SCHEDULED", "SCHEDULED"]),
        (3600, "PROCESSING", ["SENT", "QUEUED"]),
        (3603, "COMPLETED", ["DELIVERED", "DELIVERED"]),
    ],
)
async def test_scheduled_send_waits_for_send_at(
    api: Api, fake_time: FakeTime, at_s: float, state: str, statuses: list[str]
) -> None:
    """A send with schedule.sendAt stays SCHEDULED until then, then is delivered as usual."""
    send_at = _iso(T0_WALL + 3600)
    operation_id = await _send(api, "long_code", recipients(2), schedule={"sendAt": send_at})
    fake_time.at(at_s)
    operation = await api.operation(operation_id)
    assert operation["status"] == state
    assert operation["stats"]["scheduled"] == statuses.count("SCHEDULED")
    messages = await api.messages(operation_id)
    assert [m["status"] for m in messages] == statuses
    assert {m["scheduledFor"][:19] for m in messages} == {send_at[:19]}
    _assert_stats_add_up(operation)


async def test_scheduled_send_does_not_delay_an_immediate_one(
    api: Api, fake_time: FakeTime
) -> None:
    """Messages scheduled for later do not take the sender's queue ahead of a send made now."""
    await _send(api, "long_code", recipients(5), schedule={"sendAt": _iso(T0_WALL + 3600)})
    now = await _send(api, "long_code", recipients(1, start=5))
    fake_time.at(2.0)
    assert await api.statuses(now) == ["DELIVERED"]


# Outcomes and operation status


@pytest.mark.parametrize(
    ("changes", "final"),
    [
        ({"undelivered_share": 1.0}, "UNDELIVERED"),
        ({"failed_share": 1.0}, "FAILED"),
        ({}, "DELIVERED"),
    ],
)
async def test_configured_shares_decide_the_final_status(
    launch: Launcher, fake_time: FakeTime, changes: dict[str, float], final: str
) -> None:
    """The profile's undelivered and failed shares decide how sent messages end."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(**changes)) as api:
        operation_id = await _send(api, "short_code", recipients(20))
        fake_time.at(5)
        assert set(await api.statuses(operation_id)) == {final}
        operation = await api.operation(operation_id)
    assert operation["status"] == "COMPLETED"
    assert operation["stats"][final.lower()] == 20


async def test_partial_shares_split_the_outcomes(launch: Launcher, fake_time: FakeTime) -> None:
    """An undelivered share of 0.3 leaves roughly 30% of messages UNDELIVERED."""
    async with launch(data=DELIVERY_ACCOUNT, profile=_profile(undelivered_share=0.3)) as api:
        operation_id = await _send(api, "short_code", recipients(300))
        fake_time.at(10)
        statuses = await api.statuses(operation_id)
    assert 45 <= statuses.count("UNDELIVERED") <= 135
    assert statuses.count("UNDELIVERED") + statuses.count("DELIVERED") == 300


@pytest.mark.parametrize(
    ("pool", "channel", "at_s", "status"),
    [
        ("whatsapp", "WHATSAPP", 6.9, "DELIVERED"),
        ("whatsapp", "WHATSAPP", 7.0, "READ"),
        ("rcs", "PHONE", 7.0, "READ"),
        ("long_code", "PHONE", 600, "DELIVERED"),
    ],
)
async def test_delivered_may_become_read(
    launch: Launcher, fake_time: FakeTime, pool: str, channel: str, at_s: float, status: str
) -> None:
    """RCS and WhatsApp messages may turn READ after DELIVERED; SMS never does."""
    profile = _profile(read_share=1.0, rcs_capable_share=1.0)
    async with launch(data=DELIVERY_ACCOUNT, profile=profile) as api:
        operation_id = await _send(api, pool, recipients(1, channel))
        fake_time.at(at_s)
        assert await api.statuses(operation_id) == [status]
        operation = await api.operation(operation_id)
    assert operation["stats"][status.lower()] == 1


async def test_status_never_goes_back(launch: Launcher, fake_time: FakeTime) -> None:
    """As time passes, no message's status ever moves back to an earlier one."""
    async with launch() as api:
        to = recipients(30) + recipients(10, "WHATSAPP", start=100)
        operation_id = await api.send(send_body(to, schedule={"sendAt": _iso(T0_WALL + 5)}))
        history: list[list[str]] = []
        for at_s in (0, 4.9, 5, 5.5, 6, 7, 8, 10, 12, 15, 20, 30, 60, 3600):
            fake_time.at(at_s)
            history.append(await api.statuses(operation_id))
    for before, after in itertools.pairwise(history):
        for old, new in zip(before, after, strict=True):
            assert RANK[new] >= RANK[old]
            if RANK[old] >= 3 and old != new:
                assert (old, new) == ("DELIVERED", "READ")
    assert set(history[0]) == {"SCHEDULED"}
    assert {"SCHEDULED", "QUEUED", "SENT"}.isdisjoint(history[-1])


async def test_operation_stats_shape(api: Api, fake_time: FakeTime) -> None:
    """An operation's stats hold every documented counter, and they add up to the total."""
    operation_id = await _send(api, "sms_whatsapp", recipients(3) + recipients(2, "WHATSAPP", 9))
    fake_time.at(1.5)
    operation = await api.operation(operation_id)
    assert set(operation["stats"]) == {"total", "recipients", "attempts", *STAT_STATUSES}
    assert operation["stats"]["total"] == 5
    assert operation["stats"]["attempts"] == 4
    assert operation["createdAt"].startswith(_iso(T0_WALL)[:19])
    _assert_stats_add_up(operation)


async def test_operation_of_a_single_sender(api: Api, fake_time: FakeTime) -> None:
    """A send from one sender (from.senderId) is delivered by that sender and has no pool."""
    sender = await api.sender_at("+18885550100")
    operation_id = await api.send(
        {"from": {"senderId": sender}, "to": recipients(4), "content": {"text": "Hi"}}
    )
    fake_time.at(0.5)
    messages = await api.messages(operation_id)
    assert [m["status"] for m in messages] == ["SENT", "SENT", "QUEUED", "QUEUED"]
    assert {m["from"]["senderId"] for m in messages} == {sender}
    assert {m["from"]["senderPoolId"] for m in messages} == {None}
    assert [m["to"][0]["address"] for m in messages] == [phone(i) for i in range(4)]
