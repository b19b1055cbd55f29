"""Misbehaving on purpose: 429s, 5xx, dropped connections, latency, and accept-then-fail.

The same knob names work as `campaign emulator` flags and in `PUT /_emulator/faults`.
Randomness comes from one seeded generator, so a chaos run can be replayed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from campaign.emulator.errors import TOO_MANY_REQUESTS, ApiError

__all__ = ["FaultError", "FaultInjector", "Faults"]


class FaultError(ValueError):
    """A fault setting that makes no sense; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Every fault knob, all off by default.

    Example: `Faults(error_rate=0.05, accept_then_fail_rate=0.02, latency_ms=(5, 50))`.
    """

    max_concurrent_requests: int | None = None  # past it: 429 + Retry-After + code 20429
    rate_limit_per_s: float | None = None  # recipients accepted per second for the account
    error_rate: float = 0.0  # share of requests answered 500/503 before processing
    accept_then_fail_rate: float = 0.0  # share of POSTs processed, then answered 500 or dropped
    drop_rate: float = 0.0  # share of requests whose connection is dropped before processing
    latency_ms: tuple[float, float] = (0.0, 0.0)  # added to every API request, uniform in range
    retry_after_s: int = 1  # what a 429 asks the client to wait
    seed: int | None = None  # for a replayable sequence of faults

    @classmethod
    def from_json(cls, raw: Any) -> Faults:
        """Faults from a JSON object with the same names; unknown names are refused."""
        if not isinstance(raw, dict):
            raise FaultError("faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise FaultError(
                f"unknown fault settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        values = dict(raw)
        if "latency_ms" in values:
            values["latency_ms"] = _latency(values["latency_ms"])
        faults = cls(**values)
        faults.check()
        return faults

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_ms"] = list(self.latency_ms)
        return data

    def check(self) -> None:
        for name in ("error_rate", "accept_then_fail_rate", "drop_rate"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise FaultError(f"{name} must be a number from 0 to 1, got {value!r}")
        if self.max_concurrent_requests is not None and (
            not _is_whole(self.max_concurrent_requests) or self.max_concurrent_requests < 1
        ):
            raise FaultError("max_concurrent_requests must be a whole number of at least 1")
        if self.rate_limit_per_s is not None and (
            not _is_number(self.rate_limit_per_s) or self.rate_limit_per_s <= 0
        ):
            raise FaultError("rate_limit_per_s must be a positive number")
        if not _is_whole(self.retry_after_s) or self.retry_after_s < 0:
            raise FaultError("retry_after_s must be a whole number of seconds, 0 or more")
        if self.seed is not None and not _is_whole(self.seed):
            raise FaultError("seed must be a whole number")
        low, high = self.latency_ms
        if not (_is_number(low) and _is_number(high) and 0 <= low <= high):
            raise FaultError("latency_ms must be a number or [min, max] with 0 <= min <= max")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    # bool is an int in Python, but `true` is no count.
    return isinstance(value, int) and not isinstance(value, bool)


def _latency(value: Any) -> tuple[float, float]:
    if _is_number(value):
        return (float(value), float(value))
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) for v in value):
        return (float(value[0]), float(value[1]))
    raise FaultError("latency_ms must be a number or [min, max]")


class FaultInjector:
    """Decides, request by request, which fault strikes; holds the live counters they need."""

    def __init__(self, faults: Faults, *, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.in_flight = 0
        self.configure(faults)

    def configure(self, faults: Faults) -> None:
        faults.check()
        self.faults = faults
        self._random = random.Random(faults.seed)
        self._tokens = faults.rate_limit_per_s or 0.0
        self._refilled_at = self._monotonic()

    def __repr__(self) -> str:
        return f"<FaultInjector in_flight={self.in_flight} faults={self.faults}>"

    def _too_many(self, why: str) -> ApiError:
        return ApiError(429, TOO_MANY_REQUESTS, why, retry_after_s=self.faults.retry_after_s)

    def enter(self) -> None:
        """Count a request in; refuse it when the account is over its concurrency limit."""
        limit = self.faults.max_concurrent_requests
        if limit is not None and self.in_flight >= limit:
            raise self._too_many("Too many concurrent requests for this account")
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    def latency_s(self) -> float:
        low, high = self.faults.latency_ms
        if high <= 0:
            return 0.0
        return (low if low == high else self._random.uniform(low, high)) / 1000.0

    def should_drop(self) -> bool:
        return self._chance(self.faults.drop_rate)

    def should_error(self) -> bool:
        return self._chance(self.faults.error_rate)

    def should_fail_after_accept(self) -> bool:
        return self._chance(self.faults.accept_then_fail_rate)

    def coin(self) -> bool:
        return self._random.random() < 0.5

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def admit_recipients(self, count: int) -> None:
        """Take `count` recipients from the account's per-second budget, or refuse with 429.

        A token bucket holding one second of the rate: a batch larger than the rate is let
        through only when the bucket is full, and then leaves it in debt.
        """
        rate = self.faults.rate_limit_per_s
        if rate is None:
            return
        now = self._monotonic()
        self._tokens = min(rate, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= count or self._tokens >= rate:
            self._tokens -= count
            return
        wait_s = max(1, math.ceil((min(count, rate) - self._tokens) / rate))
        raise ApiError(
            429,
            TOO_MANY_REQUESTS,
            "Too many recipients per second for this account",
            retry_after_s=wait_s,
        )
