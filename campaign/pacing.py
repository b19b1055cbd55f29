"""Pacing: each Sender Pool gets recipients at its rate, and a 429 pauses the whole pool.

A `PoolPacer` hands out send times like a queue at a counter: a batch of `n` recipients
takes the next free slot and moves the counter `n / rate` seconds on. With work waiting,
slots follow each other exactly, so the long-run rate is the setting; and nothing starts
with a burst, so over any one second a pool receives at most its rate plus one batch.

Why not aiolimiter, as first planned: its bucket starts full (a burst of a whole second's
worth at the start and after every idle spell), it cannot take a batch larger than its
capacity (1,000 recipients at 50/s), and it reads the event loop's clock directly, so tests
could not drive it on another clock. The virtual-clock scheduler below is the same idea
(GCRA with no burst) in a dozen lines, with `clock` and `sleep` injectable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["PoolPacer"]


class PoolPacer:
    """Send times for one pool at `rate_per_s` recipients a second (`math.inf`: no pacing)."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be positive")
        self.rate_per_s = rate_per_s
        self._clock = clock
        self._sleep = sleep
        self._next_s = -math.inf  # the next free slot
        self._paused_until_s = -math.inf
        self._pauses = 0  # slots handed out before the latest pause are void

    async def wait_turn(self, recipients: int) -> None:
        """Wait for this batch's slot; if the pool is paused meanwhile, queue again after it."""
        if math.isinf(self.rate_per_s) and self._paused_until_s <= self._clock():
            return
        while True:
            now = self._clock()
            start = max(now, self._next_s, self._paused_until_s)
            self._next_s = start + recipients / self.rate_per_s
            pauses = self._pauses
            if start > now:
                await self._sleep(start - now)
            if pauses == self._pauses:  # no pause began while this batch waited
                return

    def turn_now(self, recipients: int) -> bool:
        """Take this batch's slot if it is free now (True); otherwise take nothing (False)."""
        now = self._clock()
        start = max(now, self._next_s, self._paused_until_s)
        if start > now:
            return False
        self._next_s = start + recipients / self.rate_per_s
        return True

    def on_time(self, taken_s: float, recipients: int) -> bool:
        """Whether a batch whose slot `turn_now` gave at `taken_s` may still go now: within
        one slot's length of it.  Later, it could go out with the batches of the next
        slots and give the pool more than its rate plus one batch in a second."""
        return self._clock() - taken_s <= recipients / self.rate_per_s

    def pause(self, seconds: float) -> None:
        """Hold every batch of this pool for `seconds` (a 429's Retry-After)."""
        until = self._clock() + seconds
        if until > self._paused_until_s:
            self._paused_until_s = until
            self._pauses += 1
            # Slots handed out before the pause are void: their holders queue again from
            # its end, so the pool resumes at its rate rather than with a burst.
            self._next_s = until

    @property
    def paused_until_s(self) -> float:
        return self._paused_until_s

    @property
    def pauses(self) -> int:
        """How many pauses began so far: a slot taken before the latest one is void."""
        return self._pauses
