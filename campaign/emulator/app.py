"""The emulator's web application: auth, faults and error bodies around the API routes.

`serve()` runs it in-process on a loopback port:

    async with serve(port=0) as emu:
        ...  # talk to emu.base_url with emu.credentials
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from campaign.emulator.delivery import Clock, DeliveryProfile
from campaign.emulator.errors import (
    AUTH_FAILED,
    NOT_FOUND,
    SERVER_ERROR,
    TOO_LARGE,
    ApiError,
    error_body,
)
from campaign.emulator.faults import FaultInjector, Faults
from campaign.emulator.inspection import STATS, add_inspection_routes
from campaign.emulator.routes import CONTEXT, EmulatorContext, add_api_routes, json_response
from campaign.emulator.sample_data import AccountData, load_account_data, sample_account
from campaign.emulator.stats import RequestStats
from campaign.emulator.store import Store

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "MAX_BODY_BYTES",
    "Credentials",
    "RunningEmulator",
    "build_app",
    "serve",
]

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEFAULT_AUTH_TOKEN = "emulator-auth-token"  # noqa: S105 - a documented, public rehearsal token
MAX_BODY_BYTES = 10 * 1024 * 1024  # 10,000 recipients and 10 MB per request


@dataclass(frozen=True, slots=True)
class Credentials:
    """The (username, password) pairs HTTP Basic auth accepts; `from_env` says where they came from."""

    pairs: tuple[tuple[str, str], ...]
    from_env: bool

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        pairs = []
        for user_var, secret_var in (
            ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
            ("TWILIO_API_KEY", "TWILIO_API_SECRET"),
        ):
            if env.get(user_var) and env.get(secret_var):
                pairs.append((env[user_var], env[secret_var]))
        if pairs:
            return cls(tuple(pairs), from_env=True)
        return cls(((DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),), from_env=False)

    def headers(self) -> tuple[bytes, ...]:
        return tuple(b"Basic " + base64.b64encode(f"{u}:{p}".encode()) for u, p in self.pairs)

    def __repr__(self) -> str:
        # Never show a secret, not even in a debugger or a log of the config.
        return f"<Credentials users={[u for u, _ in self.pairs]} from_env={self.from_env}>"


class _Drop(Exception):
    """Raised to abandon a request by closing its connection without an answer."""


def _route_name(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None:
        return f"{request.method} (no route)"
    canonical = resource.canonical
    for prefix in ("/preview", "/v1"):
        if canonical.startswith(prefix + "/"):
            canonical = canonical[len(prefix) :]
            break
    return f"{request.method} {canonical}"


def _error_response(error: ApiError) -> web.Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return json_response(
        error_body(error.status, error.code, error.message), status=error.status, headers=headers
    )


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(413, TOO_LARGE, f"The request body is larger than {MAX_BODY_BYTES:,} bytes")
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, NOT_FOUND, "No such route")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ApiError(
            405, 20004, f"Method not allowed; allowed: {', '.join(sorted(exc.allowed_methods))}"
        )
    return ApiError(exc.status, exc.status * 100 if exc.status < 600 else SERVER_ERROR, exc.reason)


async def _before_processing(faults: FaultInjector) -> None:
    """Latency, then the faults that strike before the request is looked at."""
    delay = faults.latency_s()
    if delay:
        await anyio.sleep(delay)
    if faults.should_drop():
        raise _Drop
    if faults.should_error():
        status = 503 if faults.coin() else 500
        raise ApiError(
            status, SERVER_ERROR + (status - 500), "The service had a problem; try again"
        )


def _after_processing(faults: FaultInjector) -> None:
    """The nastiest case: the work is done, but the client cannot know it."""
    if faults.should_fail_after_accept():
        if faults.coin():
            raise _Drop
        raise ApiError(500, SERVER_ERROR, "The service had a problem after accepting the request")


def _make_middleware(credentials: Credentials) -> Middleware:
    accepted = credentials.headers()

    @web.middleware
    async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator/"):
            try:
                return await handler(request)
            except ApiError as error:
                return _error_response(error)
            except web.HTTPException as exc:
                return _error_response(_from_http_exception(exc))
        route = _route_name(request)
        stats = request.app[STATS]
        faults = request.app[CONTEXT].faults
        entered = False
        outcome = "500"
        response: web.StreamResponse | None = None
        try:
            given = request.headers.get("Authorization", "").encode()
            if not any(hmac.compare_digest(given, header) for header in accepted):
                raise ApiError(
                    401, AUTH_FAILED, "Authentication failed: check the account SID and auth token"
                )
            faults.enter()
            entered = True
            await _before_processing(faults)
            response = await handler(request)
            if request.method == "POST" and response.status < 300:
                _after_processing(faults)
        except ApiError as error:
            response = _error_response(error)
        except web.HTTPException as exc:
            response = _error_response(_from_http_exception(exc))
        except _Drop:
            outcome = "dropped"
            response = None
            if request.transport is not None:
                request.transport.abort()
            # aiohttp quietly gives up writing an answer to a closed connection.
            return web.Response(status=500)
        finally:
            if entered:
                faults.leave()
            stats.count(route, outcome if response is None else str(response.status))
        return response

    return api_middleware


def build_app(
    *,
    data: AccountData | None = None,
    faults: Faults | None = None,
    credentials: Credentials | None = None,
    clock: Clock | None = None,
    profile: DeliveryProfile | None = None,
    next_as_token: bool = False,
) -> web.Application:
    """The emulator as an aiohttp application, with its own store and fault injector."""
    clock = clock or Clock()
    store = Store(data or sample_account(), clock=clock, profile=profile or DeliveryProfile())
    injector = FaultInjector(faults or Faults(), monotonic=clock.mono_s)
    app = web.Application(
        middlewares=[_make_middleware(credentials or Credentials.from_environment())],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONTEXT] = EmulatorContext(store, injector, next_as_token=next_as_token)
    app[STATS] = RequestStats()
    add_api_routes(app)
    add_inspection_routes(app)
    return app


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A started emulator: where it listens, what it accepts, and its live state."""

    host: str
    port: int
    app: web.Application
    credentials: Credentials

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, `/preview` flavour (the same routes answer under `/v1`)."""
        return f"{self.root_url}/preview"

    @property
    def store(self) -> Store:
        return self.app[CONTEXT].store

    @property
    def faults(self) -> FaultInjector:
        return self.app[CONTEXT].faults

    @property
    def stats(self) -> RequestStats:
        return self.app[STATS]


@asynccontextmanager
async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data: AccountData | Path | None = None,
    faults: Faults | None = None,
    credentials: Credentials | None = None,
    clock: Clock | None = None,
    profile: DeliveryProfile | None = None,
    next_as_token: bool = False,
) -> AsyncIterator[RunningEmulator]:
    """Run the emulator on `host:port` (0 picks a free port) until the block ends."""
    if isinstance(data, Path):
        data = load_account_data(data)
    credentials = credentials or Credentials.from_environment()
    app = build_app(
        data=data,
        faults=faults,
        credentials=credentials,
        clock=clock,
        profile=profile,
        next_as_token=next_as_token,
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield RunningEmulator(host, bound_port, app, credentials)
    finally:
        await runner.cleanup()
