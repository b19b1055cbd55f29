"""Every route of comms-api.md, under both /preview and /v1, plus auth and pagination."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import (
    ID_RE,
    T0_WALL,
    Api,
    FakeTime,
    Launcher,
    assert_error,
    basic_auth,
    phone,
    recipients,
    send_body,
)

from campaign.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID, Credentials

SENDER_KEYS = {
    "id",
    "displayName",
    "channel",
    "address",
    "status",
    "tags",
    "createdAt",
    "updatedAt",
}
POOL_KEYS = {"id", "name", "tags", "createdAt", "updatedAt"}
POOL_OPERATION_KEYS = {"id", "status", "stats", "createdAt", "updatedAt"}
MESSAGE_KEYS = {
    "id",
    "from",
    "to",
    "status",
    "tags",
    "related",
    "scheduledFor",
    "createdAt",
    "updatedAt",
    "deletedAt",
}
OPERATION_STATS_KEYS = {
    "total",
    "recipients",
    "attempts",
    "scheduled",
    "queued",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "unaddressable",
    "failed",
    "canceled",
}
UNKNOWN_POOL = "comms_senderpool_01h9krwprkeee8fzqspvwy6nq8"
UNKNOWN_SENDER = "comms_sender_01h9krwprkeee8fzqspvwy6nq8"
UNKNOWN_MESSAGE = "comms_message_01h9krwprkeee8fzqspvwy6nq8"
UNKNOWN_OPERATION = "comms_operation_01h9krwprkeee8fzqspvwy6nq8"


@pytest.fixture(params=["/preview", "/v1"])
async def api(request: pytest.FixtureRequest, launch: Launcher) -> AsyncIterator[Api]:
    """The sample account, once under each API prefix."""
    async with launch(prefix=request.param) as client:
        yield client


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


async def _all_senders(api: Api) -> list[dict[str, Any]]:
    reply = await api.get("/Senders", params={"pageSize": "1000"})
    assert reply.status == 200
    return list(reply.body["senders"])


async def _active_sender(api: Api, channel: str) -> str:
    senders = await _all_senders(api)
    return next(s["id"] for s in senders if s["channel"] == channel and s["status"] == "ACTIVATED")


async def _create_pool(api: Api, body: dict[str, Any]) -> tuple[str, str]:
    """Create a pool; (pool id, operation id)."""
    reply = await api.post("/SenderPools", body)
    assert reply.status == 202, reply.text
    operation_id = reply.body["operationId"]
    found = await api.get("/SenderPools", params={"operationId": operation_id})
    assert found.status == 200
    (pool,) = found.body["senderPools"]
    return pool["id"], operation_id


# Auth


async def test_request_without_credentials_is_401(api: Api) -> None:
    """A request with no Authorization header gets 401, code 20003 and a Basic challenge."""
    reply = await api.get("/Senders", auth=None)
    assert_error(reply, 401, 20003)
    assert reply.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "header",
    [
        basic_auth(DEFAULT_ACCOUNT_SID, "wrong-token"),
        basic_auth("AC11111111111111111111111111111111", DEFAULT_AUTH_TOKEN),
        basic_auth(DEFAULT_ACCOUNT_SID, ""),
        f"Bearer {DEFAULT_AUTH_TOKEN}",
        "Basic not-base64!",
        "",
    ],
)
async def test_wrong_credentials_are_401(api: Api, header: str) -> None:
    """Wrong or malformed credentials get 401 with the error body."""
    assert_error(await api.get("/Senders", auth=header), 401, 20003)


@pytest.mark.parametrize("path", ["/Senders", "/Messages", f"/SenderPools/{SAMPLE_POOL_ID}"])
async def test_auth_is_checked_before_anything_else(api: Api, path: str) -> None:
    """Without credentials even a valid route answers 401, never data."""
    assert_error(await api.get(path, auth=None), 401, 20003)


async def test_post_without_credentials_stores_nothing(api: Api) -> None:
    """A send without credentials is refused with 401 and stores no recipient."""
    assert_error(await api.post("/Messages", send_body(), auth=None), 401, 20003)
    assert (await api.stats())["recipients_accepted"] == 0


@pytest.mark.parametrize(
    ("user", "secret", "accepted"),
    [
        ("ACenv", "env-token", True),
        ("SKkey", "key-secret", True),
        (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, False),
        ("ACenv", "key-secret", False),
    ],
)
async def test_credentials_come_from_the_environment(
    launch: Launcher, user: str, secret: str, accepted: bool
) -> None:
    """TWILIO_ACCOUNT_SID/AUTH_TOKEN and TWILIO_API_KEY/SECRET pairs are accepted, defaults not."""
    credentials = Credentials.from_environment(
        {
            "TWILIO_ACCOUNT_SID": "ACenv",
            "TWILIO_AUTH_TOKEN": "env-token",
            "TWILIO_API_KEY": "SKkey",
            "TWILIO_API_SECRET": "key-secret",
        }
    )
    async with launch(credentials=credentials) as client:
        reply = await client.get("/Senders", auth=basic_auth(user, secret))
    if accepted:
        assert reply.status == 200
    else:
        assert_error(reply, 401, 20003)


async def test_default_credentials_without_environment() -> None:
    """With no TWILIO_* variables the documented default SID and token are the credentials."""
    credentials = Credentials.from_environment({})
    assert credentials.pairs == ((DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),)
    assert not credentials.from_env
    assert DEFAULT_AUTH_TOKEN not in repr(credentials)


# Unknown routes and methods


@pytest.mark.parametrize("path", ["/Nope", "/Senders/x/y", "/SenderPools/x/Senders/y/z"])
async def test_unknown_route_is_a_json_404(api: Api, path: str) -> None:
    """An unknown path under the API answers the documented 404 body, not an HTML page."""
    assert_error(await api.get(path), 404)


@pytest.mark.parametrize(("method", "path"), [("PUT", "/Messages"), ("POST", "/Senders")])
async def test_wrong_method_is_a_json_405(api: Api, method: str, path: str) -> None:
    """A method a route does not support answers 405 with the error body."""
    assert_error(await api.request(method, path, json={}), 405)


# Senders


async def test_list_senders_returns_the_sample_account(api: Api) -> None:
    """GET /Senders lists every sample sender with the documented shape and ids."""
    reply = await api.get("/Senders")
    assert reply.status == 200
    assert set(reply.body) == {"senders", "pagination"}
    senders = reply.body["senders"]
    assert len(senders) == 9
    assert all(set(s) == SENDER_KEYS for s in senders)
    assert all(ID_RE.match(s["id"]) and s["id"].startswith("comms_sender_") for s in senders)
    assert len({s["id"] for s in senders}) == 9
    assert reply.body["pagination"]["next"] is None
    assert reply.body["pagination"]["self"] == api.url("/Senders")


async def test_sample_account_has_every_kind_of_sender(api: Api) -> None:
    """The sample account holds long codes, a toll-free, a short code, RCS, WhatsApp, e-mail, one DEACTIVATED."""
    senders = await _all_senders(api)
    active = [s for s in senders if s["status"] == "ACTIVATED"]
    sms = [s["address"] for s in active if s["channel"] == "SMS"]
    assert sum(a.startswith("+1") and not a.startswith("+18") for a in sms) >= 2
    assert any(a.startswith(("+1800", "+1888", "+1877", "+1866", "+1855", "+1844")) for a in sms)
    assert any(a.isdigit() and 5 <= len(a) <= 6 for a in sms)
    assert {"RCS", "WHATSAPP", "EMAIL"} <= {s["channel"] for s in active}
    assert [s["status"] for s in senders].count("DEACTIVATED") == 1


@pytest.mark.parametrize(
    ("query", "status", "channel"),
    [
        ({"status": "ACTIVATED"}, "ACTIVATED", None),
        ({"status": "DEACTIVATED"}, "DEACTIVATED", None),
        ({"status": "activated"}, "ACTIVATED", None),
        ({"channel": "SMS"}, None, "SMS"),
        ({"channel": "RCS"}, None, "RCS"),
        ({"channel": "WHATSAPP"}, None, "WHATSAPP"),
        ({"channel": "EMAIL"}, None, "EMAIL"),
        ({"channel": "PUSH"}, None, "PUSH"),
        ({"status": "ACTIVATED", "channel": "SMS"}, "ACTIVATED", "SMS"),
    ],
)
async def test_list_senders_filters(
    api: Api, query: dict[str, str], status: str | None, channel: str | None
) -> None:
    """status and channel narrow GET /Senders to exactly the matching senders."""
    everyone = await _all_senders(api)
    expected = [
        s["id"]
        for s in everyone
        if (status is None or s["status"] == status)
        and (channel is None or s["channel"] == channel)
    ]
    reply = await api.get("/Senders", params=query)
    assert reply.status == 200
    assert [s["id"] for s in reply.body["senders"]] == expected


@pytest.mark.parametrize("query", [{"status": "ON"}, {"channel": "FAX"}, {"channel": ""}])
async def test_list_senders_rejects_unknown_filter_values(api: Api, query: dict[str, str]) -> None:
    """An unknown status or channel filter is a 400, not an empty list."""
    assert_error(await api.get("/Senders", params=query), 400, 20001)


async def test_fetch_each_sender(api: Api) -> None:
    """GET /Senders/{id} answers the same sender the list shows."""
    for sender in await _all_senders(api):
        reply = await api.get(f"/Senders/{sender['id']}")
        assert reply.status == 200
        assert reply.body == sender


@pytest.mark.parametrize("sender_id", [UNKNOWN_SENDER, "nope", SAMPLE_POOL_ID])
async def test_fetch_unknown_sender_is_404(api: Api, sender_id: str) -> None:
    """An unknown sender id answers 404 with code 20404."""
    assert_error(await api.get(f"/Senders/{sender_id}"), 404, 20404)


# Sender pools


async def test_sample_pool_is_fetchable_and_mixed(api: Api) -> None:
    """The fixed sample pool exists and mixes RCS, SMS and WhatsApp senders."""
    reply = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}")
    assert reply.status == 200
    assert set(reply.body) == POOL_KEYS
    assert reply.body["id"] == SAMPLE_POOL_ID
    members = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders")
    assert members.status == 200
    assert {"RCS", "SMS", "WHATSAPP"} <= {s["channel"] for s in members.body["senders"]}
    assert all(s["status"] == "ACTIVATED" for s in members.body["senders"])


async def test_list_pools(api: Api) -> None:
    """GET /SenderPools lists the sample pool with the documented shape."""
    reply = await api.get("/SenderPools")
    assert reply.status == 200
    assert set(reply.body) == {"senderPools", "pagination"}
    assert [p["id"] for p in reply.body["senderPools"]] == [SAMPLE_POOL_ID]
    assert set(reply.body["senderPools"][0]) == POOL_KEYS


async def test_create_pool_answers_202_with_an_operation(api: Api) -> None:
    """POST /SenderPools answers 202 with an operation and a Location, not the pool."""
    sender = await _active_sender(api, "SMS")
    reply = await api.post("/SenderPools", {"name": "P", "senders": [{"senderId": sender}]})
    assert reply.status == 202
    assert set(reply.body) == {"operationId", "operationLocation"}
    operation_id = reply.body["operationId"]
    assert ID_RE.match(operation_id)
    assert operation_id.startswith("comms_operation_")
    location = reply.body["operationLocation"]
    assert reply.headers["Location"] == location
    assert location == f"{api.base_url}/SenderPools/Operations/{operation_id}"
    operation = await api.get(location)
    assert operation.status == 200
    assert set(operation.body) == POOL_OPERATION_KEYS
    assert operation.body["id"] == operation_id
    assert operation.body["stats"] == {"total": 1, "queued": 0, "created": 1, "failed": 0}


async def test_created_pool_is_found_by_operation_id(api: Api) -> None:
    """GET /SenderPools?operationId= finds exactly the pool that operation created."""
    sender = await _active_sender(api, "RCS")
    pool_id, _ = await _create_pool(
        api, {"name": "Spring", "tags": {"region": "APAC"}, "senders": [{"senderId": sender}]}
    )
    assert ID_RE.match(pool_id)
    assert pool_id.startswith("comms_senderpool_")
    pool = await api.get(f"/SenderPools/{pool_id}")
    assert pool.body["name"] == "Spring"
    assert pool.body["tags"] == {"region": "APAC"}
    members = await api.get(f"/SenderPools/{pool_id}/Senders")
    assert [s["id"] for s in members.body["senders"]] == [sender]


async def test_list_pools_by_unknown_operation_is_empty(api: Api) -> None:
    """An operationId that created no pool lists no pool."""
    reply = await api.get("/SenderPools", params={"operationId": UNKNOWN_OPERATION})
    assert reply.status == 200
    assert reply.body["senderPools"] == []


async def test_create_pool_counts_unusable_senders_as_failed(api: Api) -> None:
    """Deactivated and unknown senders fail in the operation's stats; the rest are added."""
    senders = await _all_senders(api)
    active = next(s["id"] for s in senders if s["status"] == "ACTIVATED")
    inactive = next(s["id"] for s in senders if s["status"] == "DEACTIVATED")
    reply = await api.post(
        "/SenderPools",
        {"senders": [{"senderId": active}, {"senderId": inactive}, {"senderId": UNKNOWN_SENDER}]},
    )
    assert reply.status == 202
    operation = await api.get(reply.body["operationLocation"])
    assert operation.body["stats"] == {"total": 3, "queued": 0, "created": 1, "failed": 2}


@pytest.mark.parametrize("body", [{}, {"name": "only a name"}, {"tags": {"a": "b"}}])
async def test_create_pool_with_optional_fields_only(api: Api, body: dict[str, Any]) -> None:
    """name, tags and senders are all optional when creating a pool."""
    pool_id, _ = await _create_pool(api, body)
    reply = await api.get(f"/SenderPools/{pool_id}")
    assert reply.status == 200
    assert reply.body["tags"] == body.get("tags", {})


@pytest.mark.parametrize(
    "body",
    [
        [],
        "pool",
        {"name": 5},
        {"tags": {"a": 1}},
        {"tags": "x"},
        {"senders": [{"id": "x"}]},
        {"senders": "x"},
        {"senders": [{"senderId": 7}]},
        {"unknown": 1},
    ],
)
async def test_create_pool_rejects_bad_body(api: Api, body: Any) -> None:
    """A malformed pool body answers 400 and creates no pool."""
    assert_error(await api.post("/SenderPools", body), 400, 20001)
    reply = await api.get("/SenderPools")
    assert [p["id"] for p in reply.body["senderPools"]] == [SAMPLE_POOL_ID]


async def test_create_pool_rejects_invalid_json(api: Api) -> None:
    """A pool body that is not JSON answers 400."""
    assert_error(await api.request("POST", "/SenderPools", data=b"{name: "), 400, 20001)


@pytest.mark.parametrize(
    "body",
    [{"name": "Renamed"}, {"tags": {"k": "v"}}, {"name": "Both", "tags": {}}],
)
async def test_patch_pool(api: Api, fake_time: FakeTime, body: dict[str, Any]) -> None:
    """PATCH /SenderPools/{id} answers 200 with the updated pool and moves updatedAt."""
    before = (await api.get(f"/SenderPools/{SAMPLE_POOL_ID}")).body
    fake_time.advance(60)
    reply = await api.patch(f"/SenderPools/{SAMPLE_POOL_ID}", body)
    assert reply.status == 200
    assert set(reply.body) == POOL_KEYS
    expected = {**before, **body, "updatedAt": reply.body["updatedAt"]}
    assert reply.body == expected
    assert reply.body["updatedAt"] > before["updatedAt"]
    assert (await api.get(f"/SenderPools/{SAMPLE_POOL_ID}")).body == reply.body


@pytest.mark.parametrize("body", [{}, [], {"name": 1}, {"tags": "x"}, {"id": "x"}])
async def test_patch_pool_rejects_bad_body(api: Api, body: Any) -> None:
    """A PATCH body without valid name/tags answers 400."""
    assert_error(await api.patch(f"/SenderPools/{SAMPLE_POOL_ID}", body), 400, 20001)


async def test_delete_pool(api: Api) -> None:
    """DELETE /SenderPools/{id} answers 204; the pool is then gone."""
    reply = await api.delete(f"/SenderPools/{SAMPLE_POOL_ID}")
    assert reply.status == 204
    assert_error(await api.get(f"/SenderPools/{SAMPLE_POOL_ID}"), 404, 20404)
    assert (await api.get("/SenderPools")).body["senderPools"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/SenderPools/{pool}", None),
        ("PATCH", "/SenderPools/{pool}", {"name": "x"}),
        ("DELETE", "/SenderPools/{pool}", None),
        ("GET", "/SenderPools/{pool}/Senders", None),
        ("POST", "/SenderPools/{pool}/Senders", {"senderId": "{sender}"}),
        ("DELETE", "/SenderPools/{pool}/Senders/{sender}", None),
    ],
)
async def test_unknown_pool_is_404_on_every_route(
    api: Api, method: str, path: str, body: dict[str, str] | None
) -> None:
    """Every pool route answers 404 with code 20404 for an unknown pool."""
    sender = await _active_sender(api, "SMS")
    if body is not None:
        body = {k: v.format(sender=sender) for k, v in body.items()}
    reply = await api.request(method, path.format(pool=UNKNOWN_POOL, sender=sender), json=body)
    assert_error(reply, 404, 20404)


@pytest.mark.parametrize(
    ("query", "expected_channels"),
    [
        ({"channel": "RCS"}, {"RCS"}),
        ({"channel": "WHATSAPP"}, {"WHATSAPP"}),
        ({"channel": "SMS"}, {"SMS"}),
        ({"status": "ACTIVATED"}, {"RCS", "SMS", "WHATSAPP"}),
    ],
)
async def test_list_pool_senders_filters(
    api: Api, query: dict[str, str], expected_channels: set[str]
) -> None:
    """GET /SenderPools/{id}/Senders narrows by channel and status."""
    reply = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders", params=query)
    assert reply.status == 200
    assert set(reply.body) == {"senders", "pagination"}
    assert {s["channel"] for s in reply.body["senders"]} == expected_channels
    assert all(set(s) == SENDER_KEYS for s in reply.body["senders"])


@pytest.mark.parametrize("as_list", [False, True])
async def test_add_sender_to_pool(api: Api, as_list: bool) -> None:
    """POST /SenderPools/{id}/Senders takes an object or a list and answers 202 with an operation."""
    pool_id, _ = await _create_pool(api, {"name": "Empty"})
    sms = [s["id"] for s in await _all_senders(api) if s["channel"] == "SMS"][:2]
    body: Any = [{"senderId": s} for s in sms] if as_list else {"senderId": sms[0]}
    added = sms if as_list else sms[:1]
    reply = await api.post(f"/SenderPools/{pool_id}/Senders", body)
    assert reply.status == 202
    assert reply.headers["Location"] == reply.body["operationLocation"]
    operation = await api.get(reply.body["operationLocation"])
    assert operation.status == 200
    assert operation.body["stats"]["created"] == len(added)
    members = await api.get(f"/SenderPools/{pool_id}/Senders")
    assert [s["id"] for s in members.body["senders"]] == added


@pytest.mark.parametrize(
    "body", [[], {}, {"senderId": 5}, [{"senderId": "x", "extra": 1}], "x", [None]]
)
async def test_add_senders_rejects_bad_body(api: Api, body: Any) -> None:
    """A body that is not {senderId} or a non-empty list of them answers 400."""
    assert_error(await api.post(f"/SenderPools/{SAMPLE_POOL_ID}/Senders", body), 400, 20001)


async def test_remove_sender_from_pool(api: Api) -> None:
    """DELETE /SenderPools/{id}/Senders/{senderId} answers 204; a second time 404."""
    rcs = await _active_sender(api, "RCS")
    path = f"/SenderPools/{SAMPLE_POOL_ID}/Senders/{rcs}"
    assert (await api.delete(path)).status == 204
    members = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders")
    assert rcs not in [s["id"] for s in members.body["senders"]]
    assert_error(await api.delete(path), 404, 20404)


async def test_a_sender_may_belong_to_many_pools(api: Api) -> None:
    """The same sender can be added to two pools and stays in both."""
    sender = await _active_sender(api, "SMS")
    first, _ = await _create_pool(api, {"name": "A", "senders": [{"senderId": sender}]})
    second, _ = await _create_pool(api, {"name": "B", "senders": [{"senderId": sender}]})
    for pool_id in (first, second, SAMPLE_POOL_ID):
        members = await api.get(f"/SenderPools/{pool_id}/Senders")
        assert sender in [s["id"] for s in members.body["senders"]]


async def test_pool_sender_operation_is_also_under_the_pool(api: Api) -> None:
    """An add-senders operation can also be fetched under /SenderPools/{id}/Senders/Operations/."""
    sender = await _active_sender(api, "SMS")
    reply = await api.post(f"/SenderPools/{SAMPLE_POOL_ID}/Senders", {"senderId": sender})
    operation_id = reply.body["operationId"]
    nested = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders/Operations/{operation_id}")
    assert nested.status == 200
    assert nested.body == (await api.get(reply.body["operationLocation"])).body


async def test_fetch_unknown_pool_operation_is_404(api: Api) -> None:
    """GET /SenderPools/Operations/{unknown} answers 404."""
    assert_error(await api.get(f"/SenderPools/Operations/{UNKNOWN_OPERATION}"), 404, 20404)


# Messages


async def test_send_answers_202_with_body_and_location(api: Api) -> None:
    """POST /Messages answers 202 with operationId, operationLocation and the same Location header."""
    reply = await api.post("/Messages", send_body(recipients(2)))
    assert reply.status == 202
    assert set(reply.body) == {"operationId", "operationLocation"}
    operation_id = reply.body["operationId"]
    assert ID_RE.match(operation_id)
    assert operation_id.startswith("comms_operation_")
    assert reply.body["operationLocation"] == f"{api.base_url}/Messages/Operations/{operation_id}"
    assert reply.headers["Location"] == reply.body["operationLocation"]
    assert reply.headers["operationId"] == operation_id
    operation = await api.get(reply.headers["Location"])
    assert operation.status == 200
    assert operation.body["id"] == operation_id
    assert set(operation.body["stats"]) == OPERATION_STATS_KEYS
    assert operation.body["stats"]["total"] == 2
    assert operation.body["stats"]["recipients"] == 2


async def test_send_stores_one_message_per_recipient_with_rendered_tags(api: Api) -> None:
    """Each recipient becomes one Message with its own rendered tags and the documented shape."""
    to = [
        {"address": phone(i), "channel": "PHONE", "variables": {"_row": str(i + 2)}}
        for i in range(3)
    ]
    body = send_body(
        to, text="Hi {{first_name}}!", tags={"campaign": "spring-sale", "row": "{{_row}}"}
    )
    operation_id = await api.send(body)
    messages = await api.messages(operation_id)
    assert len(messages) == 3
    assert [m["to"] for m in messages] == [
        [{"address": phone(i), "channel": "PHONE"}] for i in range(3)
    ]
    assert [m["tags"] for m in messages] == [
        {"campaign": "spring-sale", "row": str(i + 2)} for i in range(3)
    ]
    assert len({m["id"] for m in messages}) == 3
    for message in messages:
        assert set(message) == MESSAGE_KEYS
        assert ID_RE.match(message["id"])
        assert message["id"].startswith("comms_message_")
        assert set(message["from"]) == {"address", "channel", "senderId", "senderPoolId"}
        assert message["from"]["senderPoolId"] == SAMPLE_POOL_ID
        assert message["from"]["channel"] in {"SMS", "RCS"}
        assert message["related"] == [
            {
                "name": "OPERATION",
                "id": operation_id,
                "uri": f"{api.base_url}/Messages/Operations/{operation_id}",
            }
        ]
        assert message["scheduledFor"] is None
        assert message["deletedAt"] is None
        assert message["createdAt"].startswith(_iso(T0_WALL)[:19])


@pytest.mark.parametrize("name", ["operationId", "operation_id"])
async def test_list_messages_by_operation_id_either_spelling(api: Api, name: str) -> None:
    """GET /Messages accepts operationId and operation_id and lists only that operation."""
    first = await api.send(send_body(recipients(2)))
    second = await api.send(send_body(recipients(3, start=10)))
    for operation_id, count in ((first, 2), (second, 3)):
        reply = await api.get("/Messages", params={name: operation_id})
        assert reply.status == 200
        assert set(reply.body) == {"messages", "pagination"}
        assert len(reply.body["messages"]) == count
        assert {m["related"][0]["id"] for m in reply.body["messages"]} == {operation_id}


async def test_list_all_messages(api: Api) -> None:
    """GET /Messages with no filter lists every accepted recipient."""
    await api.send(send_body(recipients(2)))
    await api.send(send_body(recipients(1, start=5)))
    reply = await api.get("/Messages")
    assert reply.status == 200
    assert [m["to"][0]["address"] for m in reply.body["messages"]] == [phone(0), phone(1), phone(5)]


async def test_fetch_each_message(api: Api) -> None:
    """GET /Messages/{id} answers the same message the list shows."""
    operation_id = await api.send(send_body(recipients(3)))
    for message in await api.messages(operation_id):
        reply = await api.get(f"/Messages/{message['id']}")
        assert reply.status == 200
        assert reply.body == message


@pytest.mark.parametrize("message_id", [UNKNOWN_MESSAGE, "comms_message_x", "x"])
async def test_fetch_unknown_message_is_404(api: Api, message_id: str) -> None:
    """An unknown message id answers 404 with code 20404."""
    await api.send(send_body())
    assert_error(await api.get(f"/Messages/{message_id}"), 404, 20404)


@pytest.mark.parametrize("status", ["QUEUED", "SENT", "DELIVERED", "queued"])
async def test_list_messages_filters_by_status(api: Api, status: str) -> None:
    """status= lists exactly the messages with that status now."""
    operation_id = await api.send(send_body(recipients(20)))
    statuses = await api.statuses(operation_id)
    assert statuses.count("QUEUED") > 0
    reply = await api.get("/Messages", params={"status": status, "operationId": operation_id})
    assert reply.status == 200
    expected = [status.upper()] * statuses.count(status.upper())
    assert [m["status"] for m in reply.body["messages"]] == expected


@pytest.mark.parametrize("channel", ["SMS", "RCS", "sms"])
async def test_list_messages_filters_by_sender_channel(api: Api, channel: str) -> None:
    """channel=SMS or RCS lists only the messages sent on that channel."""
    operation_id = await api.send(send_body(recipients(30)))
    everything = await api.messages(operation_id)
    reply = await api.get("/Messages", params={"channel": channel, "operationId": operation_id})
    assert reply.status == 200
    expected = [m["id"] for m in everything if m["from"]["channel"] == channel.upper()]
    assert expected
    assert [m["id"] for m in reply.body["messages"]] == expected


@pytest.mark.parametrize("channel", ["PHONE", "WHATSAPP"])
async def test_list_messages_filters_by_channel(api: Api, channel: str) -> None:
    """channel= lists only the recipients on that channel."""
    to = recipients(3) + recipients(2, "WHATSAPP", start=100)
    operation_id = await api.send(send_body(to))
    reply = await api.get("/Messages", params={"channel": channel, "operationId": operation_id})
    assert reply.status == 200
    expected = [r["address"] for r in to if r["channel"] == channel]
    assert [m["to"][0]["address"] for m in reply.body["messages"]] == expected
    assert {m["to"][0]["channel"] for m in reply.body["messages"]} == {channel}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"startDate": _iso(T0_WALL + 30)}, ["late"]),
        ({"endDate": _iso(T0_WALL + 30)}, ["early"]),
        ({"startDate": _iso(T0_WALL - 30), "endDate": _iso(T0_WALL + 90)}, ["early", "late"]),
        ({"startDate": _iso(T0_WALL + 90)}, []),
    ],
)
async def test_list_messages_filters_by_date_window(
    api: Api, fake_time: FakeTime, query: dict[str, str], expected: list[str]
) -> None:
    """startDate and endDate narrow GET /Messages to messages created in the window."""
    early = await api.send(send_body(recipients(1)))
    fake_time.advance(60)
    late = await api.send(send_body(recipients(1, start=1)))
    names = {early: "early", late: "late"}
    reply = await api.get("/Messages", params=query)
    assert reply.status == 200
    assert [names[m["related"][0]["id"]] for m in reply.body["messages"]] == expected


@pytest.mark.parametrize(
    "query",
    [{"status": "NOPE"}, {"channel": "FAX"}, {"startDate": "yesterday"}, {"endDate": "1/2/2026"}],
)
async def test_list_messages_rejects_bad_query(api: Api, query: dict[str, str]) -> None:
    """An unknown status/channel or a date that is not RFC 3339 answers 400."""
    assert_error(await api.get("/Messages", params=query), 400, 20001)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/Messages", {"operationId": UNKNOWN_OPERATION}),
        (f"/Messages/Operations/{UNKNOWN_OPERATION}", {}),
    ],
)
async def test_unknown_message_operation_is_404(api: Api, path: str, query: dict[str, str]) -> None:
    """An unknown message operation answers 404 with code 20404."""
    assert_error(await api.get(path, params=query), 404, 20404)


async def test_list_and_fetch_message_operations(api: Api) -> None:
    """GET /Messages/Operations lists every operation, each as GET .../{id} shows it."""
    ids = [await api.send(send_body(recipients(n + 1))) for n in range(3)]
    reply = await api.get("/Messages/Operations")
    assert reply.status == 200
    assert [op["id"] for op in reply.body["operations"]] == ids
    for listed in reply.body["operations"]:
        assert set(listed) == POOL_OPERATION_KEYS
        assert set(listed["stats"]) == OPERATION_STATS_KEYS
        assert listed["status"] in {"SCHEDULED", "PROCESSING", "COMPLETED", "CANCELED"}
        assert await api.operation(listed["id"]) == listed
    assert [op["stats"]["total"] for op in reply.body["operations"]] == [1, 2, 3]


# Pagination


async def _make_items(api: Api, route: str) -> int:
    """Create enough records for `route` to span several pages; how many it then lists."""
    if route == "/Messages":
        await api.send(send_body(recipients(7)))
        return 7
    if route == "/Messages/Operations":
        for index in range(5):
            await api.send(send_body(recipients(1, start=index)))
        return 5
    if route == "/SenderPools":
        for index in range(4):
            await _create_pool(api, {"name": f"pool-{index}"})
        return 5
    if route == "/SenderPools/Operations":
        for index in range(4):
            await _create_pool(api, {"name": f"pool-{index}"})
        return 4
    return 9  # the sample senders


LIST_KEYS = {
    "/Senders": "senders",
    "/SenderPools": "senderPools",
    "/SenderPools/Operations": "operations",
    "/Messages": "messages",
    "/Messages/Operations": "operations",
}


@pytest.mark.parametrize("route", list(LIST_KEYS))
@pytest.mark.parametrize("page_size", [1, 2, 3])
@pytest.mark.parametrize("as_token", [False, True])
async def test_pagination_walks_every_page(
    launch: Launcher, route: str, page_size: int, as_token: bool
) -> None:
    """Following pagination.next (a URL, or a token put in pageToken) visits every item once."""
    async with launch(next_as_token=as_token, prefix="/v1" if as_token else "/preview") as api:
        total = await _make_items(api, route)
        key = LIST_KEYS[route]
        everything = await api.get(route, params={"pageSize": "1000"})
        expected = [item["id"] for item in everything.body[key]]
        assert len(expected) == total
        seen: list[str] = []
        pages = 0
        reply = await api.get(route, params={"pageSize": str(page_size)})
        while True:
            assert reply.status == 200, reply.text
            pages += 1
            assert len(reply.body[key]) <= page_size
            seen += [item["id"] for item in reply.body[key]]
            following = reply.body["pagination"]["next"]
            if following is None:
                break
            if as_token:
                assert not following.startswith("http")
                reply = await api.get(
                    route, params={"pageSize": str(page_size), "pageToken": following}
                )
            else:
                assert following.startswith(api.base_url + route + "?")
                reply = await api.get(following)
        assert seen == expected
        assert pages == math.ceil(total / page_size)


async def test_pagination_self_is_the_requested_url(api: Api) -> None:
    """pagination.self is the URL of the page just answered."""
    url = api.url("/Senders?status=ACTIVATED&pageSize=2")
    reply = await api.get(url)
    assert reply.body["pagination"]["self"] == url
    following = await api.get(reply.body["pagination"]["next"])
    assert following.body["pagination"]["self"] == reply.body["pagination"]["next"]


async def test_default_page_size_is_50(api: Api) -> None:
    """Without pageSize a list answers 50 items and a next link."""
    await api.send(send_body(recipients(60)))
    reply = await api.get("/Messages")
    assert len(reply.body["messages"]) == 50
    assert reply.body["pagination"]["next"] is not None
    rest = await api.get(reply.body["pagination"]["next"])
    assert len(rest.body["messages"]) == 10
    assert rest.body["pagination"]["next"] is None


@pytest.mark.parametrize("route", list(LIST_KEYS))
@pytest.mark.parametrize(
    "query",
    [
        {"pageSize": "0"},
        {"pageSize": "1001"},
        {"pageSize": "-1"},
        {"pageSize": "ten"},
        {"pageToken": "not-a-token"},
    ],
)
async def test_pagination_rejects_bad_page_parameters(
    api: Api, route: str, query: dict[str, str]
) -> None:
    """pageSize outside 1-1000 or a token the API never issued answers 400."""
    assert_error(await api.get(route, params=query), 400, 20001)


async def test_page_size_1000_is_allowed(api: Api) -> None:
    """pageSize=1000, the documented maximum, is accepted."""
    reply = await api.get("/Senders", params={"pageSize": "1000"})
    assert reply.status == 200


# The seed guides' requests, verbatim but for the ids they leave to the reader


async def test_seed_list_activated_senders(api: Api) -> None:
    """curl GET /Senders?status=ACTIVATED (with its Content-Type header) lists ACTIVATED senders."""
    reply = await api.get("/Senders?status=ACTIVATED", headers={"Content-Type": "application/json"})
    assert reply.status == 200
    assert reply.body["senders"]
    assert {s["status"] for s in reply.body["senders"]} == {"ACTIVATED"}
    assert reply.body["pagination"]["next"] is None


async def test_seed_create_pool_with_name_and_tags(api: Api) -> None:
    """The pooling guide's create-pool request answers 202 and the pool carries its tags."""
    body = {"name": "Sales Leads - APAC", "tags": {"region": "APAC"}}
    pool_id, _ = await _create_pool(api, body)
    pool = await api.get(f"/SenderPools/{pool_id}")
    assert pool.body["name"] == "Sales Leads - APAC"
    assert pool.body["tags"] == {"region": "APAC"}


async def test_seed_create_pool_with_placeholder_senders(api: Api) -> None:
    """The sender-pools guide's body with its placeholder ids is accepted; both senders fail."""
    body = {
        "name": "My First Pool",
        "senders": [{"senderId": "comms_sender_123"}, {"senderId": "comms_sender_456"}],
    }
    reply = await api.post("/SenderPools", body)
    assert reply.status == 202
    operation = await api.get(reply.body["operationLocation"])
    assert operation.body["stats"] == {"total": 2, "queued": 0, "created": 0, "failed": 2}


async def test_seed_create_pool_with_real_senders_then_list_pools(api: Api) -> None:
    """The guide's create-pool request with real sender ids adds both; GET /SenderPools shows it."""
    senders = await api.get("/Senders?status=ACTIVATED")
    ids = [s["id"] for s in senders.body["senders"]][:2]
    reply = await api.post(
        "/SenderPools", {"name": "My First Pool", "senders": [{"senderId": i} for i in ids]}
    )
    assert reply.status == 202
    operation = await api.get(reply.body["operationLocation"])
    assert operation.body["stats"]["created"] == 2
    pools = await api.get("/SenderPools", headers={"Content-Type": "application/json"})
    assert pools.status == 200
    assert "My First Pool" in [p["name"] for p in pools.body["senderPools"]]
    assert pools.body["pagination"]["next"] is None


async def test_seed_add_sender_to_pool(api: Api) -> None:
    """The pooling guide's add-a-sender request answers 202."""
    pool_id, _ = await _create_pool(api, {"name": "Sales Leads - APAC", "tags": {"region": "APAC"}})
    sender = await _active_sender(api, "SMS")
    reply = await api.post(f"/SenderPools/{pool_id}/Senders", {"senderId": sender})
    assert reply.status == 202
    members = await api.get(f"/SenderPools/{pool_id}/Senders")
    assert [s["id"] for s in members.body["senders"]] == [sender]


async def test_seed_send_to_phone_and_whatsapp(api: Api) -> None:
    """The guide's send to a PHONE and a WHATSAPP recipient from a pool answers 202."""
    body = {
        "from": {"senderPoolId": SAMPLE_POOL_ID},
        "to": [
            {"address": "+19143188062", "channel": "PHONE"},
            {"address": "+19143188063", "channel": "WHATSAPP"},
        ],
        "content": {"text": "Hello, World!"},
    }
    operation_id = await api.send(body)
    messages = await api.messages(operation_id)
    assert [m["to"] for m in messages] == [
        [{"address": "+19143188062", "channel": "PHONE"}],
        [{"address": "+19143188063", "channel": "WHATSAPP"}],
    ]
    assert messages[1]["from"]["channel"] == "WHATSAPP"


async def test_seed_send_from_pool_pooling_guide(api: Api) -> None:
    """The pooling guide's send ("Now I'm just using some of my senders!") answers 202."""
    body = {
        "from": {"senderPoolId": SAMPLE_POOL_ID},
        "to": [{"address": "+19143188062", "channel": "PHONE"}],
        "content": {"text": "Now I'm just using some of my senders!"},
    }
    operation = await api.operation(await api.send(body))
    assert operation["stats"]["total"] == 1


async def test_contract_example_send(api: Api) -> None:
    """The contract's full example (variables, Liquid, tags, schedule) is accepted and rendered."""
    body = {
        "from": {"senderPoolId": SAMPLE_POOL_ID},
        "to": [
            {
                "address": "+19143188062",
                "channel": "PHONE",
                "variables": {"first_name": "Ada", "_row": "2"},
            },
            {
                "address": "+19143188063",
                "channel": "WHATSAPP",
                "variables": {"first_name": "Bo", "_row": "3"},
            },
        ],
        "content": {"text": "Hi {{first_name}}!"},
        "tags": {"campaign": "spring-sale", "row": "{{_row}}"},
        "schedule": {"sendAt": _iso(T0_WALL + 3600)},
    }
    operation_id = await api.send(body)
    operation = await api.operation(operation_id)
    assert operation["status"] == "SCHEDULED"
    messages = await api.messages(operation_id)
    assert [m["tags"] for m in messages] == [
        {"campaign": "spring-sale", "row": "2"},
        {"campaign": "spring-sale", "row": "3"},
    ]
    assert {m["scheduledFor"][:19] for m in messages} == {_iso(T0_WALL + 3600)[:19]}
