"""CommsClient against the in-process emulator, and against scripted servers for odd answers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web
from api_fakes import (
    LEAK,
    SID,
    FakeSleep,
    FakeTime,
    Reply,
    client_credentials,
    emulator_credentials,
    scripted_server,
)

from campaign.client import CommsClient
from campaign.credentials import Credentials
from campaign.emulator import SAMPLE_POOL_ID, Faults, RunningEmulator, serve
from campaign.exceptions import (
    AmbiguousError,
    ApiError,
    AuthenticationError,
    ConnectionLostError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnexpectedResponseError,
    UnreachableError,
)
from campaign.resources import MessageBatch, Recipient
from campaign.retries import RetryPolicy
from campaign.transport import MockTransport, Request, Response

SENDER_1 = "comms_sender_01kdvdna000000000000000001"
SENDER_2 = "comms_sender_01kdvdna000000000000000002"
DEACTIVATED = "comms_sender_01kdvdna000000000000000009"
UNKNOWN_POOL = "comms_senderpool_01kdvdna0000000000000000zz"
OPERATION = "comms_operation_01h9krwprkeee8fzqspvwy6nq8"


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with serve(port=0, credentials=emulator_credentials()) as running:
        yield running


def client_for(url: str, *, sleep: FakeSleep | None = None, **kw: Any) -> CommsClient:
    retry = RetryPolicy(sleep=sleep or FakeSleep())
    return CommsClient(
        base_url=url, credentials=client_credentials(), retry=retry, environ={}, **kw
    )


def batch(count: int = 1) -> MessageBatch:
    return MessageBatch(
        [Recipient(f"+1914318{i:04d}") for i in range(count)],
        sender_pool_id=SAMPLE_POOL_ID,
        text="Hi {{ name | default: 'there' }}",
        tags={"campaign": "test"},
    )


def requests_to(emu: RunningEmulator, route: str) -> dict[str, int]:
    return emu.stats.snapshot().get(route, {})


# Senders


async def test_list_senders_returns_every_sample_sender(emu: RunningEmulator) -> None:
    """Listing senders yields the nine sample senders as typed values."""
    async with client_for(emu.base_url) as client:
        senders = [s async for s in client.list_senders()]
    assert len(senders) == 9
    assert senders[0].id == SENDER_1
    assert senders[0].channel == "SMS"
    assert senders[0].activated


@pytest.mark.parametrize(
    ("status", "channel", "count"),
    [("ACTIVATED", None, 8), ("deactivated", None, 1), (None, "rcs", 1), ("ACTIVATED", "SMS", 5)],
)
async def test_list_senders_filters_by_status_and_channel(
    emu: RunningEmulator, status: str | None, channel: str | None, count: int
) -> None:
    """Status and channel filters reach the API (in upper case) and narrow the list."""
    async with client_for(emu.base_url) as client:
        senders = [s async for s in client.list_senders(status=status, channel=channel)]
    assert len(senders) == count
    assert all(status is None or s.status == status.upper() for s in senders)


async def test_fetch_sender_returns_one_sender(emu: RunningEmulator) -> None:
    """Fetching a sender by id returns its address and status."""
    async with client_for(emu.base_url) as client:
        sender = await client.fetch_sender(DEACTIVATED)
    assert (sender.address, sender.status, sender.activated) == (
        "+12065550199",
        "DEACTIVATED",
        False,
    )


# Pagination


@pytest.mark.parametrize("next_as_token", [False, True], ids=["url", "token"])
async def test_lists_follow_every_page(next_as_token: bool) -> None:
    """A list spanning five pages is read in full, whether `next` is a URL or a bare token."""
    async with serve(
        port=0, credentials=emulator_credentials(), next_as_token=next_as_token
    ) as emu:
        async with client_for(emu.base_url) as client:
            ids = [s.id async for s in client.list_senders(page_size=2)]
        assert requests_to(emu, "GET /Senders") == {"200": 5}
    assert len(ids) == len(set(ids)) == 9


@pytest.mark.parametrize("next_as_token", [False, True], ids=["url", "token"])
async def test_pagination_keeps_the_filters(next_as_token: bool) -> None:
    """Later pages keep the first page's filters, also when only a token comes back."""
    async with (
        serve(port=0, credentials=emulator_credentials(), next_as_token=next_as_token) as emu,
        client_for(emu.base_url) as client,
    ):
        senders = [s async for s in client.list_senders(status="ACTIVATED", page_size=3)]
    assert len(senders) == 8
    assert {s.status for s in senders} == {"ACTIVATED"}


async def test_pagination_follows_a_relative_link_and_a_top_level_token() -> None:
    """A path-only `next` and a top-level `nextPageToken` are both followed."""
    pages = (
        Reply(
            body={
                "senderPools": [{"id": "p1"}],
                "pagination": {"next": "/preview/SenderPools?pageToken=a"},
            }
        ),
        Reply(body={"senderPools": [{"id": "p2"}], "nextPageToken": "b"}),
        Reply(body={"senderPools": [{"id": "p3"}], "pagination": {"next": None}}),
    )
    async with scripted_server(*pages) as (url, script), client_for(url) as client:
        ids = [p.id async for p in client.list_pools()]
    assert ids == ["p1", "p2", "p3"]
    assert [path for _, path, _ in script.seen] == [
        "/preview/SenderPools",
        "/preview/SenderPools?pageToken=a",
        "/preview/SenderPools?pageToken=b",
    ]


async def test_pagination_refuses_a_link_to_another_server() -> None:
    """A `next` URL on another host is not followed, so credentials never go there."""
    page = Reply(
        body={"senders": [], "pagination": {"next": "https://elsewhere.example/Senders?p=2"}}
    )
    async with scripted_server(page) as (url, script), client_for(url) as client:
        with pytest.raises(UnexpectedResponseError, match="another server"):
            [s async for s in client.list_senders()]
    assert len(script.seen) == 1


async def test_pagination_stops_when_next_repeats() -> None:
    """A server that keeps answering the same `next` does not loop the client forever."""
    page = {"senders": [{"id": "s1"}], "pagination": {"next": "same"}}
    async with (
        scripted_server(Reply(body=page), Reply(body=page)) as (url, script),
        client_for(url) as client,
    ):
        ids = [s.id async for s in client.list_senders()]
    assert ids == ["s1", "s1"]
    assert len(script.seen) == 2


# Sender pools


async def test_list_pools_returns_the_sample_pool(emu: RunningEmulator) -> None:
    """The sample account has one pool, listed with its tags."""
    async with client_for(emu.base_url) as client:
        pools = [p async for p in client.list_pools()]
    assert [(p.id, p.name, p.tags) for p in pools] == [
        (SAMPLE_POOL_ID, "Sample Pool", {"purpose": "sample"})
    ]


async def test_create_pool_resolves_the_new_pool_through_its_operation(
    emu: RunningEmulator,
) -> None:
    """Creating a pool returns the pool found by its operation, and the operation's counts."""
    async with client_for(emu.base_url) as client:
        created = await client.create_pool(
            "Spring", tags={"region": "EU"}, sender_ids=[SENDER_1, DEACTIVATED]
        )
        members = [s.id async for s in client.list_pool_senders(created.pool.id)]
        listed = [p.id async for p in client.list_pools(operation_id=created.operation.id)]
    assert (created.pool.name, created.pool.tags) == ("Spring", {"region": "EU"})
    assert created.operation.stats == {"total": 2, "queued": 0, "created": 1, "failed": 1}
    assert created.operation.failed == 1
    assert members == [SENDER_1]
    assert listed == [created.pool.id]


async def test_create_pool_waits_for_a_processing_operation() -> None:
    """A pool operation still PROCESSING is polled (with the fake sleep) until it completes."""
    pool = {"id": "comms_senderpool_new", "name": "N"}
    operation = {"id": OPERATION, "status": "PROCESSING", "stats": {}}
    replies = (
        Reply(202, {"operationId": OPERATION}),
        Reply(body=operation),
        Reply(body={**operation, "status": "COMPLETED", "stats": {"failed": 0}}),
        Reply(body={"senderPools": [], "pagination": {"next": None}}),
        Reply(body={"senderPools": [pool], "pagination": {"next": None}}),
    )
    sleep = FakeSleep()
    async with scripted_server(*replies) as (url, _), client_for(url, sleep=sleep) as client:
        created = await client.create_pool("N")
    assert created.pool.id == "comms_senderpool_new"
    assert created.operation.status == "COMPLETED"
    assert sleep.delays == [0.25, 0.25]


async def test_create_pool_gives_up_when_the_pool_never_appears() -> None:
    """A pool that is never listed ends in UnexpectedResponseError after a bounded wait."""
    empty = Reply(body={"senderPools": [], "pagination": {"next": None}})
    replies = (
        Reply(202, {"operationId": OPERATION}),
        Reply(body={"id": OPERATION, "status": "COMPLETED"}),
        *[empty] * 4,
    )
    sleep = FakeSleep()
    async with (
        scripted_server(*replies) as (url, _),
        client_for(url, sleep=sleep, pool_wait_s=1.0) as client,
    ):
        with pytest.raises(UnexpectedResponseError, match="does not list it"):
            await client.create_pool("N")
    assert sum(sleep.delays) == pytest.approx(1.0)


async def test_fetch_update_and_delete_a_pool(emu: RunningEmulator) -> None:
    """A pool can be fetched, renamed, re-tagged and deleted; afterwards it is not found."""
    async with client_for(emu.base_url) as client:
        assert (await client.fetch_pool(SAMPLE_POOL_ID)).name == "Sample Pool"
        renamed = await client.update_pool(SAMPLE_POOL_ID, name="Renamed", tags={"a": "b"})
        assert (renamed.name, renamed.tags) == ("Renamed", {"a": "b"})
        await client.delete_pool(SAMPLE_POOL_ID)
        with pytest.raises(NotFoundError):
            await client.fetch_pool(SAMPLE_POOL_ID)


async def test_add_and_remove_pool_senders(emu: RunningEmulator) -> None:
    """Senders are added in one request (a refused one counted as failed) and removed one by one."""
    async with client_for(emu.base_url) as client:
        created = await client.create_pool("Empty")
        operation = await client.add_pool_senders(
            created.pool.id, [SENDER_1, SENDER_2, DEACTIVATED]
        )
        before = [s.id async for s in client.list_pool_senders(created.pool.id)]
        await client.remove_pool_sender(created.pool.id, SENDER_1)
        after = [s.id async for s in client.list_pool_senders(created.pool.id, status="ACTIVATED")]
        fetched = await client.fetch_pool_operation(operation.id)
        operations = [op.id async for op in client.list_pool_operations()]
    assert (operation.stats["created"], operation.failed) == (2, 1)
    assert before == [SENDER_1, SENDER_2]
    assert after == [SENDER_2]
    assert fetched == operation
    assert operations == [created.operation.id, operation.id]


async def test_pool_sender_calls_name_an_unknown_pool(emu: RunningEmulator) -> None:
    """Adding to or removing from an unknown pool is a NotFoundError (fatal for the run)."""
    async with client_for(emu.base_url) as client:
        with pytest.raises(NotFoundError, match="SenderPool"):
            await client.add_pool_senders(UNKNOWN_POOL, [SENDER_1])
        with pytest.raises(NotFoundError):
            await client.remove_pool_sender(SAMPLE_POOL_ID, DEACTIVATED)


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.add_pool_senders(SAMPLE_POOL_ID, []),
        lambda client: client.update_pool(SAMPLE_POOL_ID),
    ],
    ids=["add-no-senders", "update-nothing"],
)
async def test_pool_calls_refuse_an_empty_change(emu: RunningEmulator, call: Any) -> None:
    """Adding no senders or updating nothing is refused before any request."""
    async with client_for(emu.base_url) as client:
        with pytest.raises(ValueError, match="needs"):
            await call(client)
    assert emu.stats.total() == 0


async def test_ids_are_percent_encoded_in_paths(emu: RunningEmulator) -> None:
    """An id holding a slash stays one path segment instead of reaching another route."""
    async with client_for(emu.base_url) as client:
        with pytest.raises(NotFoundError):
            await client.fetch_pool("../Senders")
        with pytest.raises(ValueError, match="empty"):
            await client.fetch_pool(" ")


# Messages


async def test_send_returns_the_operation_id_and_messages_can_be_read(
    emu: RunningEmulator,
) -> None:
    """A batch is accepted; its operation, messages and each message can be fetched back."""
    async with client_for(emu.base_url) as client:
        operation_id = await client.send(batch(3))
        operation = await client.fetch_operation(operation_id)
        messages = [m async for m in client.list_messages(operation_id=operation_id, page_size=2)]
        one = await client.fetch_message(messages[0].id)
        operations = [op.id async for op in client.list_operations()]
    assert operation.id == operation_id
    assert operation.stats["total"] == 3
    assert len(messages) == 3
    assert one == messages[0]
    assert (one.operation_id, one.sender_pool_id, one.tags) == (
        operation_id,
        SAMPLE_POOL_ID,
        {"campaign": "test"},
    )
    assert operations == [operation_id]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"operationId": OPERATION}, {}),
        ({"operationLocation": f"https://x/v1/Messages/Operations/{OPERATION}"}, {}),
        (None, {"Location": f"https://x/v1/Messages/Operations/{OPERATION}"}),
        (b"", {"operationId": OPERATION}),
        ({}, {"X-Twilio-Operation-Id": OPERATION}),
    ],
    ids=["body", "body-location", "location-header", "operationId-header", "twilio-header"],
)
async def test_send_finds_the_operation_id_in_body_or_headers(
    body: Any, headers: dict[str, str]
) -> None:
    """The operation id is read from the body first, then the Location and operationId headers."""

    def answer(request: Request) -> Response:
        raw = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
        return Response(202, headers, raw)

    client = CommsClient(
        base_url="https://comms.example/v1",
        credentials=client_credentials(),
        transport=MockTransport(answer),
        environ={},
    )
    async with client:
        assert await client.send(batch()) == OPERATION


async def test_send_json_posts_the_body_as_given_with_the_json_headers() -> None:
    """send_json sends its bytes untouched to /Messages, as send would a batch's to_json()."""
    transport = MockTransport(
        lambda _request: Response(202, {}, orjson.dumps({"operationId": OPERATION}))
    )
    client = CommsClient(
        base_url="https://comms.example/v1",
        credentials=client_credentials(),
        transport=transport,
        environ={},
    )
    body = orjson.dumps(batch(2).to_json())
    async with client:
        assert await client.send_json(body) == OPERATION
        assert await client.send(batch(2)) == OPERATION
    raw, wrapped = transport.requests
    assert raw == wrapped
    assert (raw.method, raw.url, raw.body) == ("POST", "https://comms.example/v1/Messages", body)
    assert raw.headers["Content-Type"] == "application/json"


async def test_send_without_any_operation_id_is_unexpected() -> None:
    """A 202 naming no operation anywhere is raised as UnexpectedResponseError (ambiguous)."""
    transport = MockTransport(lambda _request: Response(202, {}, b"accepted"))
    client = CommsClient(
        base_url="https://comms.example/v1",
        credentials=client_credentials(),
        transport=transport,
        environ={},
    )
    async with client:
        with pytest.raises(UnexpectedResponseError) as caught:
            await client.send(batch())
    assert isinstance(caught.value, AmbiguousError)
    assert caught.value.status == 202


async def test_send_retries_a_429_after_the_time_it_names() -> None:
    """A 429 is retried once the Retry-After has passed; the fake sleep moves the emulator's clock."""
    time = FakeTime()
    sleep = FakeSleep(then=lambda seconds: setattr(time, "now", time.now + seconds))
    async with serve(
        port=0,
        credentials=emulator_credentials(),
        clock=time.clock(),
        faults=Faults(rate_limit_per_s=1.0),
    ) as emu:
        async with client_for(emu.base_url, sleep=sleep) as client:
            await client.send(batch())
            await client.send(batch())
        assert requests_to(emu, "POST /Messages") == {"202": 2, "429": 1}
    assert sleep.delays == [1.0]


async def test_send_raises_rate_limited_when_attempts_run_out(emu: RunningEmulator) -> None:
    """With retries off, a 429 comes back at once as RateLimitedError carrying Retry-After."""
    emu.faults.configure(Faults(rate_limit_per_s=1.0))
    async with client_for(emu.base_url) as client:
        client.retry = RetryPolicy(max_attempts=1)
        await client.send(batch())
        with pytest.raises(RateLimitedError) as caught:
            await client.send(batch())
    assert (caught.value.status, caught.value.code, caught.value.retry_after_s) == (429, 20429, 1.0)


@pytest.mark.parametrize(
    ("faults", "error", "processed"),
    [
        (Faults(error_rate=1.0), ServerError, 0),
        (Faults(drop_rate=1.0), ConnectionLostError, 0),
        (Faults(accept_then_fail_rate=1.0, seed=1), ServerError, 1),
        (Faults(accept_then_fail_rate=1.0, seed=4), ConnectionLostError, 1),
    ],
    ids=["5xx", "dropped", "accepted-then-500", "accepted-then-dropped"],
)
async def test_send_never_retries_an_ambiguous_failure(
    emu: RunningEmulator, faults: Faults, error: type[AmbiguousError], processed: int
) -> None:
    """A POST /Messages answered 5xx or dropped is raised as ambiguous after exactly one request."""
    emu.faults.configure(faults)
    sleep = FakeSleep()
    async with client_for(emu.base_url, sleep=sleep) as client:
        with pytest.raises(error) as caught:
            await client.send(batch())
    assert isinstance(caught.value, AmbiguousError)
    assert sum(requests_to(emu, "POST /Messages").values()) == 1
    assert emu.store.recipients_accepted == processed  # accepted-then-failed really sent
    assert sleep.delays == []


# Retries of GETs and management calls


async def test_get_is_retried_after_a_5xx_until_it_succeeds(emu: RunningEmulator) -> None:
    """An idempotent GET answered 5xx is retried after the backoff, then succeeds."""
    emu.faults.configure(Faults(error_rate=1.0))
    sleep = FakeSleep(then=lambda _: emu.faults.configure(Faults()))
    async with client_for(emu.base_url, sleep=sleep) as client:
        pool = await client.fetch_pool(SAMPLE_POOL_ID)
    assert pool.id == SAMPLE_POOL_ID
    assert sleep.delays == [0.5]
    assert sum(requests_to(emu, "GET /SenderPools/{pool_id}").values()) == 2


async def test_get_retries_are_bounded(emu: RunningEmulator) -> None:
    """A GET that keeps failing is tried `max_attempts` times with doubling waits, then raised."""
    emu.faults.configure(Faults(error_rate=1.0))
    sleep = FakeSleep()
    async with client_for(emu.base_url, sleep=sleep) as client:
        with pytest.raises(ServerError):
            await client.fetch_pool(SAMPLE_POOL_ID)
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert sum(requests_to(emu, "GET /SenderPools/{pool_id}").values()) == 4


@pytest.mark.parametrize("retry_after", ["3", "0"])
async def test_a_429_on_a_get_waits_what_retry_after_says(retry_after: str) -> None:
    """A GET answered 429 waits exactly Retry-After seconds before the next attempt."""
    too_many = Reply(429, {"code": 20429, "message": "Too many"}, {"Retry-After": retry_after})
    ok = Reply(body={"id": SAMPLE_POOL_ID, "name": "P"})
    sleep = FakeSleep()
    async with (
        scripted_server(too_many, too_many, ok) as (url, _),
        client_for(url, sleep=sleep) as client,
    ):
        pool = await client.fetch_pool(SAMPLE_POOL_ID)
    assert pool.name == "P"
    assert sleep.delays == [float(retry_after)] * 2


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.create_pool("N"),
        lambda client: client.update_pool(SAMPLE_POOL_ID, name="N"),
        lambda client: client.delete_pool(SAMPLE_POOL_ID),
        lambda client: client.add_pool_senders(SAMPLE_POOL_ID, [SENDER_1]),
        lambda client: client.remove_pool_sender(SAMPLE_POOL_ID, SENDER_1),
    ],
    ids=["create", "update", "delete", "add-senders", "remove-sender"],
)
async def test_management_calls_retry_a_429_but_not_a_5xx(call: Any) -> None:
    """Pool changes retry a 429 (never processed) but raise a 5xx at once (maybe processed)."""
    too_many = Reply(429, {"code": 20429, "message": "Too many"}, {"Retry-After": "2"})
    broken = Reply(503, {"code": 20503, "message": "Unavailable"})
    sleep = FakeSleep()
    async with (
        scripted_server(too_many, broken) as (url, script),
        client_for(url, sleep=sleep) as client,
    ):
        with pytest.raises(ServerError):
            await call(client)
    assert sleep.delays == [2.0]
    assert len(script.seen) == 2


async def test_a_retry_after_longer_than_max_wait_is_raised_not_waited() -> None:
    """A Retry-After beyond `max_wait_s` is handed to the caller instead of slept through."""
    too_many = Reply(429, {"code": 20429, "message": "Too many"}, {"Retry-After": "3600"})
    sleep = FakeSleep()
    async with scripted_server(too_many) as (url, _), client_for(url, sleep=sleep) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.fetch_pool(SAMPLE_POOL_ID)
    assert caught.value.retry_after_s == 3600
    assert sleep.delays == []


async def test_retries_are_logged_as_events() -> None:
    """Each retry is one `campaign.client.retry_scheduled` event with its wait."""
    too_many = Reply(429, {"code": 20429, "message": "Too many"}, {"Retry-After": "1"})
    ok = Reply(body={"id": SAMPLE_POOL_ID, "name": "P"})
    async with scripted_server(too_many, ok) as (url, _), client_for(url) as client:
        with structlog.testing.capture_logs() as events:
            await client.fetch_pool(SAMPLE_POOL_ID)
    assert [(e["event"], e["status"], e["wait_s"], e["attempt"]) for e in events] == [
        ("campaign.client.retry_scheduled", 429, 1.0, 1)
    ]


# Error classes and odd error bodies


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "code", "message"),
    [
        (
            400,
            {
                "code": 21614,
                "message": "Not a phone number",
                "more_info": "https://x/21614",
                "status": 400,
            },
            "application/json",
            RequestRejectedError,
            21614,
            "Not a phone number",
        ),
        (
            400,
            {"code": 21614, "message": "camel", "moreInfo": "https://x/21614"},
            "application/json",
            RequestRejectedError,
            21614,
            "camel",
        ),
        (
            422,
            {"error": {"code": "20001", "message": "nested"}},
            "application/json",
            RequestRejectedError,
            20001,
            "nested",
        ),
        (
            400,
            {"errors": [{"field": "to[3]", "message": "bad"}, {"message": "worse"}]},
            "application/json",
            RequestRejectedError,
            None,
            "to[3]: bad; worse",
        ),
        (
            502,
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            ServerError,
            None,
            "502 Bad Gateway",
        ),
        (503, "", "text/plain", ServerError, None, "Service Unavailable"),
        (
            401,
            {"code": 20003, "message": "Authenticate"},
            "application/json",
            AuthenticationError,
            20003,
            "Authenticate",
        ),
        (403, "Forbidden", "text/plain", AuthenticationError, None, "Forbidden"),
        (
            404,
            {"detail": "no such pool"},
            "application/problem+json",
            NotFoundError,
            None,
            "no such pool",
        ),
        (409, [1, 2], "application/json", RequestRejectedError, None, "Conflict"),
    ],
    ids=[
        "documented",
        "camelCase",
        "nested",
        "errors-list",
        "gateway-html",
        "empty",
        "401",
        "403",
        "404-problem",
        "odd-json",
    ],
)
async def test_error_answers_become_their_class_whatever_the_body(
    status: int,
    body: Any,
    content_type: str,
    error: type[ApiError],
    code: int | None,
    message: str,
) -> None:
    """Every error status maps to its class, and the body's code and message survive any shape."""
    reply = Reply(status, body, content_type=content_type)
    async with scripted_server(*[reply] * 4) as (url, _), client_for(url) as client:
        with pytest.raises(error) as caught:
            await client.fetch_pool(SAMPLE_POOL_ID)
    assert (caught.value.status, caught.value.code, caught.value.api_message) == (
        status,
        code,
        message,
    )
    assert caught.value.url.endswith(f"/SenderPools/{SAMPLE_POOL_ID}")


async def test_a_success_that_is_not_json_is_unexpected() -> None:
    """A 200 whose body is not JSON is an UnexpectedResponseError, not a traceback."""
    html = Reply(body="<html>hi</html>", content_type="text/html")
    async with scripted_server(html) as (url, _), client_for(url) as client:
        with pytest.raises(UnexpectedResponseError, match="not JSON"):
            await client.fetch_pool(SAMPLE_POOL_ID)


async def test_a_list_without_its_array_is_unexpected() -> None:
    """A list answer missing its array is an UnexpectedResponseError."""
    async with scripted_server(Reply(body={"pools": []})) as (url, _), client_for(url) as client:
        with pytest.raises(UnexpectedResponseError, match="senderPools"):
            [p async for p in client.list_pools()]


async def test_wrong_credentials_are_an_authentication_error(emu: RunningEmulator) -> None:
    """The emulator's 401 for a wrong token is an AuthenticationError with Twilio's code."""
    client = CommsClient(
        base_url=emu.base_url, credentials=Credentials(SID, "wrong-token"), environ={}
    )
    async with client:
        with pytest.raises(AuthenticationError) as caught:
            [s async for s in client.list_senders()]
    assert (caught.value.status, caught.value.code) == (401, 20003)


async def test_an_unreachable_server_is_reported_without_retrying() -> None:
    """Connection refused is an UnreachableError at once: nothing was sent."""
    async with serve(port=0) as emu:
        url = emu.base_url
    sleep = FakeSleep()
    async with client_for(url, sleep=sleep) as client:
        with pytest.raises(UnreachableError, match="refused"):
            await client.fetch_pool(SAMPLE_POOL_ID)
    assert sleep.delays == []


# Lifecycle and configuration


async def test_the_client_refuses_use_outside_its_block(emu: RunningEmulator) -> None:
    """Calls before opening or after closing, reopening, and double opening raise RuntimeError."""
    client = client_for(emu.base_url)
    with pytest.raises(RuntimeError, match="async with"):
        await client.fetch_pool(SAMPLE_POOL_ID)
    async with client:
        with pytest.raises(RuntimeError, match="already open"):
            await client.__aenter__()
    with pytest.raises(RuntimeError, match="has been closed"):
        await client.fetch_pool(SAMPLE_POOL_ID)
    with pytest.raises(RuntimeError, match="Cannot reopen"):
        await client.__aenter__()


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        (
            "http://a.example/v1/",
            {"CAMPAIGN_API_BASE_URL": "http://b.example"},
            "http://a.example/v1",
        ),
        (None, {"CAMPAIGN_API_BASE_URL": "http://b.example/preview"}, "http://b.example/preview"),
        (None, {}, "https://comms.twilio.com/preview"),
    ],
)
def test_base_url_comes_from_argument_then_environment_then_default(
    explicit: str | None, environ: dict[str, str], expected: str
) -> None:
    """The base URL is the argument, else $CAMPAIGN_API_BASE_URL, else the public preview API."""
    client = CommsClient(base_url=explicit, credentials=client_credentials(), environ=environ)
    assert client.base_url == expected


def test_credentials_come_from_the_environment_by_default() -> None:
    """Without explicit credentials the TWILIO_* variables are used."""
    client = CommsClient(environ={"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": LEAK})
    assert client.credentials == Credentials(SID, LEAK, "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN")


async def test_requests_carry_basic_auth_json_and_a_user_agent() -> None:
    """Each request has Basic auth from the credentials, JSON content type and a User-Agent."""
    accepted = Response(202, {}, orjson.dumps({"operationId": OPERATION}))
    transport = MockTransport(lambda _request: accepted)
    client = CommsClient(
        base_url="https://comms.example/v1",
        credentials=client_credentials(),
        transport=transport,
        environ={},
        timeout_s=7.5,
    )
    async with client:
        await client.send(batch())
    (request,) = transport.requests
    token = base64.b64decode(request.headers["Authorization"].removeprefix("Basic ")).decode()
    assert token == f"{SID}:emulator-auth-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("campaign/")
    assert (request.method, request.url, request.timeout_s) == (
        "POST",
        "https://comms.example/v1/Messages",
        7.5,
    )


# Secrets


async def test_the_secret_never_appears_in_reprs_errors_or_logs() -> None:
    """The auth token shows up in no repr, exception text or log event, even when echoed back."""

    async def echo(request: web.Request) -> Reply:
        auth = request.headers.get("Authorization", "")
        password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")[2]
        return Reply(
            401,
            {
                "code": 20003,
                "message": f"bad {auth} {password}",
                "more_info": f"https://x/{password}",
            },
        )

    too_many = Reply(429, {"code": 20429, "message": "Too many"}, {"Retry-After": "1"})
    async with scripted_server(too_many, echo) as (url, _):
        client = CommsClient(
            base_url=url,
            credentials=Credentials(SID, LEAK),
            environ={},
            retry=RetryPolicy(sleep=FakeSleep()),
        )
        with structlog.testing.capture_logs() as events:
            async with client:
                with pytest.raises(AuthenticationError) as caught:
                    await client.fetch_pool(SAMPLE_POOL_ID)
    encoded = base64.b64encode(f"{SID}:{LEAK}".encode()).decode()
    error = caught.value
    texts = [
        str(error),
        repr(error),
        error.api_message,
        str(error.more_info),
        repr(client),
        str(client.credentials),
        repr(client.credentials),
        repr(events),
    ]
    assert events
    assert not [t for t in texts if LEAK in t or encoded in t]
