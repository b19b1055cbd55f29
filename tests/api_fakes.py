"""Test helpers for the client and the API commands: servers to talk to, and a sleep that doesn't.

- `emulator_in_thread()`: the real emulator on its own event loop in a background thread,
  for commands that run their own loop (`anyio.run`) through click's CliRunner.
- `scripted_server(...)`: a tiny aiohttp app answering from a script, for answers the
  emulator never gives (odd error bodies, 429 on a GET, foreign pagination links).
- `FakeSleep`: records each wait and runs a hook instead of sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from campaign.credentials import Credentials
from campaign.emulator import Clock, RunningEmulator, serve
from campaign.emulator import Credentials as EmulatorCredentials

SID = "AC00000000000000000000000000000000"
TOKEN = "emulator-auth-token"  # the emulator's public rehearsal token
LEAK = "tok-LEAK-5f1e2d9c-never-print"  # a recognisable secret, searched for in all output

# The environment for a command run through CliRunner: the emulator's credentials, and
# nothing inherited that could change the answer (None unsets a variable).
CLI_ENV: dict[str, str | None] = {
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_API_KEY": None,
    "TWILIO_API_SECRET": None,
    "CAMPAIGN_API_BASE_URL": None,
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
}


def emulator_credentials(token: str = TOKEN) -> EmulatorCredentials:
    return EmulatorCredentials(((SID, token),), from_env=False)


def client_credentials(token: str = TOKEN) -> Credentials:
    return Credentials(SID, token)


class FakeTime:
    """A monotonic and wall clock for the emulator that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_772_323_200.0

    def __call__(self) -> float:
        return self.now

    def clock(self) -> Clock:
        return Clock(monotonic=self, wall=self)


@dataclass
class FakeSleep:
    """Stands in for `anyio.sleep`: records the delay, then runs `then` (e.g. clear the faults)."""

    then: Callable[[float], None] | None = None
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.then is not None:
            self.then(seconds)


@contextmanager
def emulator_in_thread(token: str = TOKEN, **serve_kwargs: Any) -> Iterator[RunningEmulator]:
    """The emulator on a loopback port, served from a background thread until the block ends."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with serve(port=0, credentials=emulator_credentials(token), **serve_kwargs) as emu:
            state["emu"] = emu
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test thread below
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="emulator", daemon=True)
    thread.start()
    if not ready.wait(10) or "error" in state:
        raise RuntimeError("the emulator did not start") from state.get("error")
    try:
        yield state["emu"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None  # JSON-encoded unless bytes or str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Script:
    """The answers a scripted server gives, in order, and the requests it saw."""

    replies: list[Reply | Callable[[web.Request], Awaitable[Reply]]]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


async def _answer(script: Script, request: web.Request) -> web.Response:
    script.seen.append((request.method, request.path_qs, dict(request.headers)))
    if not script.replies:
        return web.Response(status=599, text="the script has no more replies")
    step = script.replies.pop(0)
    reply = step if isinstance(step, Reply) else await step(request)
    if isinstance(reply.body, bytes):
        body = reply.body
    elif isinstance(reply.body, str):
        body = reply.body.encode()
    elif reply.body is None:
        body = b""
    else:
        body = orjson.dumps(reply.body)
    headers = {"Content-Type": reply.content_type, **reply.headers}
    return web.Response(status=reply.status, body=body, headers=headers)


@asynccontextmanager
async def scripted_server(
    *replies: Reply | Callable[[web.Request], Awaitable[Reply]],
) -> AsyncIterator[tuple[str, Script]]:
    """A server answering every request with the next reply; yields (base URL, script)."""
    script = Script(list(replies))

    async def handler(request: web.Request) -> web.Response:
        return await _answer(script, request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/preview")), script
