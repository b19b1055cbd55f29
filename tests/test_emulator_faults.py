"""Each fault knob, set at start or through PUT /_emulator/faults, and bad settings refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import AUTH, Api, FakeTime, Launcher, assert_error, recipients, send_body

from campaign.emulator import Faults

TOO_MANY = 20429
DEFAULT_FAULTS = {
    "max_concurrent_requests": None,
    "rate_limit_per_s": None,
    "error_rate": 0.0,
    "accept_then_fail_rate": 0.0,
    "drop_rate": 0.0,
    "latency_ms": [0.0, 0.0],
    "retry_after_s": 1,
    "seed": None,
}


async def _outcome(api: Api, method: str, path: str, body: Any = None) -> str:
    """The HTTP status of a request as a string, or "dropped" when the connection was cut."""
    try:
        reply = await api.request(method, path, json=body)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return "dropped"
    if reply.status >= 500:
        assert_error(reply, reply.status)
    return str(reply.status)


async def _until_in_flight(api: Api, count: int) -> None:
    """Wait (bounded) until the emulator holds `count` API requests in flight."""
    for _ in range(2000):
        if (await api.stats())["in_flight"] == count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never reached {count} requests in flight")


async def _held_body(release: asyncio.Event, body: bytes) -> AsyncIterator[bytes]:
    """A request body that arrives in two halves, the second only once `release` is set."""
    yield body[: len(body) // 2]
    await release.wait()
    yield body[len(body) // 2 :]


async def _post_held(
    api: Api, release: asyncio.Event, body: dict[str, Any]
) -> aiohttp.ClientResponse:
    """POST /Messages whose body is only finished once `release` is set: a request held in flight."""
    return await api.session.post(
        f"{api.base_url}/Messages",
        data=_held_body(release, orjson.dumps(body)),
        headers={"Authorization": AUTH, "Content-Type": "application/json"},
    )


# max_concurrent_requests


@pytest.mark.parametrize("retry_after_s", [1, 7])
@pytest.mark.parametrize(("method", "path"), [("GET", "/Senders"), ("POST", "/Messages")])
async def test_max_concurrent_requests_answers_429_with_retry_after(
    api: Api, retry_after_s: int, method: str, path: str
) -> None:
    """Past max_concurrent_requests a request gets 429, Retry-After and code 20429, and is not processed."""
    await api.set_faults(max_concurrent_requests=1, retry_after_s=retry_after_s)
    release = asyncio.Event()
    held = asyncio.create_task(_post_held(api, release, send_body(recipients(2))))
    try:
        await _until_in_flight(api, 1)
        refused = await api.request(method, path, json=send_body(recipients(1, start=50)))
        assert_error(refused, 429, TOO_MANY)
        assert refused.headers["Retry-After"] == str(retry_after_s)
        assert (await api.stats())["recipients_accepted"] == 0
    finally:
        release.set()
        response = await held
        response.release()
    assert response.status == 202
    assert (await api.stats())["recipients_accepted"] == 2
    assert (await api.request(method, path, json=send_body(recipients(1)))).status in {200, 202}


async def test_requests_within_the_concurrency_limit_pass(api: Api) -> None:
    """As many concurrent requests as the limit allows are all answered normally."""
    await api.set_faults(max_concurrent_requests=3)
    release = asyncio.Event()
    body = send_body(recipients(1))
    held = [asyncio.create_task(_post_held(api, release, body)) for _ in range(3)]
    await _until_in_flight(api, 3)
    assert_error(await api.get("/Senders"), 429, TOO_MANY)
    release.set()
    responses = await asyncio.gather(*held)
    assert [r.status for r in responses] == [202, 202, 202]
    for response in responses:
        response.release()


async def test_inspection_is_not_limited_by_concurrency(api: Api) -> None:
    """/_emulator routes answer even while the API is at its concurrency limit."""
    await api.set_faults(max_concurrent_requests=1)
    release = asyncio.Event()
    held = asyncio.create_task(_post_held(api, release, send_body()))
    await _until_in_flight(api, 1)
    assert (await api.get("/_emulator/messages")).status == 200
    assert (await api.get("/_emulator/faults")).status == 200
    release.set()
    (await held).release()


# rate_limit_per_s


async def test_rate_limit_answers_429_past_the_recipients_per_second(
    api: Api, fake_time: FakeTime
) -> None:
    """rate_limit_per_s counts recipients: past it 429 + Retry-After + 20429, and nothing is stored."""
    await api.set_faults(rate_limit_per_s=10)
    await api.send(send_body(recipients(6)))
    await api.send(send_body(recipients(4, start=6)))
    refused = await api.post("/Messages", send_body(recipients(1, start=10)))
    assert_error(refused, 429, TOO_MANY)
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await api.stats())["recipients_accepted"] == 10
    fake_time.advance(0.1)
    await api.send(send_body(recipients(1, start=10)))
    assert_error(await api.post("/Messages", send_body(recipients(1, start=11))), 429, TOO_MANY)
    assert (await api.stats())["recipients_accepted"] == 11


async def test_rate_limit_refills_with_time(api: Api, fake_time: FakeTime) -> None:
    """After a full second of the fake clock the whole per-second budget is back."""
    await api.set_faults(rate_limit_per_s=5)
    await api.send(send_body(recipients(5)))
    assert_error(await api.post("/Messages", send_body(recipients(1, start=5))), 429, TOO_MANY)
    fake_time.advance(1.0)
    await api.send(send_body(recipients(5, start=5)))
    assert (await api.stats())["recipients_accepted"] == 10


async def test_rate_limit_lets_a_large_batch_through_when_full_then_waits(
    api: Api, fake_time: FakeTime
) -> None:
    """A batch larger than the rate passes on a full budget; the next waits as Retry-After says."""
    await api.set_faults(rate_limit_per_s=10)
    await api.send(send_body(recipients(25)))
    refused = await api.post("/Messages", send_body(recipients(1, start=25)))
    assert_error(refused, 429, TOO_MANY)
    wait_s = int(refused.headers["Retry-After"])
    assert wait_s >= 2
    fake_time.advance(wait_s)
    await api.send(send_body(recipients(1, start=25)))


async def test_rate_limit_does_not_count_reads(api: Api) -> None:
    """GET requests do not use the recipients-per-second budget."""
    await api.set_faults(rate_limit_per_s=1)
    for _ in range(5):
        assert (await api.get("/Senders")).status == 200
    await api.send(send_body(recipients(1)))


async def test_rate_limit_set_at_start(launch: Launcher) -> None:
    """Faults(rate_limit_per_s=...) given to serve() applies from the first request."""
    async with launch(faults=Faults(rate_limit_per_s=2)) as api:
        await api.send(send_body(recipients(2)))
        assert_error(await api.post("/Messages", send_body(recipients(1, start=2))), 429, TOO_MANY)


# error_rate


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/Senders", None), ("POST", "/Messages", send_body()), ("POST", "/SenderPools", {})],
)
async def test_error_rate_answers_5xx_before_processing(
    api: Api, method: str, path: str, body: Any
) -> None:
    """error_rate=1 answers every API request 500 or 503 with the error body; nothing is processed."""
    await api.set_faults(error_rate=1.0, seed=3)
    outcomes = {await _outcome(api, method, path, body) for _ in range(12)}
    assert outcomes == {"500", "503"}
    stats = await api.stats()
    assert stats["recipients_accepted"] == 0
    await api.set_faults()
    assert [p["name"] for p in (await api.get("/SenderPools")).body["senderPools"]] == [
        "Sample Pool"
    ]


async def test_error_rate_share(api: Api) -> None:
    """error_rate=0.5 fails about half of the requests and lets the rest through."""
    await api.set_faults(error_rate=0.5, seed=11)
    outcomes = [await _outcome(api, "GET", "/Senders") for _ in range(200)]
    assert 60 <= outcomes.count("200") <= 140
    assert set(outcomes) <= {"200", "500", "503"}


async def test_error_rate_spares_inspection(api: Api) -> None:
    """The /_emulator routes answer normally whatever the error rate."""
    await api.set_faults(error_rate=1.0)
    assert (await api.get("/_emulator/stats")).status == 200
    assert (await api.post("/_emulator/reset")).status == 200


# accept_then_fail_rate


async def test_accept_then_fail_stores_yet_answers_500_or_drops(api: Api) -> None:
    """accept_then_fail_rate=1: each send is stored, then answered 500 or its connection dropped."""
    await api.set_faults(accept_then_fail_rate=1.0, seed=5)
    outcomes = [
        await _outcome(api, "POST", "/Messages", send_body(recipients(1, start=i)))
        for i in range(16)
    ]
    assert set(outcomes) == {"500", "dropped"}
    stats = await api.stats()
    assert stats["recipients_accepted"] == 16
    assert stats["operations"] == 16
    assert len((await api.get("/Messages")).body["messages"]) == 16
    assert stats["requests"]["POST /Messages"] == {
        "500": outcomes.count("500"),
        "dropped": outcomes.count("dropped"),
    }


async def test_accept_then_fail_creates_the_pool(api: Api) -> None:
    """A pool created under accept_then_fail_rate=1 exists though the client never saw a 202."""
    await api.set_faults(accept_then_fail_rate=1.0, seed=1)
    assert await _outcome(api, "POST", "/SenderPools", {"name": "ghost"}) in {"500", "dropped"}
    await api.set_faults()
    assert "ghost" in [p["name"] for p in (await api.get("/SenderPools")).body["senderPools"]]


@pytest.mark.parametrize(("method", "path"), [("GET", "/Senders"), ("GET", "/Messages")])
async def test_accept_then_fail_spares_reads(api: Api, method: str, path: str) -> None:
    """accept_then_fail_rate strikes only requests that change something, not reads."""
    await api.set_faults(accept_then_fail_rate=1.0)
    assert await _outcome(api, method, path) == "200"


async def test_accept_then_fail_spares_rejected_requests(api: Api) -> None:
    """A request that fails validation is answered 400 as usual under accept_then_fail_rate=1."""
    await api.set_faults(accept_then_fail_rate=1.0)
    assert_error(await api.post("/Messages", {"to": []}), 400)


# drop_rate


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/Senders", None), ("POST", "/Messages", send_body(recipients(3)))],
)
async def test_drop_rate_drops_the_connection_before_processing(
    api: Api, method: str, path: str, body: Any
) -> None:
    """drop_rate=1 closes every connection without an answer, and stores nothing."""
    await api.set_faults(drop_rate=1.0)
    assert await _outcome(api, method, path, body) == "dropped"
    stats = await api.stats()
    assert stats["recipients_accepted"] == 0
    assert stats["operations"] == 0
    # aiohttp's client resends an idempotent request once when a reused connection drops.
    assert set(stats["requests"][f"{method} {path}"]) == {"dropped"}


async def test_drop_rate_share(api: Api) -> None:
    """drop_rate=0.3 drops some sends, and exactly the answered ones are stored."""
    await api.set_faults(drop_rate=0.3, seed=2)
    outcomes = [
        await _outcome(api, "POST", "/Messages", send_body(recipients(1, start=i)))
        for i in range(40)
    ]
    assert set(outcomes) == {"202", "dropped"}
    assert (await api.stats())["recipients_accepted"] == outcomes.count("202")


# latency_ms


@pytest.mark.parametrize(("latency", "at_least_s"), [(20, 0.02), ([5, 15], 0.005)])
async def test_latency_delays_every_api_request(api: Api, latency: Any, at_least_s: float) -> None:
    """latency_ms (fixed or [min, max]) holds each API request at least that long."""
    await api.set_faults(latency_ms=latency)
    faults = (await api.get("/_emulator/faults")).body
    assert faults["latency_ms"] == ([latency, latency] if isinstance(latency, int) else latency)
    started = time.monotonic()
    assert (await api.get("/Senders")).status == 200
    # A little slack: the event loop may wake a timer a hair early.
    assert time.monotonic() - started >= at_least_s * 0.95


async def test_latency_set_at_start(launch: Launcher) -> None:
    """Faults(latency_ms=...) given to serve() delays requests from the start."""
    async with launch(faults=Faults(latency_ms=(15.0, 15.0))) as api:
        started = time.monotonic()
        await api.send(send_body())
        assert time.monotonic() - started >= 0.015 * 0.95


# seed


async def _sequence(api: Api, seed: int) -> list[str]:
    await api.set_faults(error_rate=0.5, drop_rate=0.2, seed=seed)
    return [await _outcome(api, "GET", "/Senders") for _ in range(30)]


async def test_seed_replays_the_same_faults(api: Api) -> None:
    """The same seed replays the same sequence of faults; another seed gives another one."""
    first = await _sequence(api, 42)
    assert await _sequence(api, 42) == first
    assert len(set(first)) > 1
    assert await _sequence(api, 43) != first


async def test_seed_replays_across_emulators(launch: Launcher) -> None:
    """Two emulators started with the same seeded faults misbehave identically."""
    faults = Faults(error_rate=0.4, accept_then_fail_rate=0.3, seed=9)
    runs = []
    for _ in range(2):
        async with launch(faults=faults) as api:
            runs.append(
                [
                    await _outcome(api, "POST", "/Messages", send_body(recipients(1, start=i)))
                    for i in range(20)
                ]
            )
    assert runs[0] == runs[1]
    assert len(set(runs[0])) >= 3


# GET and PUT /_emulator/faults


async def test_get_faults_shows_all_off_by_default(api: Api) -> None:
    """GET /_emulator/faults lists every knob, all off, without auth."""
    reply = await api.get("/_emulator/faults")
    assert reply.status == 200
    assert reply.body == DEFAULT_FAULTS


async def test_put_faults_sets_and_get_shows_them(api: Api) -> None:
    """PUT /_emulator/faults answers the new settings; GET then shows them."""
    settings = {
        "max_concurrent_requests": 4,
        "rate_limit_per_s": 2.5,
        "error_rate": 0.1,
        "accept_then_fail_rate": 0.2,
        "drop_rate": 0.3,
        "latency_ms": [1, 2],
        "retry_after_s": 3,
        "seed": 77,
    }
    reply = await api.put("/_emulator/faults", settings)
    assert reply.status == 200
    assert reply.body == settings
    assert (await api.get("/_emulator/faults")).body == settings


async def test_put_faults_replaces_every_knob(api: Api) -> None:
    """A PUT sets the knobs it names and turns the others back off."""
    await api.set_faults(error_rate=1.0, max_concurrent_requests=2)
    await api.set_faults(drop_rate=0.5)
    assert (await api.get("/_emulator/faults")).body == {**DEFAULT_FAULTS, "drop_rate": 0.5}


@pytest.mark.parametrize(
    "settings",
    [
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "0.5"},
        {"error_rate": None},
        {"error_rate": True},
        {"drop_rate": 2},
        {"accept_then_fail_rate": -1},
        {"max_concurrent_requests": 0},
        {"max_concurrent_requests": 1.5},
        {"max_concurrent_requests": "2"},
        {"max_concurrent_requests": True},
        {"rate_limit_per_s": 0},
        {"rate_limit_per_s": -5},
        {"rate_limit_per_s": "fast"},
        {"latency_ms": [10, 5]},
        {"latency_ms": [-1, 5]},
        {"latency_ms": -3},
        {"latency_ms": "slow"},
        {"latency_ms": [1, 2, 3]},
        {"latency_ms": None},
        {"retry_after_s": -1},
        {"retry_after_s": 1.5},
        {"retry_after_s": True},
        {"seed": [1]},
        {"seed": {"a": 1}},
        {"nonsense": 1},
        [],
        "error_rate=1",
    ],
    ids=lambda settings: orjson.dumps(settings).decode(),
)
async def test_put_faults_refuses_bad_values(api: Api, settings: Any) -> None:
    """A bad setting answers 400 with the error body and leaves the faults as they were."""
    await api.set_faults(latency_ms=1)
    before = (await api.get("/_emulator/faults")).body
    assert_error(await api.put("/_emulator/faults", settings), 400)
    assert (await api.get("/_emulator/faults")).body == before


@pytest.mark.parametrize("raw", [b"", b"{", b"error_rate: 1"])
async def test_put_faults_refuses_invalid_json(api: Api, raw: bytes) -> None:
    """A faults body that is not JSON answers 400 with the error body."""
    assert_error(await api.request("PUT", "/_emulator/faults", data=raw), 400)
    assert (await api.get("/_emulator/faults")).body == DEFAULT_FAULTS


async def test_faults_given_at_start_are_shown(launch: Launcher) -> None:
    """Faults passed to serve() show in GET /_emulator/faults."""
    async with launch(faults=Faults(error_rate=0.25, retry_after_s=4)) as api:
        shown = (await api.get("/_emulator/faults")).body
    assert shown == {**DEFAULT_FAULTS, "error_rate": 0.25, "retry_after_s": 4}
