"""Resources read leniently from the API's JSON, and the send body written exactly."""

from __future__ import annotations

from typing import Any

import pytest

from campaign.exceptions import UnexpectedResponseError
from campaign.resources import (
    Message,
    MessageBatch,
    MessageOperation,
    PoolOperation,
    Recipient,
    Sender,
    SenderPool,
)

SENDER = {
    "id": "comms_sender_01h9krwprkeee8fzqspvwy6nq8",
    "displayName": "Cool Support",
    "channel": "SMS",
    "address": "+12034458910",
    "status": "ACTIVATED",
    "tags": {},
    "createdAt": "2022-08-24T14:15:22Z",
    "updatedAt": "2023-09-13T12:00:24Z",
}
POOL = {
    "id": "comms_senderpool_01h9krwprkeee8fzqspvwy6nq8",
    "name": "Sales",
    "tags": {"region": "APAC"},
    "createdAt": "2019-08-24T14:15:22Z",
    "updatedAt": "2019-08-24T14:15:22Z",
}
POOL_OPERATION = {
    "id": "comms_operation_01h9krwprkeee8fzqspvwy6nq8",
    "status": "COMPLETED",
    "stats": {"total": 2, "queued": 0, "created": 1, "failed": 1},
    "createdAt": "2024-04-05T06:20:00Z",
    "updatedAt": "2024-04-05T06:20:00Z",
}


@pytest.mark.parametrize(
    ("kind", "raw"), [(Sender, SENDER), (SenderPool, POOL), (PoolOperation, POOL_OPERATION)]
)
def test_documented_json_round_trips(kind: Any, raw: dict[str, Any]) -> None:
    """A documented object read and written back is the same object, with the same keys."""
    assert kind.from_json(raw).to_json() == raw


@pytest.mark.parametrize("kind", [Sender, SenderPool, PoolOperation, MessageOperation, Message])
@pytest.mark.parametrize("raw", [None, [], "x", {}, {"id": ""}, {"id": 5}])
def test_an_object_without_an_id_is_unexpected(kind: Any, raw: Any) -> None:
    """Anything without a string id is an UnexpectedResponseError, never a KeyError."""
    with pytest.raises(UnexpectedResponseError, match="without an id"):
        kind.from_json(raw)


def test_missing_and_extra_fields_are_tolerated() -> None:
    """Absent fields take empty defaults, odd types are ignored, unknown fields are dropped."""
    sender = Sender.from_json(
        {"id": "s", "channel": "sms", "tags": ["x"], "status": None, "new": 1}
    )
    assert sender == Sender("s", "", "SMS", "", "", {}, None, None)
    assert not sender.activated


def test_pool_operation_counts_and_completion() -> None:
    """A pool operation knows when it is done and how many senders failed."""
    processing = PoolOperation.from_json(
        {"id": "o", "status": "processing", "stats": {"failed": "2", "created": True}}
    )
    assert (processing.done, processing.failed, processing.stats) == (False, 0, {})
    assert PoolOperation.from_json(POOL_OPERATION).done
    assert PoolOperation.from_json({"id": "o"}).done


def test_a_message_is_read_with_its_operation_and_sender() -> None:
    """A message's recipient, resolved sender and operation come out of the nested JSON."""
    message = Message.from_json(
        {
            "id": "comms_message_1",
            "from": {
                "address": "+12065558844",
                "channel": "SMS",
                "senderId": "s1",
                "senderPoolId": "p1",
            },
            "to": [{"address": "+14153901002", "channel": "phone"}],
            "status": "SENT",
            "tags": {"campaign": "spring", "row": "7"},
            "related": [
                {"name": "OTHER", "id": "x"},
                {"name": "OPERATION", "id": "op1", "uri": "https://x"},
            ],
            "scheduledFor": None,
            "createdAt": "2023-08-24T14:15:22Z",
        }
    )
    assert (message.to_address, message.to_channel, message.operation_id) == (
        "+14153901002",
        "PHONE",
        "op1",
    )
    assert (message.sender_id, message.sender_pool_id, message.tags["row"]) == ("s1", "p1", "7")


def test_a_message_operation_keeps_its_stats() -> None:
    """A message operation's status and counters are read as they are."""
    operation = MessageOperation.from_json(
        {"id": "o", "status": "COMPLETED", "stats": {"total": 3, "delivered": 2}}
    )
    assert (operation.status, operation.stats) == ("COMPLETED", {"total": 3, "delivered": 2})


def test_a_batch_writes_the_documented_send_body() -> None:
    """A batch becomes the POST /Messages body of comms-api.md, variables only where given."""
    batch = MessageBatch(
        [
            Recipient("+19143188062", variables={"first_name": "Ada"}),
            Recipient("+19143188063", "WHATSAPP"),
        ],
        sender_pool_id="comms_senderpool_1",
        text="Hi {{first_name}}!",
        tags={"campaign": "spring-sale", "row": "{{_row}}"},
        send_at="2026-12-01T09:00:00Z",
    )
    assert batch.to_json() == {
        "from": {"senderPoolId": "comms_senderpool_1"},
        "to": [
            {"address": "+19143188062", "channel": "PHONE", "variables": {"first_name": "Ada"}},
            {"address": "+19143188063", "channel": "WHATSAPP"},
        ],
        "content": {"text": "Hi {{first_name}}!"},
        "tags": {"campaign": "spring-sale", "row": "{{_row}}"},
        "schedule": {"sendAt": "2026-12-01T09:00:00Z"},
    }


def test_a_batch_may_use_one_sender_and_a_content_template() -> None:
    """`sender_id` and `content_id` give the other `from` and `content` forms."""
    body = MessageBatch(
        [Recipient("+19143188062")], sender_id="comms_sender_1", content_id="HX1"
    ).to_json()
    assert (body["from"], body["content"]) == ({"senderId": "comms_sender_1"}, {"contentId": "HX1"})
    assert "tags" not in body
    assert "schedule" not in body


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sender_pool_id": "p", "sender_id": "s", "text": "t"}, "exactly one of sender_pool_id"),
        ({"text": "t"}, "exactly one of sender_pool_id"),
        ({"sender_pool_id": "p"}, "exactly one of text"),
        ({"sender_pool_id": "p", "text": "t", "content_id": "HX"}, "exactly one of text"),
        ({"sender_pool_id": "p", "text": "t", "count": 0}, "1 to 10,000 recipients, not 0"),
        (
            {"sender_pool_id": "p", "text": "t", "count": 10_001},
            "1 to 10,000 recipients, not 10001",
        ),
    ],
)
def test_an_impossible_batch_is_refused(settings: dict[str, Any], message: str) -> None:
    """A batch that the API would reject for its shape is a ValueError before any request."""
    count = settings.pop("count", 1)
    with pytest.raises(ValueError, match=message):
        MessageBatch([Recipient("+19143188062")] * count, **settings)
