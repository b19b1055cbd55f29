"""PoolPacer: batches start n/rate apart, never in a burst, and a pause holds the whole pool.

Every test runs on a fake clock: the pacer's `sleep` moves the clock instead of waiting.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections.abc import Callable, Sequence
from itertools import accumulate

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.pacing import PoolPacer

T0 = 1_000.0


class FakeClock:
    """A monotonic clock that only moves when the pacer sleeps (by exactly the delay)."""

    def __init__(self, start_s: float = T0) -> None:
        self.now = start_s
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def pacer(self, rate_per_s: float) -> PoolPacer:
        return PoolPacer(rate_per_s, clock=self, sleep=self.sleep)


class VirtualTime:
    """Virtual time for concurrent waiters: sleepers wake in time order, the clock jumps.

    `run()` lets every task run until it blocks, then wakes the earliest sleeper and moves
    the clock to its time, until nobody sleeps any more.
    """

    def __init__(self, start_s: float = T0) -> None:
        self.now = start_s
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), event))
        await event.wait()

    async def run(self) -> None:
        while True:
            for _ in range(20):  # let every woken task run up to its next sleep
                await anyio.lowlevel.checkpoint()
            if not self._sleepers:
                return
            wake_at, _, event = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake_at)
            event.set()


def starts(pacer: PoolPacer, clock: FakeClock, sizes: Sequence[int]) -> list[float]:
    """The start time of each batch, sent one after the other."""

    async def send_all() -> list[float]:
        times = []
        for size in sizes:
            await pacer.wait_turn(size)
            times.append(clock.now)
        return times

    return anyio.run(send_all)


def most_in_any_window(times: Sequence[float], sizes: Sequence[int], window_s: float) -> int:
    """The most recipients whose batches started within any `window_s`-long window."""
    totals = [0, *accumulate(sizes)]
    return max(
        totals[bisect.bisect_left(times, t + window_s)] - totals[i] for i, t in enumerate(times)
    )


def test_the_first_batch_starts_at_once() -> None:
    """A fresh pacer lets the first batch go immediately: no wait, whatever its size."""
    clock = FakeClock()
    assert starts(clock.pacer(50), clock, [1_000]) == [T0]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("size", "rate_per_s"), [(10, 50.0), (1, 1.0), (1_000, 50.0), (7, 3.5), (50, 10_000.0)]
)
def test_batches_are_spaced_size_over_rate(size: int, rate_per_s: float) -> None:
    """Back-to-back batches of n at rate r start exactly n/r apart, the second one too."""
    clock = FakeClock()
    times = starts(clock.pacer(rate_per_s), clock, [size] * 20)
    assert times[0] == T0
    assert clock.sleeps[0] == pytest.approx(size / rate_per_s)  # no burst at the start
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([size / rate_per_s] * 19, rel=1e-9)


def test_each_gap_follows_the_previous_batch_size() -> None:
    """With mixed sizes, a batch waits for the one before it: its size over the rate."""
    clock = FakeClock()
    sizes = [5, 100, 1, 40, 40, 3]
    times = starts(clock.pacer(20), clock, sizes)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.25, 5.0, 0.05, 2.0, 2.0])


async def test_after_an_idle_spell_the_next_batch_goes_at_once_and_then_at_the_rate() -> None:
    """Idle time is not saved up: after a quiet spell one batch goes at once, the next waits n/r."""
    clock = FakeClock()
    pacer = clock.pacer(10)
    await pacer.wait_turn(10)
    clock.now += 60.0  # nothing to send for a minute
    await pacer.wait_turn(10)
    assert clock.now == T0 + 60.0
    assert clock.sleeps == []
    await pacer.wait_turn(10)
    assert clock.now == pytest.approx(T0 + 61.0)
    assert clock.sleeps == [pytest.approx(1.0)]


@pytest.mark.parametrize("rate_per_s", [50.0, 7.0, 1_000.0])
def test_no_second_sees_more_than_the_rate_plus_one_batch(rate_per_s: float) -> None:
    """Over any one-second window the pool receives at most its rate plus one batch."""
    rng = random.Random(7)
    sizes = [rng.randint(1, 100) for _ in range(400)]
    clock = FakeClock()
    times = starts(clock.pacer(rate_per_s), clock, sizes)
    assert most_in_any_window(times, sizes, 1.0) <= rate_per_s + max(sizes)


def test_the_long_run_rate_is_the_setting() -> None:
    """Over 1,000 batches the recipients sent per second is within 1% of the rate."""
    rng = random.Random(3)
    sizes = [rng.randint(1, 200) for _ in range(1_000)]
    clock = FakeClock()
    times = starts(clock.pacer(50), clock, sizes)
    elapsed_s = times[-1] - times[0]  # the last batch's recipients are not yet due
    assert sum(sizes[:-1]) / elapsed_s == pytest.approx(50, rel=0.01)


def test_an_unlimited_rate_never_waits() -> None:
    """rate math.inf hands out every turn at once, and the clock never moves."""
    clock = FakeClock()
    assert starts(clock.pacer(math.inf), clock, [1_000] * 100) == [T0] * 100
    assert clock.sleeps == []


@pytest.mark.parametrize("rate_per_s", [0.0, -1.0, -math.inf, math.nan])
def test_a_rate_that_is_not_positive_is_refused(rate_per_s: float) -> None:
    """Zero, negative and NaN rates raise ValueError at construction."""
    with pytest.raises(ValueError, match="rate_per_s must be positive"):
        PoolPacer(rate_per_s)


async def test_a_pause_holds_the_next_batch_until_it_ends() -> None:
    """After pause(s) the next batch starts when the pause ends, and the rest follow at the rate."""
    clock = FakeClock()
    pacer = clock.pacer(10)
    await pacer.wait_turn(10)
    pacer.pause(5.0)
    assert pacer.paused_until_s == T0 + 5.0
    times = []
    for _ in range(3):
        await pacer.wait_turn(10)
        times.append(clock.now)
    assert times == pytest.approx([T0 + 5.0, T0 + 6.0, T0 + 7.0])


async def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    """A second, shorter pause leaves the end of the first in place."""
    clock = FakeClock()
    pacer = clock.pacer(10)
    pacer.pause(5.0)
    clock.now += 1.0
    pacer.pause(1.0)
    assert pacer.paused_until_s == T0 + 5.0
    await pacer.wait_turn(1)
    assert clock.now == T0 + 5.0


def test_turn_now_takes_only_a_slot_that_is_free_now() -> None:
    """turn_now takes a free slot (True) and never waits: a later slot is left untaken."""
    clock = FakeClock()
    pacer = clock.pacer(10)
    assert pacer.turn_now(10)
    assert not pacer.turn_now(10)  # the next slot is 1 s away: not taken
    clock.now += 1.0
    assert pacer.turn_now(10)
    assert clock.sleeps == []


def test_a_slot_taken_ahead_is_on_time_for_one_slots_length_only() -> None:
    """on_time: a batch may use the slot turn_now gave it until the next slot begins, no
    later (then it could land together with the next batches)."""
    clock = FakeClock()
    pacer = clock.pacer(10)
    taken = clock.now
    assert pacer.turn_now(5)  # a slot of 0.5 s
    clock.now += 0.5
    assert pacer.on_time(taken, 5)
    clock.now += 0.001
    assert not pacer.on_time(taken, 5)
    assert pacer.turn_now(5)  # the next slot, now free: what a late batch takes instead


def test_turn_now_is_refused_during_a_pause_and_pauses_are_counted() -> None:
    """A paused pool has no free slot; `pauses` tells a slot taken before the pause."""
    clock = FakeClock()
    pacer = clock.pacer(math.inf)
    assert pacer.turn_now(1)
    before = pacer.pauses
    pacer.pause(2.0)
    assert pacer.pauses == before + 1
    assert not pacer.turn_now(1)
    clock.now += 2.0
    assert pacer.turn_now(1)


async def test_an_unlimited_rate_still_honours_a_pause() -> None:
    """rate math.inf waits out a pause, then goes back to never waiting."""
    clock = FakeClock()
    pacer = clock.pacer(math.inf)
    pacer.pause(3.0)
    await pacer.wait_turn(100)
    assert clock.now == T0 + 3.0
    for _ in range(5):
        await pacer.wait_turn(100)
    assert clock.now == T0 + 3.0
    assert clock.sleeps == [3.0]


async def run_waiters(
    pacer: PoolPacer,
    time: VirtualTime,
    arrivals: dict[str, float],
    events: Sequence[tuple[float, Callable[[], None]]] = (),
    size: int = 10,
) -> dict[str, float]:
    """Start one waiter per name at its arrival offset (and each event at its offset);
    return when each waiter's batch started, as an offset from T0."""
    started: dict[str, float] = {}

    async def waiter(name: str, arrive_s: float) -> None:
        if arrive_s:
            await time.sleep(arrive_s)
        await pacer.wait_turn(size)
        started[name] = time.now - T0

    async def at(offset_s: float, action: Callable[[], None]) -> None:
        await time.sleep(offset_s)
        action()

    async with anyio.create_task_group() as tg:
        for name, arrive_s in arrivals.items():
            tg.start_soon(waiter, name, arrive_s)
        for offset_s, action in events:
            tg.start_soon(at, offset_s, action)
        await time.run()
    return started


async def test_concurrent_waiters_take_consecutive_slots() -> None:
    """Five workers asking at once start one slot apart, in the order they asked."""
    time = VirtualTime()
    pacer = PoolPacer(10, clock=time.clock, sleep=time.sleep)
    started = await run_waiters(pacer, time, {f"w{i}": 0.0 for i in range(5)})
    assert started == pytest.approx({f"w{i}": float(i) for i in range(5)})


async def test_a_pause_requeues_sleeping_waiters_after_it() -> None:
    """Nobody starts during a pause; those already asleep on a slot queue again from its end."""
    time = VirtualTime()
    pacer = PoolPacer(10, clock=time.clock, sleep=time.sleep)  # 10-recipient batches: 1 s slots
    started = await run_waiters(
        pacer,
        time,
        {"w0": 0.0, "w1": 0.0, "w2": 0.0, "w3": 0.0, "w4": 0.0, "late": 2.0},
        events=[(1.5, lambda: pacer.pause(3.0))],  # a 429 at 1.5 s: hold until 4.5 s
    )
    # w0 and w1 went before the pause. w2 wakes at its old slot (2 s), finds the pool
    # paused and queues for 4.5 s; "late" arrives just after and queues behind it; w3 and
    # w4 wake at 3 s and 4 s and queue at the back. From 4.5 s on, one slot a second.
    assert started == pytest.approx(
        {"w0": 0.0, "w1": 1.0, "w2": 4.5, "late": 5.5, "w3": 6.5, "w4": 7.5}
    )
    assert not [t for t in started.values() if 1.5 <= t < 4.5]


async def test_a_short_pause_still_voids_slots_handed_out_before_it() -> None:
    """A waiter whose slot lies beyond a short pause queues again rather than keep it."""
    time = VirtualTime()
    pacer = PoolPacer(10, clock=time.clock, sleep=time.sleep)
    started = await run_waiters(
        pacer,
        time,
        {f"w{i}": 0.0 for i in range(5)},
        events=[(0.5, lambda: pacer.pause(1.0))],  # held until 1.5 s
    )
    assert started == pytest.approx({"w0": 0.0, "w1": 1.5, "w2": 2.5, "w3": 3.5, "w4": 4.5})
    times = sorted(started.values())
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0 - 1e-9


async def test_waiters_arriving_during_a_pause_start_at_its_end_one_slot_apart() -> None:
    """Every batch asked for during a pause waits for its end, then they go at the rate."""
    time = VirtualTime()
    pacer = PoolPacer(5, clock=time.clock, sleep=time.sleep)  # 10-recipient batches: 2 s slots
    pacer.pause(3.0)
    started = await run_waiters(pacer, time, {"a": 0.5, "b": 1.0, "c": 2.9})
    assert started == pytest.approx({"a": 3.0, "b": 5.0, "c": 7.0})


async def test_a_waiter_woken_at_the_end_of_a_pause_keeps_its_slot() -> None:
    """A batch queued for a pause's end starts at that end, not one slot later."""
    clock = FakeClock(start_s=1.859)
    pacer = clock.pacer(10)
    pacer.pause(6.822 - 1.859)  # until 6.822
    clock.now = 2.289
    await pacer.wait_turn(10)  # sleeps 6.822 - 2.289; 2.289 + that is 6.821999999999999
    assert clock.now == pytest.approx(6.822)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=5_000), min_size=2, max_size=40),
    rate_per_s=st.floats(min_value=0.01, max_value=100_000, allow_nan=False),
)
def test_consecutive_starts_are_spaced_by_size_over_rate(
    sizes: list[int], rate_per_s: float
) -> None:
    """For any sizes and rate: the first batch goes at once, each next one size/rate later."""
    clock = FakeClock()
    times = starts(clock.pacer(rate_per_s), clock, sizes)
    assert times[0] == T0
    for (earlier, later), size in zip(itertools.pairwise(times), sizes, strict=False):
        assert later - earlier == pytest.approx(size / rate_per_s, rel=1e-9, abs=1e-9)
    assert most_in_any_window(times, sizes, 1.0) <= rate_per_s + max(sizes) + 1e-6
