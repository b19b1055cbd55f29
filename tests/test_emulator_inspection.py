"""/_emulator/stats, /_emulator/messages and /_emulator/reset: looking inside without auth."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    CERTAIN,
    DELIVERY_ACCOUNT,
    Api,
    FakeTime,
    Launcher,
    assert_error,
    basic_auth,
    phone,
    recipients,
    send_body,
)

from campaign.emulator import SAMPLE_POOL_ID

UNKNOWN_OPERATION = "comms_operation_01h9krwprkeee8fzqspvwy6nq8"


def _to(*addresses: int, channel: str = "PHONE") -> list[dict[str, Any]]:
    return [{"address": phone(i), "channel": channel} for i in addresses]


# /_emulator/stats


async def test_stats_need_no_auth(api: Api) -> None:
    """GET /_emulator/stats answers without credentials, with every documented counter."""
    reply = await api.request("GET", "/_emulator/stats", auth=None)
    assert reply.status == 200
    assert {"requests", "recipients_accepted", "duplicates", "messages_by_status"} <= set(
        reply.body
    )
    assert reply.body["recipients_accepted"] == 0
    assert reply.body["duplicates"] == 0
    assert reply.body["messages_by_status"] == {}
    assert reply.body["requests"] == {}


async def test_stats_count_requests_by_route_and_status(api: Api) -> None:
    """requests counts API calls by route (either prefix) and answer status."""
    await api.get("/Senders")
    await api.get(f"{api.emu.root_url}/v1/Senders")
    await api.get("/Senders/comms_sender_01h9krwprkeee8fzqspvwy6nq8")
    await api.send(send_body())
    await api.post("/Messages", {"to": []})
    await api.post("/Messages", send_body(), auth=basic_auth("AC1", "wrong"))
    await api.get("/_emulator/messages")
    requests = (await api.stats())["requests"]
    assert requests["GET /Senders"] == {"200": 2}
    assert requests["POST /Messages"] == {"202": 1, "400": 1, "401": 1}
    (fetch,) = [route for route in requests if route.startswith("GET /Senders/")]
    assert requests[fetch] == {"404": 1}
    assert not any("_emulator" in route for route in requests)


async def test_stats_count_recipients_accepted(api: Api) -> None:
    """recipients_accepted adds up every accepted recipient and nothing from rejected requests."""
    await api.send(send_body(recipients(3)))
    await api.send(send_body(recipients(2, "WHATSAPP", start=10)))
    bad = send_body(recipients(4))
    bad["to"][3]["address"] = "nope"
    assert_error(await api.post("/Messages", bad), 400, 21614)
    stats = await api.stats()
    assert stats["recipients_accepted"] == 5
    assert stats["operations"] == 2


@pytest.mark.parametrize(
    ("sends", "duplicates"),
    [
        ([(_to(1), "spring"), (_to(1), "spring")], 1),
        ([(_to(1, 2, 3), "spring"), (_to(2, 3, 4), "spring")], 2),
        ([(_to(1, 1), "spring")], 1),
        ([(_to(1), "spring"), (_to(1), "summer")], 0),
        ([(_to(1, 2), "spring"), (_to(3, 4), "spring")], 0),
        ([(_to(1), "spring"), (_to(1), "spring"), (_to(1), "spring")], 2),
        ([(_to(1), "spring"), (_to(1), "summer"), (_to(1), "spring")], 1),
    ],
)
async def test_duplicates_are_same_address_and_campaign_again(
    api: Api, sends: list[tuple[list[dict[str, Any]], str]], duplicates: int
) -> None:
    """duplicates counts recipients accepted again with the same address and the same campaign tag."""
    for to, campaign in sends:
        await api.send(send_body(to, tags={"campaign": campaign}))
    assert (await api.stats())["duplicates"] == duplicates


async def test_duplicates_use_the_rendered_campaign_tag(api: Api) -> None:
    """A per-recipient campaign tag is compared after rendering."""
    to = _to(1, 1, 1)
    for recipient, campaign in zip(to, ("a", "b", "a"), strict=True):
        recipient["variables"] = {"c": campaign}
    await api.send(send_body(to, tags={"campaign": "{{c}}"}))
    assert (await api.stats())["duplicates"] == 1


async def test_rejected_requests_make_no_duplicates(api: Api) -> None:
    """A resend that was rejected (400) or refused (429) is not a duplicate."""
    await api.send(send_body(_to(1), tags={"campaign": "spring"}))
    assert_error(await api.post("/Messages", send_body(_to(1), tags={"campaign": "sp ring"})), 400)
    await api.set_faults(rate_limit_per_s=1)
    await api.send(send_body(_to(2), tags={"campaign": "other"}))
    assert_error(await api.post("/Messages", send_body(_to(1), tags={"campaign": "spring"})), 429)
    assert (await api.stats())["duplicates"] == 0


@pytest.mark.parametrize(
    ("at_s", "by_status"),
    [(0, {"SENT": 1, "QUEUED": 2}), (2.5, {"DELIVERED": 1, "SENT": 2}), (10, {"DELIVERED": 3})],
)
async def test_stats_count_messages_by_status(
    launch: Launcher, fake_time: FakeTime, at_s: float, by_status: dict[str, int]
) -> None:
    """messages_by_status counts every stored message by its status now."""
    async with launch(data=DELIVERY_ACCOUNT, profile=CERTAIN) as api:
        await api.send(send_body(recipients(3), pool=await api.pool_named("long_code")))
        fake_time.at(at_s)
        assert (await api.stats())["messages_by_status"] == by_status


# /_emulator/messages


async def test_messages_list_every_accepted_recipient(api: Api) -> None:
    """/_emulator/messages shows id, operation, address, channel, rendered tags, status and time."""
    to = _to(1, 2) + _to(3, channel="WHATSAPP")
    for index, recipient in enumerate(to):
        recipient["variables"] = {"row": str(index)}
    operation_id = await api.send(send_body(to, tags={"campaign": "c1", "row": "{{row}}"}))
    reply = await api.request("GET", "/_emulator/messages", auth=None)
    assert reply.status == 200
    listed = reply.body["messages"]
    assert reply.body["total"] == 3
    api_messages = await api.messages(operation_id)
    assert [m["id"] for m in listed] == [m["id"] for m in api_messages]
    assert [m["status"] for m in listed] == [m["status"] for m in api_messages]
    assert [m["createdAt"] for m in listed] == [m["createdAt"] for m in api_messages]
    assert {m["operationId"] for m in listed} == {operation_id}
    assert [m["address"] for m in listed] == [phone(1), phone(2), phone(3)]
    assert [m["channel"] for m in listed] == ["PHONE", "PHONE", "WHATSAPP"]
    assert [m["tags"] for m in listed] == [{"campaign": "c1", "row": str(i)} for i in range(3)]


async def test_messages_filter_by_operation(api: Api) -> None:
    """operationId narrows /_emulator/messages to one request's recipients."""
    await api.send(send_body(_to(1, 2)))
    second = await api.send(send_body(_to(3)))
    reply = await api.get("/_emulator/messages", params={"operationId": second})
    assert [m["address"] for m in reply.body["messages"]] == [phone(3)]


async def test_messages_filter_by_campaign(api: Api) -> None:
    """campaign narrows /_emulator/messages to recipients with that campaign tag."""
    await api.send(send_body(_to(1, 2), tags={"campaign": "a"}))
    await api.send(send_body(_to(3), tags={"campaign": "b"}))
    await api.send(send_body(_to(4)))
    reply = await api.get("/_emulator/messages", params={"campaign": "a"})
    assert [m["address"] for m in reply.body["messages"]] == [phone(1), phone(2)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"offset": "2"}, [2, 3, 4]),
        ({"limit": "2"}, [0, 1]),
        ({"offset": "1", "limit": "3"}, [1, 2, 3]),
        ({"offset": "9"}, []),
        ({"limit": "0"}, []),
    ],
)
async def test_messages_offset_and_limit(
    api: Api, query: dict[str, str], expected: list[int]
) -> None:
    """offset and limit page through /_emulator/messages."""
    await api.send(send_body(recipients(5)))
    reply = await api.get("/_emulator/messages", params=query)
    assert [m["address"] for m in reply.body["messages"]] == [phone(i) for i in expected]
    assert reply.body["total"] == 5


async def test_messages_limit_counts_matches_of_the_filter(api: Api) -> None:
    """With campaign and limit together, limit counts the matching recipients."""
    await api.send(send_body(_to(1, 2), tags={"campaign": "a"}))
    await api.send(send_body(_to(3, 4, 5), tags={"campaign": "b"}))
    reply = await api.get("/_emulator/messages", params={"campaign": "b", "limit": "2"})
    assert [m["address"] for m in reply.body["messages"]] == [phone(3), phone(4)]


@pytest.mark.parametrize("query", [{"offset": "-1"}, {"limit": "x"}, {"offset": "1.5"}])
async def test_messages_reject_bad_numbers(api: Api, query: dict[str, str]) -> None:
    """A non-numeric offset or limit answers 400 with the error body."""
    assert_error(await api.get("/_emulator/messages", params=query), 400)


async def test_messages_unknown_operation_is_404(api: Api) -> None:
    """An unknown operationId answers 404 with the error body."""
    assert_error(
        await api.get("/_emulator/messages", params={"operationId": UNKNOWN_OPERATION}), 404
    )


# /_emulator/reset


async def test_reset_forgets_messages_operations_and_counters(api: Api) -> None:
    """POST /_emulator/reset empties messages, operations and every counter."""
    operation_id = await api.send(send_body(_to(1, 1), tags={"campaign": "x"}))
    reply = await api.request("POST", "/_emulator/reset", auth=None)
    assert reply.status == 200
    stats = await api.stats()
    assert stats["recipients_accepted"] == 0
    assert stats["duplicates"] == 0
    assert stats["messages_by_status"] == {}
    assert stats["requests"] == {}
    assert (await api.get("/_emulator/messages")).body == {"messages": [], "total": 0}
    assert_error(await api.get(f"/Messages/Operations/{operation_id}"), 404)
    assert (await api.get("/Messages")).body["messages"] == []


async def test_reset_restores_the_starting_pools(api: Api) -> None:
    """After a reset, created pools are gone and deleted or changed ones are back as they were."""
    before = (await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders")).body["senders"]
    await api.post("/SenderPools", {"name": "extra"})
    await api.delete(f"/SenderPools/{SAMPLE_POOL_ID}/Senders/{before[0]['id']}")
    await api.patch(f"/SenderPools/{SAMPLE_POOL_ID}", {"name": "renamed"})
    await api.post("/_emulator/reset")
    pools = (await api.get("/SenderPools")).body["senderPools"]
    assert [(p["id"], p["name"]) for p in pools] == [(SAMPLE_POOL_ID, "Sample Pool")]
    assert (await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders")).body["senders"] == before


async def test_reset_restores_a_deleted_pool(api: Api) -> None:
    """A sample pool deleted before a reset exists again after it."""
    await api.delete(f"/SenderPools/{SAMPLE_POOL_ID}")
    await api.post("/_emulator/reset")
    assert (await api.get(f"/SenderPools/{SAMPLE_POOL_ID}")).status == 200


async def test_reset_empties_sender_queues(launch: Launcher) -> None:
    """After a reset a sender's queue is empty: a new message leaves at once."""
    async with launch(data=DELIVERY_ACCOUNT, profile=CERTAIN) as api:
        pool_id = await api.pool_named("long_code")
        await api.send(send_body(recipients(5), pool=pool_id))
        await api.post("/_emulator/reset")
        operation_id = await api.send(send_body(recipients(1, start=5), pool=pool_id))
        assert await api.statuses(operation_id) == ["SENT"]


async def test_resend_after_reset_is_no_duplicate(api: Api) -> None:
    """Duplicates start over after a reset."""
    await api.send(send_body(_to(1), tags={"campaign": "x"}))
    await api.post("/_emulator/reset")
    await api.send(send_body(_to(1), tags={"campaign": "x"}))
    assert (await api.stats())["duplicates"] == 0
