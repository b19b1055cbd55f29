"""When the client tries a request again, and how long it waits first.

A 429 was never processed, so any request may be retried after it, waiting what its
`Retry-After` says. A 5xx, timeout or dropped connection may have been processed, so only
a GET (which changes nothing) is retried after one. Waiting goes through `sleep`, which tests
replace with a recorder so that they never sleep through a real delay.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import structlog

from campaign.exceptions import (
    ApiError,
    ConnectionLostError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)

__all__ = ["RetryPolicy", "Retryable"]

T = TypeVar("T")
log = structlog.get_logger("campaign.client")


class Retryable(enum.Enum):
    """Which failures a request may be retried after."""

    NEVER = "never"  # the caller retries itself (the engine pauses a whole pool on a 429)
    RATE_LIMITS = "rate limits"  # 429 only: every POST, PATCH and DELETE
    ANY_TRANSIENT = "any transient"  # 429, 5xx, timeouts, dropped connections: GETs


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a request gets, and the waits between them.

    `max_attempts=1` turns retrying off (the engine does that for `send`, to pause a whole
    pool on a 429 itself). A server's `Retry-After` longer than `max_wait_s` is not waited
    for: the `RateLimitedError` is raised with it, for the caller to decide.
    """

    max_attempts: int = 4
    backoff_s: float = 0.5  # the first wait when the server names none; doubles each time
    max_wait_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_s < 0 or self.max_wait_s < 0:
            raise ValueError("backoff_s and max_wait_s must not be negative")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based) when none was named."""
        return min(self.max_wait_s, self.backoff_s * 2.0 ** (attempt - 1))

    def wait_after(self, error: ApiError, attempt: int, retryable: Retryable) -> float | None:
        """Seconds to wait before the next attempt, or None when `error` must be raised."""
        if attempt >= self.max_attempts or retryable is Retryable.NEVER:
            return None
        transient = isinstance(error, ServerError | RequestTimeoutError | ConnectionLostError)
        if not (
            isinstance(error, RateLimitedError)
            or (transient and retryable is Retryable.ANY_TRANSIENT)
        ):
            return None
        wait_s = error.retry_after_s if error.retry_after_s is not None else self.backoff(attempt)
        return wait_s if wait_s <= self.max_wait_s else None

    async def run(self, attempt: Callable[[], Awaitable[T]], retryable: Retryable) -> T:
        """`attempt()` until it succeeds or fails for good; each retry is logged first.

        The `campaign.client.retry_scheduled` event carries the request, the failure and the
        wait, never a header or body (so never a credential).
        """
        number = 1
        while True:
            try:
                return await attempt()
            except ApiError as error:
                wait_s = self.wait_after(error, number, retryable)
                if wait_s is None:
                    raise
                log.warning(
                    "campaign.client.retry_scheduled",
                    method=error.method,
                    url=error.url,
                    status=error.status,
                    code=error.code,
                    error=type(error).__name__,
                    attempt=number,
                    wait_s=wait_s,
                )
            await self.sleep(wait_s)
            number += 1
