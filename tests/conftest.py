"""Shared helpers for the emulator tests: a fake clock, a running emulator and an API client.

Every test talks to a real emulator over loopback (`campaign.emulator.serve(port=0)`), with
an injected clock so that delivery and rate limits move only when a test moves time.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from campaign.emulator import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    SAMPLE_POOL_ID,
    Clock,
    Credentials,
    DeliveryProfile,
    Faults,
    RunningEmulator,
    serve,
)

ID_RE = re.compile(r"^comms_(sender|senderpool|message|operation)_[0-7][a-hjkmnp-tv-z0-9]{25}$")
ERROR_KEYS = {"code", "message", "more_info", "status"}
T0_WALL = 1_772_323_200.0  # 2026-03-01T00:00:00Z, the fake wall clock's start
CREDENTIALS = Credentials(((DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),), from_env=False)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic_auth(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)


def phone(index: int) -> str:
    """A distinct valid E.164 US number for each index 0-9999."""
    return f"+1914318{index:04d}"


def recipients(count: int, channel: str = "PHONE", start: int = 0) -> list[dict[str, Any]]:
    return [{"address": phone(start + i), "channel": channel} for i in range(count)]


def send_body(
    to: list[dict[str, Any]] | None = None,
    *,
    pool: str = SAMPLE_POOL_ID,
    text: str = "Hi",
    **extra: Any,
) -> dict[str, Any]:
    """A valid POST /Messages body from the sample pool; keyword arguments add fields."""
    body: dict[str, Any] = {
        "from": {"senderPoolId": pool},
        "to": recipients(1) if to is None else to,
        "content": {"text": text},
    }
    body.update(extra)
    return body


class FakeTime:
    """Monotonic and wall clocks that move only when a test calls `advance`."""

    START_MONO = 5_000.0

    def __init__(self) -> None:
        self.mono = self.START_MONO
        self.wall = T0_WALL

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def at(self, seconds: float) -> None:
        """Set both clocks to `seconds` after their start (an emulator started at 0)."""
        self.mono = self.START_MONO + seconds
        self.wall = T0_WALL + seconds

    def clock(self, speed: float = 1.0) -> Clock:
        return Clock(speed=speed, monotonic=self.monotonic, wall=self.time)


@dataclass
class Reply:
    status: int
    headers: Any
    text: str
    body: Any = None
    content_type: str = ""


def assert_error(reply: Reply, status: int, code: int | None = None) -> None:
    """The reply is the documented JSON error body with this HTTP status (and code)."""
    assert reply.status == status, reply.text
    assert reply.content_type == "application/json", reply.text
    assert isinstance(reply.body, dict), reply.text
    assert set(reply.body) == ERROR_KEYS, reply.body
    assert reply.body["status"] == status
    assert isinstance(reply.body["code"], int)
    assert not isinstance(reply.body["code"], bool)
    assert reply.body["more_info"] == f"https://www.twilio.com/docs/api/errors/{reply.body['code']}"
    assert isinstance(reply.body["message"], str)
    assert reply.body["message"].strip()
    if code is not None:
        assert reply.body["code"] == code, reply.body


@dataclass
class Api:
    """A small client for one running emulator: API calls with auth, inspection without."""

    emu: RunningEmulator
    session: aiohttp.ClientSession
    prefix: str = "/preview"
    auth: str | None = field(default=AUTH)

    @property
    def base_url(self) -> str:
        return self.emu.root_url + self.prefix

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/_emulator"):
            return self.emu.root_url + path
        return self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: str | None = AUTH,
    ) -> Reply:
        all_headers = {"Content-Type": "application/json"}
        if auth is not None and not path.startswith("/_emulator"):
            all_headers["Authorization"] = auth
        all_headers.update(headers or {})
        if json is not None:
            data = orjson.dumps(json)
        # aiohttp warns about sending large raw bytes; a file-like payload is streamed.
        payload: bytes | io.BytesIO | None = data
        if data is not None and len(data) > 1024 * 1024:
            payload = io.BytesIO(data)
        async with self.session.request(
            method, self.url(path), data=payload, params=params, headers=all_headers
        ) as response:
            text = await response.text()
            reply = Reply(response.status, response.headers, text, None, response.content_type)
        if reply.content_type == "application/json":
            reply.body = orjson.loads(text)
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("PATCH", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)

    async def send(self, body: dict[str, Any]) -> str:
        """POST /Messages that must be accepted; the operation id."""
        reply = await self.post("/Messages", body)
        assert reply.status == 202, reply.text
        return str(reply.body["operationId"])

    async def operation(self, operation_id: str) -> dict[str, Any]:
        reply = await self.get(f"/Messages/Operations/{operation_id}")
        assert reply.status == 200, reply.text
        return dict(reply.body)

    async def messages(self, operation_id: str) -> list[dict[str, Any]]:
        """Every message of an operation, from GET /Messages, oldest first."""
        reply = await self.get(
            "/Messages", params={"operationId": operation_id, "pageSize": "1000"}
        )
        assert reply.status == 200, reply.text
        return list(reply.body["messages"])

    async def statuses(self, operation_id: str) -> list[str]:
        return [m["status"] for m in await self.messages(operation_id)]

    async def stats(self) -> dict[str, Any]:
        reply = await self.get("/_emulator/stats")
        assert reply.status == 200, reply.text
        return dict(reply.body)

    async def set_faults(self, **faults: Any) -> None:
        reply = await self.put("/_emulator/faults", faults)
        assert reply.status == 200, reply.text

    async def pool_named(self, name: str) -> str:
        reply = await self.get("/SenderPools", params={"pageSize": "1000"})
        assert reply.status == 200, reply.text
        (found,) = [p["id"] for p in reply.body["senderPools"] if p["name"] == name]
        return str(found)

    async def sender_at(self, address: str) -> str:
        reply = await self.get("/Senders", params={"pageSize": "1000"})
        assert reply.status == 200, reply.text
        (found,) = [s["id"] for s in reply.body["senders"] if s["address"] == address]
        return str(found)


Launcher = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def launch(fake_time: FakeTime, session: aiohttp.ClientSession, tmp_path: Path) -> Launcher:
    """Start an emulator on the fake clock: `async with launch(data={...}, ...) as api`.

    `data` may be a dict shaped like a `--data` file; it is written out and loaded from disk.
    """

    @asynccontextmanager
    async def start(
        *,
        data: dict[str, Any] | Path | None = None,
        profile: DeliveryProfile | None = None,
        faults: Faults | None = None,
        credentials: Credentials = CREDENTIALS,
        next_as_token: bool = False,
        speed: float = 1.0,
        prefix: str = "/preview",
    ) -> AsyncIterator[Api]:
        if isinstance(data, dict):
            path = tmp_path / "account.json"
            path.write_bytes(orjson.dumps(data))
            data = path
        async with serve(
            port=0,
            data=data,
            profile=profile,
            faults=faults,
            credentials=credentials,
            clock=fake_time.clock(speed),
            next_as_token=next_as_token,
        ) as emu:
            yield Api(emu, session, prefix)

    return start


@pytest.fixture
async def api(launch: Launcher) -> AsyncIterator[Api]:
    """An emulator with the sample account, on the fake clock, under /preview."""
    async with launch() as client:
        yield client


# An account for delivery tests: one pool per kind of sender, and a few mixed pools.
DELIVERY_ACCOUNT: dict[str, Any] = {
    "senders": [
        {"displayName": "LC1", "channel": "SMS", "address": "+12065550101", "kind": "long_code"},
        {"displayName": "LC2", "channel": "SMS", "address": "+12065550102", "kind": "long_code"},
        {"displayName": "TF", "channel": "SMS", "address": "+18885550100", "kind": "toll_free"},
        {"displayName": "SC", "channel": "SMS", "address": "89242", "kind": "short_code"},
        {"displayName": "RCS", "channel": "RCS", "address": "acme_rcs_agent", "kind": "rcs"},
        {"displayName": "WA", "channel": "WHATSAPP", "address": "+14155550123"},
        {"displayName": "Mail", "channel": "EMAIL", "address": "support@acme.example"},
        {"displayName": "Slow", "channel": "SMS", "address": "+12065550103", "ratePerS": 0.01},
        {
            "displayName": "Old",
            "channel": "SMS",
            "address": "+12065550199",
            "status": "DEACTIVATED",
        },
    ],
    "senderPools": [
        {"name": "long_code", "senders": [0]},
        {"name": "two_long_codes", "senders": [0, 1]},
        {"name": "toll_free", "senders": [2]},
        {"name": "short_code", "senders": [3]},
        {"name": "rcs", "senders": [4]},
        {"name": "whatsapp", "senders": [5]},
        {"name": "rcs_sms", "senders": [4, 0]},
        {"name": "sms_whatsapp", "senders": [0, 5]},
        {"name": "email", "senders": [6]},
        {"name": "slow", "senders": [7]},
        {"name": "deactivated", "senders": [8]},
        {"name": "empty", "senders": []},
    ],
}

# Delivery with no random outcomes: every message that is sent is delivered.
CERTAIN = DeliveryProfile(
    rcs_capable_share=0.0,
    rcs_failure_share=0.0,
    undelivered_share=0.0,
    failed_share=0.0,
    read_share=0.0,
)
