"""How many requests a run keeps in flight: `concurrency`, or fewer once the API says so.

The API limits concurrent requests per account and publishes no number (comms-api.md):
past it, it answers 429 with a Retry-After, and a 429 pauses the whole pool. Sending with
more workers than the account allows then turns most requests into 429s and most of the
run into pauses -- measured on the emulator with 2 allowed and 8 workers at batch 1: 885
429s and 150 s for 300 recipients.

So the first 429 also lowers the cap to one below the requests that were in flight with
it (those still in flight once it has left), and the run carries on at what the account
takes. The cap creeps back up by one after
each `raise_after_s` without a 429 (the limit may have been a busy moment), up to the
campaign's `concurrency`: a probe costs one 429 and one pause, so it is rare.

Until a 429 lowers it, the cap is the number of workers, and `enter` never waits: the hot
path pays one comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import anyio
import structlog

__all__ = ["InFlightCap"]

log = structlog.get_logger("campaign")

RAISE_AFTER_S: Final = 30.0


class InFlightCap:
    """A gate for requests: at most `cap` in flight, 1 <= `cap` <= `most`."""

    def __init__(
        self,
        most: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        raise_after_s: float = RAISE_AFTER_S,
    ) -> None:
        if most < 1:
            raise ValueError("most must be at least 1")
        self.most = most
        self.cap = most
        self.busy = 0  # requests in flight now
        self._clock = clock
        self._raise_after_s = raise_after_s
        self._changed_s = 0.0  # when the cap last changed
        self._freed: anyio.Event | None = None  # set when a request leaves a full gate

    def take(self) -> bool:
        """Let one more request go if the gate is not full (True); else take nothing."""
        if self.busy < self.cap:
            self.busy += 1
            return True
        return False

    async def enter(self) -> None:
        """Wait until one more request may go; the caller must `leave()` after its answer."""
        while self.busy >= self.cap:
            if self._freed is None:
                self._freed = anyio.Event()
            await self._freed.wait()
        self.busy += 1

    def leave(self) -> None:
        self.busy -= 1
        if self.busy < self.cap:
            self._wake()

    def refused(self) -> None:
        """A request that just left got a 429: the account takes fewer at once than were
        in flight with it, so at most as many as are still in flight from now on."""
        lower = max(1, min(self.cap, self.busy))
        self._changed_s = self._clock()
        if lower < self.cap:
            self.cap = lower
            log.warning("campaign.concurrency_lowered", in_flight=lower, most=self.most)

    def answered(self) -> None:
        """A request got an answer other than 429: after long enough, try one more."""
        if self.cap == self.most:
            return  # the usual case, at every request: no clock read
        if self._clock() - self._changed_s >= self._raise_after_s:
            self.cap += 1
            self._changed_s = self._clock()
            log.info("campaign.concurrency_raised", in_flight=self.cap, most=self.most)
            self._wake()

    def _wake(self) -> None:
        """Let the requests waiting in `enter` look again: there is room."""
        if self._freed is not None:
            self._freed.set()
            self._freed = None
