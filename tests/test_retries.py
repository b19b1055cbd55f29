"""RetryPolicy: which failures earn another attempt, and how long to wait first."""

from __future__ import annotations

import pytest

from campaign.exceptions import (
    ApiError,
    AuthenticationError,
    ConnectionLostError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    RequestTimeoutError,
    ServerError,
    UnexpectedResponseError,
)
from campaign.retries import Retryable, RetryPolicy

POLICY = RetryPolicy(max_attempts=4, backoff_s=0.5, max_wait_s=30.0)


@pytest.mark.parametrize(
    ("error", "retryable", "wait_s"),
    [
        (RateLimitedError("x", status=429, retry_after_s=3.0), Retryable.RATE_LIMITS, 3.0),
        (RateLimitedError("x", status=429), Retryable.RATE_LIMITS, 0.5),
        (RateLimitedError("x", status=429, retry_after_s=0.0), Retryable.ANY_TRANSIENT, 0.0),
        (ServerError("x", status=503), Retryable.RATE_LIMITS, None),
        (ServerError("x", status=503), Retryable.ANY_TRANSIENT, 0.5),
        (ServerError("x", status=503, retry_after_s=7.0), Retryable.ANY_TRANSIENT, 7.0),
        (RequestTimeoutError("x"), Retryable.ANY_TRANSIENT, 0.5),
        (RequestTimeoutError("x"), Retryable.RATE_LIMITS, None),
        (ConnectionLostError("x"), Retryable.ANY_TRANSIENT, 0.5),
        (UnexpectedResponseError("x"), Retryable.ANY_TRANSIENT, None),
        (RequestRejectedError("x", status=400), Retryable.ANY_TRANSIENT, None),
        (AuthenticationError("x", status=401), Retryable.ANY_TRANSIENT, None),
        (NotFoundError("x", status=404), Retryable.ANY_TRANSIENT, None),
    ],
)
def test_which_errors_are_retried(
    error: ApiError, retryable: Retryable, wait_s: float | None
) -> None:
    """429 always; 5xx, timeouts and lost connections only when the request is a GET."""
    assert POLICY.wait_after(error, 1, retryable) == wait_s


@pytest.mark.parametrize(("attempt", "wait_s"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, None)])
def test_waits_double_until_attempts_run_out(attempt: int, wait_s: float | None) -> None:
    """Without a Retry-After the wait doubles; after the last attempt nothing is retried."""
    assert POLICY.wait_after(ServerError("x"), attempt, Retryable.ANY_TRANSIENT) == wait_s


def test_backoff_is_capped() -> None:
    """The computed backoff never exceeds max_wait_s."""
    assert RetryPolicy(backoff_s=10, max_wait_s=15, max_attempts=10).backoff(5) == 15


def test_a_retry_after_beyond_the_cap_is_not_waited() -> None:
    """A Retry-After longer than max_wait_s is left to the caller."""
    error = RateLimitedError("x", retry_after_s=31.0)
    assert POLICY.wait_after(error, 1, Retryable.RATE_LIMITS) is None


def test_one_attempt_means_no_retries() -> None:
    """max_attempts=1 turns retrying off, even for a 429."""
    error = RateLimitedError("x", retry_after_s=1.0)
    assert RetryPolicy(max_attempts=1).wait_after(error, 1, Retryable.RATE_LIMITS) is None


@pytest.mark.parametrize("settings", [{"max_attempts": 0}, {"backoff_s": -1}, {"max_wait_s": -1}])
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    """A policy that could never attempt, or would wait negative time, is a ValueError."""
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**settings)  # type: ignore[arg-type]
