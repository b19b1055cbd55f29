"""campaign.inflight.InFlightCap: the account's limit on requests in flight, learnt from 429s."""

from __future__ import annotations

import anyio
import pytest

from campaign.inflight import InFlightCap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_cap_is_the_workers_and_never_waits() -> None:
    """Until a 429, as many requests as workers go at once: enter() returns at once."""

    async def main() -> None:
        gate = InFlightCap(3, clock=Clock())
        with anyio.fail_after(1):
            for _ in range(3):
                await gate.enter()
        assert (gate.busy, gate.cap) == (3, 3)

    anyio.run(main)


def test_a_429_lowers_the_cap_below_the_requests_in_flight_with_it() -> None:
    """Four in flight when one is refused (three once it has left): three at most from
    then on; never below one, and a 429 never raises it."""
    gate = InFlightCap(8, clock=Clock())
    gate.busy = 3
    gate.refused()
    assert gate.cap == 3
    gate.busy = 6  # more in flight than the cap (they started before it fell)
    gate.refused()
    assert gate.cap == 3
    gate.busy = 0
    gate.refused()
    gate.refused()
    assert gate.cap == 1


def test_over_the_cap_a_request_waits_for_one_to_leave() -> None:
    async def main() -> None:
        gate = InFlightCap(4, clock=Clock())
        for _ in range(3):
            await gate.enter()
        gate.leave()  # one of the 3 is refused: it leaves, 2 still in flight...
        gate.refused()  # ...so cap 2, and the gate is full
        entered: list[int] = []

        async def another(number: int) -> None:
            await gate.enter()
            entered.append(number)

        async with anyio.create_task_group() as group:
            group.start_soon(another, 1)
            await anyio.wait_all_tasks_blocked()
            assert entered == []  # full: it waits
            gate.leave()
            await anyio.wait_all_tasks_blocked()
            assert entered == [1]
        assert gate.busy == 2

    anyio.run(main)


def test_the_cap_creeps_back_one_at_a_time_after_quiet_spells() -> None:
    """After `raise_after_s` without a 429, an answer raises the cap by one; the next
    raise needs another quiet spell; never above `most`."""

    async def main() -> None:
        clock = Clock()
        gate = InFlightCap(3, clock=clock, raise_after_s=30)
        gate.busy = 1
        gate.refused()
        gate.busy = 0
        assert gate.cap == 1
        clock.now += 29
        gate.answered()
        assert gate.cap == 1
        clock.now += 1
        gate.answered()
        gate.answered()
        assert gate.cap == 2
        clock.now += 30
        gate.answered()
        clock.now += 30
        gate.answered()
        assert gate.cap == 3  # the campaign's concurrency: no further

    anyio.run(main)


def test_a_raise_lets_a_waiting_request_go() -> None:
    async def main() -> None:
        clock = Clock()
        gate = InFlightCap(2, clock=clock, raise_after_s=30)
        await gate.enter()
        await gate.enter()
        gate.leave()
        gate.refused()  # one refused and gone, one in flight: cap 1
        entered = anyio.Event()

        async def another() -> None:
            await gate.enter()
            entered.set()

        async with anyio.create_task_group() as group:
            group.start_soon(another)
            await anyio.wait_all_tasks_blocked()
            assert not entered.is_set()
            clock.now += 30
            gate.answered()  # the one in flight answered after a quiet spell: cap 2
            with anyio.fail_after(1):
                await entered.wait()

    anyio.run(main)


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlightCap(0)
