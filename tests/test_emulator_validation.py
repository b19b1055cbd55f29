"""Each validation error of POST /Messages, with its status and code; a 400 rejects it all."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import (
    DELIVERY_ACCOUNT,
    T0_WALL,
    Api,
    Launcher,
    assert_error,
    phone,
    recipients,
    send_body,
)

from campaign.emulator import SAMPLE_POOL_ID

INVALID = 20001
MISSING_CONTENT = 21602
INVALID_ADDRESS = 21614
NOT_FOUND = 20404
UNKNOWN_POOL = "comms_senderpool_01h9krwprkeee8fzqspvwy6nq8"
UNKNOWN_SENDER = "comms_sender_01h9krwprkeee8fzqspvwy6nq8"
CONTENT_ID = "HX" + "0123456789abcdef" * 2


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _with(path: str, value: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid body with the value at dotted `path` replaced (list indexes are numbers)."""
    result = copy.deepcopy(body or send_body(recipients(3)))
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return result


def _without(path: str) -> dict[str, Any]:
    result = send_body(recipients(3))
    *parents, last = path.split(".")
    target: Any = result
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[last]
    return result


async def _assert_nothing_stored(api: Api) -> None:
    stats = await api.stats()
    assert stats["recipients_accepted"] == 0
    assert stats["operations"] == 0
    listed = await api.get("/_emulator/messages")
    assert listed.body["messages"] == []
    assert (await api.get("/Messages")).body["messages"] == []
    assert (await api.get("/Messages/Operations")).body["operations"] == []


async def _rejected(api: Api, body: Any, status: int = 400, code: int = INVALID) -> str:
    """Send a body that must be refused as a whole; the error message."""
    reply = await api.post("/Messages", body)
    assert_error(reply, status, code)
    await _assert_nothing_stored(api)
    return str(reply.body["message"])


# The body as a whole


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b'{"from": }', b"\xff\xfe", b'{"a": 1} trailing']
)
async def test_invalid_json_is_400(api: Api, raw: bytes) -> None:
    """A body that is not JSON answers 400 with code 20001."""
    reply = await api.request("POST", "/Messages", data=raw)
    assert_error(reply, 400, INVALID)
    await _assert_nothing_stored(api)


@pytest.mark.parametrize("body", [[], [send_body()], "text", 42, None, True])
async def test_body_must_be_an_object(api: Api, body: Any) -> None:
    """A JSON body that is not an object answers 400."""
    reply = await api.request(
        "POST", "/Messages", data=b"null" if body is None else None, json=body
    )
    assert_error(reply, 400, INVALID)
    await _assert_nothing_stored(api)


async def test_unknown_top_level_field_is_400(api: Api) -> None:
    """A field the API does not know answers 400 and names it."""
    message = await _rejected(api, {**send_body(), "priority": "high"})
    assert "priority" in message


async def test_body_too_large_is_413(api: Api) -> None:
    """A body over the size limit answers 413 with the JSON error body."""
    text = "x" * (11 * 1024 * 1024)
    await _rejected(api, send_body(text=text), status=413, code=20413)


# from


async def test_missing_from_is_400(api: Api) -> None:
    """A body without from answers 400."""
    await _rejected(api, _without("from"))


@pytest.mark.parametrize(
    "sender",
    [
        "comms_senderpool_x",
        None,
        [],
        {},
        {"senderPoolId": ""},
        {"senderPoolId": 5},
        {"senderId": None},
        {"senderPoolId": SAMPLE_POOL_ID, "senderId": UNKNOWN_SENDER},
        {"address": "+12065550101"},
        {"address": "+12065550101", "channel": "EMAIL"},
        {"address": "+12065550101", "channel": "PHONE"},
        {"address": "", "channel": "SMS"},
        {"address": 12065550101, "channel": "SMS"},
        {"pool": SAMPLE_POOL_ID},
    ],
)
async def test_malformed_from_is_400(api: Api, sender: Any) -> None:
    """from must be exactly {senderPoolId}, {senderId} or {address, channel} with SMS/RCS/WHATSAPP."""
    await _rejected(api, _with("from", sender))


@pytest.mark.parametrize(
    "sender",
    [
        {"senderPoolId": UNKNOWN_POOL},
        {"senderId": UNKNOWN_SENDER},
        {"address": "+12065550177", "channel": "SMS"},
        {"address": "+12065550101", "channel": "WHATSAPP"},
    ],
)
async def test_unknown_from_is_404(api: Api, sender: dict[str, str]) -> None:
    """An unknown pool, sender or sender address answers 404 with code 20404."""
    await _rejected(api, _with("from", sender), status=404, code=NOT_FOUND)


@pytest.mark.parametrize("pool", ["empty", "email", "deactivated"])
async def test_pool_that_cannot_send_is_400(launch: Launcher, pool: str) -> None:
    """A pool with no ACTIVATED SMS, RCS or WhatsApp sender answers 400."""
    async with launch(data=DELIVERY_ACCOUNT) as api:
        pool_id = await api.pool_named(pool)
        await _rejected(api, send_body(pool=pool_id))


async def test_pool_emptied_at_run_time_is_400(api: Api) -> None:
    """A pool whose senders were all removed answers 400."""
    members = await api.get(f"/SenderPools/{SAMPLE_POOL_ID}/Senders")
    for sender in members.body["senders"]:
        assert (
            await api.delete(f"/SenderPools/{SAMPLE_POOL_ID}/Senders/{sender['id']}")
        ).status == 204
    await _rejected(api, send_body())


@pytest.mark.parametrize("address", ["+12065550199", "support@acme.example"])
async def test_sender_that_cannot_send_is_400(api: Api, address: str) -> None:
    """A DEACTIVATED sender or an e-mail sender named in from answers 400."""
    sender_id = await api.sender_at(address)
    await _rejected(api, _with("from", {"senderId": sender_id}))


@pytest.mark.parametrize(
    ("form", "sender_address", "channel", "recipient_channel"),
    [
        ("senderId", "acme_rcs_agent", "RCS", "PHONE"),
        ("senderId", "+12065550101", "SMS", "PHONE"),
        ("address", "+14155550123", "WHATSAPP", "WHATSAPP"),
        ("address", "+12065550101", "sms", "PHONE"),
        ("address", "acme_rcs_agent", "RCS", "PHONE"),
    ],
)
async def test_every_from_form_is_accepted(
    api: Api, form: str, sender_address: str, channel: str, recipient_channel: str
) -> None:
    """{senderId} and {address, channel} (channel in any case) name one sender that sends."""
    if form == "senderId":
        sender = {"senderId": await api.sender_at(sender_address)}
    else:
        sender = {"address": sender_address, "channel": channel}
    body = _with("from", sender, send_body(recipients(1, recipient_channel)))
    reply = await api.post("/Messages", body)
    assert reply.status == 202, reply.text
    (message,) = await api.messages(reply.body["operationId"])
    assert message["from"]["senderPoolId"] is None


# content


async def test_missing_content_is_21602(api: Api) -> None:
    """A body without content answers 400 with code 21602."""
    await _rejected(api, _without("content"), code=MISSING_CONTENT)


@pytest.mark.parametrize(
    "content", [{}, {"text": ""}, {"text": "   \n"}, {"text": None}, {"media": []}]
)
async def test_empty_text_is_21602(api: Api, content: dict[str, Any]) -> None:
    """content without a non-empty text answers 400 with code 21602."""
    await _rejected(api, _with("content", content), code=MISSING_CONTENT)


@pytest.mark.parametrize(
    "content",
    [
        "Hi",
        ["Hi"],
        {"text": "Hi", "subject": "x"},
        {"text": "Hi", "media": "https://x.example/a.png"},
        {"text": "Hi", "media": ["ftp://x.example/a.png"]},
        {"text": "Hi", "media": [{"link": "https://x.example/a.png"}]},
        {"text": "Hi", "media": ["https://x.example/a.png"] * 11},
        {"contentId": "HX123"},
        {"contentId": 5},
        {"contentId": CONTENT_ID, "text": "Hi"},
        {"text": "Hi {{ first_name"},
        {"text": "{% if %}x{% endif %}"},
        {"text": "{% for i in (1..999999) %}x{% endfor %}"},
    ],
)
async def test_malformed_content_is_400(api: Api, content: Any) -> None:
    """Wrong content shapes, bad media, bad contentId and invalid Liquid answer 400."""
    await _rejected(api, _with("content", content))


@pytest.mark.parametrize(
    "content",
    [
        {"text": "Hi {{ first_name | default: 'there' }}"},
        {"text": "Hi", "media": ["https://x.example/a.png", {"url": "http://x.example/b.png"}]},
        {"contentId": CONTENT_ID},
    ],
)
async def test_valid_content_forms_are_accepted(api: Api, content: dict[str, Any]) -> None:
    """Text with Liquid, text with media, and a Content Template SID are all accepted."""
    reply = await api.post("/Messages", _with("content", content))
    assert reply.status == 202, reply.text


@pytest.mark.parametrize("field", ["content", "tag"])
@pytest.mark.parametrize(
    ("template", "variables"),
    [
        ("x{{ 10 | divided_by: n }}", {"n": "0"}),
        ("x{% for i in (1..n) %}x{% endfor %}", {"n": "100000"}),
    ],
)
async def test_template_that_fails_to_render_for_one_recipient_is_400(
    api: Api, field: str, template: str, variables: dict[str, str]
) -> None:
    """Text or a tag that fails to render with one recipient's variables answers 400, not 500."""
    to = recipients(2)
    to[0]["variables"] = {"n": "1"}
    to[1]["variables"] = variables
    if field == "content":
        body = send_body(to, text=template)
    else:
        body = send_body(to, tags={"campaign": template})
    await _rejected(api, body)


# to


@pytest.mark.parametrize("to", [None, [], {}, "+19143188062", {"address": "+19143188062"}])
async def test_to_must_be_a_non_empty_list(api: Api, to: Any) -> None:
    """to missing, empty or not a list answers 400."""
    await _rejected(api, _with("to", to))


async def test_missing_to_is_400(api: Api) -> None:
    """A body without to answers 400."""
    await _rejected(api, _without("to"))


async def test_more_than_10000_recipients_is_400(api: Api) -> None:
    """10,001 recipients in one request answer 400."""
    to = [*recipients(10_000), {"address": "+19143180000", "channel": "WHATSAPP"}]
    message = await _rejected(api, send_body(to))
    assert "10,000" in message or "10000" in message


async def test_exactly_10000_recipients_are_accepted(api: Api) -> None:
    """10,000 recipients, the documented maximum, are accepted and each stored."""
    operation_id = await api.send(send_body(recipients(10_000)))
    assert (await api.operation(operation_id))["stats"]["total"] == 10_000
    assert (await api.stats())["recipients_accepted"] == 10_000


@pytest.mark.parametrize(
    "address",
    [
        "19143188062",
        "+1 914 318 8062",
        "+1-914-318-8062",
        "+1914318806",
        "+191431880622",
        "+10000000000",
        "+999123456789",
        "hello",
        "",
        "+",
        "+1914318806\uff12",  # a fullwidth digit two
    ],
)
async def test_invalid_phone_number_is_21614(api: Api, address: str) -> None:
    """An address that is not a valid E.164 number answers 400 with code 21614."""
    body = send_body(recipients(3))
    body["to"][2]["address"] = address
    message = await _rejected(api, body, code=INVALID_ADDRESS)
    assert "to[2]" in message


@pytest.mark.parametrize("address", [None, 19143188062, ["+19143188062"], {"e164": "+19143188062"}])
async def test_address_must_be_a_string(api: Api, address: Any) -> None:
    """A recipient address that is missing or not a string answers 400."""
    await _rejected(api, _with("to.1.address", address))


async def test_missing_address_is_400(api: Api) -> None:
    """A recipient without address answers 400."""
    await _rejected(api, _without("to.1.address"))


@pytest.mark.parametrize(
    "channel", ["SMS", "RCS", "EMAIL", "", "Phonee", None, 5, True, ["PHONE"], {"name": "PHONE"}]
)
async def test_unknown_recipient_channel_is_400(api: Api, channel: Any) -> None:
    """A recipient channel other than PHONE or WHATSAPP (any case) answers 400."""
    await _rejected(api, _with("to.1.channel", channel))


async def test_missing_recipient_channel_is_400(api: Api) -> None:
    """A recipient without channel answers 400."""
    await _rejected(api, _without("to.1.channel"))


@pytest.mark.parametrize("channel", ["PHONE", "phone", "WHATSAPP", "whatsapp"])
async def test_recipient_channel_in_any_case_is_accepted(api: Api, channel: str) -> None:
    """PHONE and WHATSAPP are accepted upper- and lowercase."""
    reply = await api.post("/Messages", _with("to.0.channel", channel))
    assert reply.status == 202, reply.text


@pytest.mark.parametrize(
    "recipient",
    [
        "+19143188062",
        ["+19143188062", "PHONE"],
        None,
        {"address": "+19143188062", "channel": "PHONE", "name": "Ada"},
    ],
)
async def test_malformed_recipient_is_400(api: Api, recipient: Any) -> None:
    """A recipient that is not an object of address, channel and variables answers 400."""
    await _rejected(api, _with("to.1", recipient))


@pytest.mark.parametrize("variables", [[], "x", {"n": 1}, {"n": None}, {"n": ["a"]}, {"n": {}}])
async def test_variables_must_map_strings_to_strings(api: Api, variables: Any) -> None:
    """Recipient variables that are not a string-to-string object answer 400."""
    await _rejected(api, _with("to.2.variables", variables))


async def test_one_bad_recipient_rejects_the_whole_request(api: Api) -> None:
    """A single invalid address among 1,000 recipients fails them all: nothing is stored."""
    to = recipients(1000)
    to[999]["address"] = "+1555"
    message = await _rejected(api, send_body(to), code=INVALID_ADDRESS)
    assert "to[999]" in message


# tags


@pytest.mark.parametrize(
    "tags",
    [
        [],
        "campaign",
        {"campaign": 5},
        {"campaign": None},
        {"campaign": ["a"]},
        {f"k{i}": "v" for i in range(11)},
        {"k" * 129: "v"},
        {"": "v"},
        {"bad key": "v"},
        {"bad/key": "v"},
        {"campaign": "v" * 257},
        {"campaign": "spring sale"},
        {"campaign": "ünïcode"},
        {"campaign": ""},
        {"campaign": "{{ missing }}"},
        {"campaign": "{{ oops"},
    ],
)
async def test_tags_breaking_the_limits_are_400(api: Api, tags: Any) -> None:
    """Tags: at most 10; key <= 128 and value <= 256 chars of [a-zA-Z0-9._~-] after rendering."""
    await _rejected(api, _with("tags", tags))


async def test_tag_rendering_badly_for_one_recipient_rejects_all(api: Api) -> None:
    """A tag that renders to a forbidden value for one recipient rejects the whole request."""
    to = [{"address": phone(i), "channel": "PHONE", "variables": {"c": "ok"}} for i in range(3)]
    to[1]["variables"] = {"c": "not ok"}
    message = await _rejected(api, send_body(to, tags={"campaign": "{{c}}"}))
    assert "to[1]" in message


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(10)},
        {"k" * 128: "v" * 256},
        {"a.b_c~d-e": "A.z_0~9-"},
        {"campaign": "{{ c | default: 'spring' }}"},
        {},
    ],
)
async def test_tags_at_the_limits_are_accepted(api: Api, tags: dict[str, str]) -> None:
    """10 tags, a 128-char key, a 256-char value and every allowed character are accepted."""
    reply = await api.post("/Messages", _with("tags", tags))
    assert reply.status == 202, reply.text


# schedule


@pytest.mark.parametrize(
    "schedule",
    [
        "2026-03-02T00:00:00Z",
        [],
        {"sendAt": 1772409600},
        {"sendAt": "tomorrow"},
        {"sendAt": "2026-03-02"},
        {"sendAt": "2026-03-02T09:00:00"},
        {"sendAt": ["2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z"]},
        {"sendAt": _iso(T0_WALL + 7 * 86400 + 60)},
        {"sendAt": "2027-01-01T00:00:00Z"},
        {"sendAt": _iso(T0_WALL + 60), "timezone": "UTC"},
    ],
)
async def test_bad_schedule_is_400(api: Api, schedule: Any) -> None:
    """sendAt must be an RFC 3339 date-time with an offset, at most 7 days ahead."""
    await _rejected(api, _with("schedule", schedule, send_body(recipients(3))))


@pytest.mark.parametrize(
    "send_at",
    [
        _iso(T0_WALL + 3600),
        [_iso(T0_WALL + 3600)],
        "2026-03-01T02:00:00+01:00",
        _iso(T0_WALL + 7 * 86400 - 60),
    ],
)
async def test_valid_schedule_is_accepted(api: Api, send_at: Any) -> None:
    """sendAt as a string or one-element array, up to 7 days ahead, is accepted as SCHEDULED."""
    operation_id = await api.send(_with("schedule", {"sendAt": send_at}, send_body(recipients(1))))
    assert (await api.operation(operation_id))["status"] == "SCHEDULED"


async def test_send_at_in_the_past_is_sent_now_and_readable(api: Api) -> None:
    """A sendAt already past is accepted, not SCHEDULED, and its messages can be listed."""
    body = _with("schedule", {"sendAt": "2026-01-01T00:00:00Z"}, send_body(recipients(1)))
    operation_id = await api.send(body)
    assert (await api.operation(operation_id))["status"] != "SCHEDULED"
    (message,) = await api.messages(operation_id)
    assert message["scheduledFor"].startswith("2026-01-01T00:00:00")
