"""The emulator's application: auth, faults and error bodies around the API routes.

`serve()` runs it in-process on a loopback port:

    async with serve(port=0) as emu:
        ...  # talk to emu.base_url with emu.credentials
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from campaign.emulator.delivery import Clock, DeliveryProfile
from campaign.emulator.errors import (
    AUTH_FAILED,
    INVALID_REQUEST,
    NOT_FOUND,
    SERVER_ERROR,
    TOO_LARGE,
    ApiError,
    error_body,
)
from campaign.emulator.faults import FaultInjector, Faults
from campaign.emulator.http import DROP, HttpProtocol, PendingRequest, Response, Router
from campaign.emulator.inspection import add_inspection_routes
from campaign.emulator.routes import PREFIXES, EmulatorContext, add_api_routes, json_response
from campaign.emulator.sample_data import AccountData, load_account_data, sample_account
from campaign.emulator.stats import RequestStats
from campaign.emulator.store import Store

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "MAX_BODY_BYTES",
    "Credentials",
    "EmulatorApp",
    "RunningEmulator",
    "build_app",
    "serve",
]

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEFAULT_AUTH_TOKEN = "emulator-auth-token"  # noqa: S105 - a documented, public rehearsal token
MAX_BODY_BYTES = 10 * 1024 * 1024  # 10,000 recipients and 10 MB per request
_API_PREFIXES = tuple(prefix + "/" for prefix in PREFIXES)


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


def _error_response(error: ApiError) -> Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return json_response(
        error_body(error.status, error.code, error.message), status=error.status, headers=headers
    )


@dataclass(slots=True)
class _Books:
    """What the app notes about a request between its head and its answer."""

    route: str
    api: bool
    refusal: ApiError | None = None
    entered: bool = False
    delay_s: float | None = None


class EmulatorApp:
    """Auth, faults, routing and stats around the handlers: the HTTP server's dispatcher."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, context: EmulatorContext, credentials: Credentials) -> None:
        self.context = context
        self.stats = RequestStats()
        self.credentials = credentials
        self._accepted = credentials.headers()
        self.router = Router()
        add_api_routes(self.router, context)
        add_inspection_routes(self.router, context, self.stats)

    def __repr__(self) -> str:
        return f"<EmulatorApp {self.context.store!r} {self.stats!r}>"

    def _route_name(self, method: str, path: str) -> str:
        found = self.router.resolve(method, path)
        if isinstance(found, tuple):
            return found[0]
        return f"{method} (no route)"

    def on_head(self, pending: PendingRequest) -> None:
        request = pending.request
        api = request.path.startswith(_API_PREFIXES)
        books = _Books(self._route_name(request.method, request.path) if api else "", api)
        pending.state = books
        if not api:
            return
        given = request.headers.get("authorization", "").encode("latin-1")
        if not any(hmac.compare_digest(given, accepted) for accepted in self._accepted):
            books.refusal = ApiError(
                401, AUTH_FAILED, "Authentication failed: check the account SID and auth token"
            )
            return
        try:
            self.context.faults.enter()
        except ApiError as refusal:
            books.refusal = refusal
            return
        books.entered = True

    def delay_s(self, pending: PendingRequest) -> float:
        books = _books(pending)
        if not books.entered:
            return 0.0
        if books.delay_s is None:
            # Decided once: the protocol asks again when the wait is over.
            books.delay_s = self.context.faults.latency_s()
            return books.delay_s
        return 0.0

    def answer(self, pending: PendingRequest) -> Response:
        books = _books(pending)
        try:
            response = self._answer(pending, books)
        except ApiError as error:
            response = _error_response(error)
        except Exception:
            response = _error_response(ApiError(500, SERVER_ERROR, "The emulator failed"))
        self._settle(books, "dropped" if response is DROP else str(response.status))
        return response

    def _answer(self, pending: PendingRequest, books: _Books) -> Response:
        request = pending.request
        if books.refusal is not None:
            raise books.refusal
        found = self.router.resolve(request.method, request.path)
        if found is None:
            raise ApiError(404, NOT_FOUND, "No such route")
        if isinstance(found, list):
            raise ApiError(405, 20004, f"Method not allowed; allowed: {', '.join(found)}")
        _, handler, request.match_info = found
        if not books.api:
            return handler(request)
        faults = self.context.faults
        if faults.should_drop():
            return DROP
        if faults.should_error():
            status = 503 if faults.coin() else 500
            raise ApiError(
                status, SERVER_ERROR + (status - 500), "The service had a problem; try again"
            )
        response = handler(request)
        if request.method == "POST" and response.status < 300 and faults.should_fail_after_accept():
            # The nastiest case: the work is done, but the client cannot know it.
            if faults.coin():
                return DROP
            raise ApiError(
                500, SERVER_ERROR, "The service had a problem after accepting the request"
            )
        return response

    def _settle(self, books: _Books, outcome: str) -> None:
        if books.entered:
            books.entered = False
            self.context.faults.leave()
        if books.api:
            self.stats.count(books.route, outcome)

    def too_large(self, pending: PendingRequest) -> Response:
        books = _books(pending)
        self._settle(books, "413")
        return _error_response(
            ApiError(413, TOO_LARGE, f"The request body is larger than {MAX_BODY_BYTES:,} bytes")
        )

    def bad_request(self, why: str) -> Response:
        return _error_response(ApiError(400, INVALID_REQUEST, f"Malformed HTTP request: {why}"))

    def abandon(self, pending: PendingRequest) -> None:
        books = _books(pending)
        self._settle(books, "abandoned")


def _books(pending: PendingRequest) -> _Books:
    books = pending.state
    assert isinstance(books, _Books)  # noqa: S101 - on_head always sets it
    return books


def build_app(
    *,
    data: AccountData | None = None,
    faults: Faults | None = None,
    credentials: Credentials | None = None,
    clock: Clock | None = None,
    profile: DeliveryProfile | None = None,
    next_as_token: bool = False,
) -> EmulatorApp:
    """The emulator's application, with its own store and fault injector."""
    clock = clock or Clock()
    store = Store(data or sample_account(), clock=clock, profile=profile or DeliveryProfile())
    injector = FaultInjector(faults or Faults(), monotonic=clock.mono_s)
    context = EmulatorContext(store, injector, next_as_token=next_as_token)
    return EmulatorApp(context, credentials or Credentials.from_environment())


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A started emulator: where it listens, what it accepts, and its live state."""

    host: str
    port: int
    app: EmulatorApp
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
        return self.app.context.store

    @property
    def faults(self) -> FaultInjector:
        return self.app.context.faults

    @property
    def stats(self) -> RequestStats:
        return self.app.stats


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
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(app, connections), host, port)
    try:
        bound_port = server.sockets[0].getsockname()[1]
        yield RunningEmulator(host, bound_port, app, credentials)
    finally:
        server.close()
        for connection in list(connections):
            connection.abort()
        await server.wait_closed()
