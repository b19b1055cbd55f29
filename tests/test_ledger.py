"""The ledger: what the writer puts on disk and when, what a reader folds it into, and resuming.

Writer tests patch `os.fsync` (and, for a full disk, `os.write` on the ledger's file only) so
that they are fast and can hold a sync open while other coroutines queue behind it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import orjson
import pytest

from campaign.exceptions import CampaignError
from campaign.ledger import (
    LedgerBusyError,
    LedgerError,
    LedgerLock,
    LedgerState,
    LedgerWriter,
    fingerprint,
    now_text,
    read_ledger,
)
from campaign.recipients import KeptKeys, read_recipients
from campaign.resume import ORPHAN_ERROR, InputChangedError, check_ledger, open_ledger
from campaign.spec import CampaignSpec, load_spec

POOL = "comms_senderpool_01kdvdna000000000000000001"
AT = "2026-03-01T00:00:00.000Z"
HEADER: dict[str, Any] = {
    "type": "header",
    "version": 1,
    "campaign": "spring-sale",
    "spec_hash": "spec-1",
    "input": {"path": "people.csv", "size": 0, "sha256": hashlib.sha256(b"").hexdigest()},
    "at": AT,
}
RUN: dict[str, Any] = {"type": "run", "run": 1, "spec_hash": "spec-1", "at": AT}


def recipient(row: int, status: str = "accepted", batch: str | None = "1.1") -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "recipient",
        "row": row,
        "address": f"+1206555{row % 10_000:04d}",
        "channel": "PHONE",
        "pool": POOL,
        "status": status,
        "attempts": 1,
        "at": AT,
    }
    if batch is not None:
        line["batch"] = batch
    return line


def intent(batch: str, rows: list[int]) -> dict[str, Any]:
    return {"type": "intent", "batch": batch, "pool": POOL, "rows": rows, "at": AT}


def released(batch: str) -> dict[str, Any]:
    return {"type": "released", "batch": batch, "why": "429", "at": AT}


def absent(row: int, batch: str = "1.1") -> dict[str, Any]:
    return {"type": "absent", "row": row, "batch": batch, "at": AT}


def jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def contents(path: Path) -> bytes:
    """The file's bytes (a plain blocking read: small local files, read between awaits)."""
    return path.read_bytes()


def lines_of(path: Path) -> list[dict[str, Any]]:
    data = contents(path)
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def state_of(*lines: dict[str, Any]) -> LedgerState:
    state = LedgerState()
    for line in lines:
        state.record(line)
    return state


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spring-sale.ledger.jsonl"


@pytest.fixture
def writer(path: Path) -> Iterator[LedgerWriter]:
    """An open writer on a new ledger (closed again after the test, if it is not already)."""
    ledger = LedgerWriter(path, LedgerState())
    ledger.open()
    yield ledger
    ledger.close()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fd passed to os.fsync (which then does nothing, to keep the tests fast)."""
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    return calls


def fail_writes_to(monkeypatch: pytest.MonkeyPatch, target: Path, *, allow_bytes: int = 0) -> None:
    """Make os.write on `target` fail with ENOSPC after `allow_bytes` more bytes."""
    real_write = os.write
    inode = target.stat().st_ino
    room = [allow_bytes]

    def write(fd: int, data: Any) -> int:
        if os.fstat(fd).st_ino != inode:
            return real_write(fd, data)
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = real_write(fd, bytes(data[: room[0]]))
        room[0] -= written
        return written

    monkeypatch.setattr(os, "write", write)


class HeldSync:
    """An os.fsync whose first call blocks (in its worker thread) until `release()`."""

    def __init__(self, first_error: OSError | None = None, limit: int = 50) -> None:
        self.calls: list[int] = []
        self.sizes: list[int] = []  # the file's size as each sync saw it
        self._started = threading.Event()
        self._released = threading.Event()
        self._first_error = first_error
        self._limit = limit

    def __call__(self, fd: int) -> None:
        self.calls.append(fd)
        self.sizes.append(os.fstat(fd).st_size)
        if len(self.calls) > self._limit:
            raise RuntimeError("durable() keeps calling fsync and never returns")
        if len(self.calls) == 1:
            self._started.set()
            if not self._released.wait(timeout=10):
                raise RuntimeError("the first sync was never released")
            if self._first_error is not None:
                raise self._first_error

    async def started(self) -> None:
        assert await anyio.to_thread.run_sync(self._started.wait, 10)

    def release(self) -> None:
        self._released.set()


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until `condition()` holds (no sleeping)."""
    for _ in range(10_000):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never held")


# --- LedgerWriter -------------------------------------------------------------------------


def test_the_ledger_is_created_readable_by_its_owner_only(path: Path) -> None:
    """A new ledger file has mode 0600, even under a umask that would allow more."""
    old_umask = os.umask(0)
    try:
        ledger = LedgerWriter(path, LedgerState())
        ledger.open()
        ledger.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_each_line_is_one_json_object(writer: LedgerWriter, path: Path) -> None:
    """Every line written is one orjson object on its own line, in order, newline-terminated."""
    lines = [HEADER, RUN, intent("1.1", [1, 2]), recipient(1), {**recipient(2), "note": "é\n✓"}]
    writer.write_many(lines)
    writer.close()
    assert contents(path) == jsonl(*lines)
    assert lines_of(path) == lines


def test_write_only_buffers_and_close_writes(writer: LedgerWriter, path: Path) -> None:
    """`write` leaves the file untouched; `close` hands the lines to the OS; closing twice is fine."""
    writer.write(HEADER)
    writer.write(recipient(1))
    assert contents(path) == b""
    writer.close()
    assert contents(path) == jsonl(HEADER, recipient(1))
    writer.close()
    assert contents(path) == jsonl(HEADER, recipient(1))


def test_a_mebibyte_of_buffered_lines_goes_to_the_os_without_waiting_for_close(
    writer: LedgerWriter, path: Path
) -> None:
    """Buffered result lines are written out once they reach 1 MiB, before any close."""
    writer.write(HEADER)
    big = {**recipient(1), "error": "x" * (1 << 20)}
    writer.write(big)
    assert contents(path) == jsonl(HEADER, big)


def test_the_writer_folds_every_line_into_its_state(writer: LedgerWriter) -> None:
    """The writer's state follows its lines as they are written, before they reach disk."""
    writer.write_many([HEADER, RUN, intent("1.1", [1, 2]), recipient(1)])
    assert writer.state.header == HEADER
    assert writer.state.runs == 1
    assert writer.state.is_settled(1)
    assert not writer.state.is_settled(2)
    assert [row for _, _, row in writer.state.orphaned_rows()] == [2]


async def test_durable_writes_and_fsyncs(
    writer: LedgerWriter, path: Path, fsyncs: list[int]
) -> None:
    """durable() puts the buffered lines on disk and fsyncs the ledger once."""
    writer.write(HEADER)
    writer.write(intent("1.1", [1]))
    await writer.durable()
    assert contents(path) == jsonl(HEADER, intent("1.1", [1]))
    assert len(fsyncs) == 1
    assert os.fstat(fsyncs[0]).st_ino == os.stat(path).st_ino


async def test_durable_with_nothing_new_does_not_sync_again(
    writer: LedgerWriter, fsyncs: list[int]
) -> None:
    """A second durable() with no line written since returns without another fsync."""
    writer.write(HEADER)
    await writer.durable()
    await writer.durable()
    assert len(fsyncs) == 1
    writer.write(recipient(1))
    await writer.durable()
    assert len(fsyncs) == 2


async def test_durable_on_a_closed_writer_refuses(writer: LedgerWriter, path: Path) -> None:
    """durable() after close, with lines not yet synced, raises LedgerError saying it is closed."""
    writer.write(HEADER)
    writer.close()
    with pytest.raises(LedgerError, match=r"the ledger is closed") as caught:
        await writer.durable()
    assert str(path) in str(caught.value)


async def test_concurrent_durable_calls_share_one_fsync(
    writer: LedgerWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: callers queued behind a sync in progress are all covered by the next one."""
    sync = HeldSync()
    monkeypatch.setattr(os, "fsync", sync)
    writer.write(HEADER)
    done: list[int] = []
    waiting: list[int] = []

    async def commit(row: int) -> None:
        writer.write(intent(f"1.{row}", [row]))
        waiting.append(row)
        await writer.durable()
        done.append(row)

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit, 1)
        await sync.started()  # the first caller's fsync is in progress
        for row in (2, 3, 4, 5):
            tg.start_soon(commit, row)
        await until(lambda: len(waiting) == 5)
        assert done == []
        sync.release()

    assert sorted(done) == [1, 2, 3, 4, 5]
    assert len(sync.calls) == 2  # five callers, two fsyncs
    whole = jsonl(HEADER, *(intent(f"1.{row}", [row]) for row in (1, 2, 3, 4, 5)))
    assert sync.sizes == [len(jsonl(HEADER, intent("1.1", [1]))), len(whole)]
    assert contents(path) == whole


async def test_durable_upto_a_line_does_not_wait_for_lines_after_it(
    writer: LedgerWriter, path: Path, fsyncs: list[int]
) -> None:
    """durable(upto=n) makes line n durable and returns at once later, whatever came after."""
    writer.write(HEADER)
    seq = writer.write(intent("1.1", [1]))
    await writer.durable(upto=seq)
    assert len(fsyncs) == 1
    writer.write(recipient(1))
    await writer.durable(upto=seq)
    assert len(fsyncs) == 1
    assert contents(path) == jsonl(HEADER, intent("1.1", [1]))


async def test_sync_soon_syncs_in_the_background_and_again_for_lines_asked_meanwhile(
    writer: LedgerWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync_soon starts an fsync without waiting; asked again during it, one more follows."""
    sync = HeldSync()
    monkeypatch.setattr(os, "fsync", sync)
    first = writer.write(intent("1.1", [1]))
    writer.sync_soon(first)
    await sync.started()
    second = writer.write(intent("1.2", [2]))
    third = writer.write(intent("1.3", [3]))
    writer.sync_soon(second)
    writer.sync_soon(third)
    assert len(sync.calls) == 1  # one sync at a time
    sync.release()
    await writer.durable(upto=third)
    assert len(sync.calls) == 2  # the second covered both lines asked for during the first
    assert sync.sizes[1] == len(jsonl(*(intent(f"1.{row}", [row]) for row in (1, 2, 3))))
    assert contents(path) == jsonl(*(intent(f"1.{row}", [row]) for row in (1, 2, 3)))


async def test_a_background_sync_that_fails_is_raised_by_durable(
    writer: LedgerWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed sync_soon breaks the writer; the next durable() raises it."""
    sync = HeldSync(first_error=OSError(errno.EIO, "Input/output error"))
    monkeypatch.setattr(os, "fsync", sync)
    seq = writer.write(intent("1.1", [1]))
    writer.sync_soon(seq)
    sync.release()
    with pytest.raises(LedgerError, match="cannot sync the ledger: Input/output error"):
        await writer.durable(upto=seq)


async def test_a_full_disk_breaks_the_writer_for_good(
    writer: LedgerWriter, path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC: LedgerError naming the ledger and the fix; every later call raises; disk kept."""
    writer.write_many([HEADER, RUN, recipient(1)])
    await writer.durable()
    before = contents(path)

    with monkeypatch.context() as patch:
        fail_writes_to(patch, path)
        writer.write(intent("1.2", [2]))  # only buffered: nothing fails yet
        with pytest.raises(LedgerError) as caught:
            await writer.durable()
        message = str(caught.value)
        assert message.startswith(f"{path}: cannot write the ledger: No space left on device")
        assert "free space" in message
        assert "run again" in message
        assert isinstance(caught.value, CampaignError)

        with pytest.raises(LedgerError, match="No space left on device"):
            writer.write(recipient(2))
        with pytest.raises(LedgerError, match="No space left on device"):
            await writer.durable()
        writer.close()  # does not try to write again, and does not raise

    assert contents(path) == before
    assert len(fsyncs) == 1
    assert read_ledger(path).is_settled(1)


def test_a_full_disk_at_close_raises_and_still_closes(
    writer: LedgerWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() reports a first write failure as LedgerError; the file is closed all the same."""
    writer.write(HEADER)
    with monkeypatch.context() as patch:
        fail_writes_to(patch, path)
        with pytest.raises(LedgerError, match="cannot write the ledger"):
            writer.close()
    writer.close()  # already closed: nothing left to do
    assert contents(path) == b""


async def test_close_saves_what_a_failed_write_kept_once_there_is_room(
    writer: LedgerWriter, path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a full disk, close() tries the unwritten lines (and salvaged ones) once more."""
    writer.write_many([HEADER, RUN])
    await writer.durable()
    before = contents(path)
    with monkeypatch.context() as patch:
        fail_writes_to(patch, path, allow_bytes=10)  # the disk fills mid-line
        writer.write(intent("1.1", [1]))
        with pytest.raises(LedgerError, match="No space left on device"):
            await writer.durable()
    writer.salvage(released("1.1"))  # accepted even though the writer is broken
    with pytest.raises(LedgerError):
        writer.write(recipient(1))  # ordinary lines are still refused
    writer.close()  # the disk has room again
    assert contents(path) == before + jsonl(intent("1.1", [1]), released("1.1"))
    state = read_ledger(path)
    assert not state.torn_tail
    assert state.open_intents == {}


async def test_a_write_cut_short_leaves_a_torn_tail_the_next_run_cuts_off(
    writer: LedgerWriter, path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk filling up mid-line leaves half a line; reading ignores it, reopening cuts it."""
    writer.write_many([HEADER, RUN, recipient(1)])
    await writer.durable()
    before = contents(path)
    with monkeypatch.context() as patch:
        fail_writes_to(patch, path, allow_bytes=25)
        writer.write(recipient(2))
        with pytest.raises(LedgerError):
            await writer.durable()
        writer.close()
    assert len(contents(path)) == len(before) + 25

    state = read_ledger(path)
    assert state.torn_tail
    assert state.valid_size == len(before)
    assert state.is_settled(1)
    assert not state.is_settled(2)
    again = LedgerWriter(path, state)
    again.open()
    again.write(recipient(2))
    again.close()
    assert contents(path) == before + jsonl(recipient(2))


async def test_a_failed_fsync_breaks_the_writer(
    writer: LedgerWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error is a LedgerError ('cannot sync'), and every later call raises too."""

    def broken_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_sync)
    writer.write(HEADER)
    with pytest.raises(LedgerError, match=r"cannot sync the ledger: Input/output error") as caught:
        await writer.durable()
    assert str(path) in str(caught.value)
    with pytest.raises(LedgerError, match="cannot sync"):
        writer.write(recipient(1))
    with pytest.raises(LedgerError, match="cannot sync"):
        await writer.durable()


async def test_a_durable_queued_behind_a_failed_write_raises(
    writer: LedgerWriter, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers waiting for the sync lock when the ledger breaks get LedgerError, not a hang."""
    sync = HeldSync(limit=50)
    monkeypatch.setattr(os, "fsync", sync)
    writer.write(HEADER)
    outcome: dict[int, str] = {}

    async def commit(row: int) -> None:
        writer.write(intent(f"1.{row}", [row]))
        try:
            await writer.durable()
        except LedgerError:
            outcome[row] = "LedgerError"
        except RuntimeError:
            outcome[row] = "endless fsync loop"
        else:
            outcome[row] = "durable"

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit, 1)
        await sync.started()
        tg.start_soon(commit, 2)
        tg.start_soon(commit, 3)
        await until(lambda: writer.state.open_intents.keys() >= {"1.2", "1.3"})
        fail_writes_to(monkeypatch, path)  # the disk fills while the first sync runs
        sync.release()

    assert outcome == {1: "durable", 2: "LedgerError", 3: "LedgerError"}


async def test_a_durable_queued_behind_a_failed_sync_raises(
    writer: LedgerWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a sync has failed, no caller is told its lines are durable."""
    sync = HeldSync(first_error=OSError(errno.EIO, "Input/output error"))
    monkeypatch.setattr(os, "fsync", sync)
    writer.write(HEADER)
    outcome: dict[int, str] = {}

    async def commit(row: int) -> None:
        writer.write(intent(f"1.{row}", [row]))
        try:
            await writer.durable()
        except LedgerError:
            outcome[row] = "LedgerError"
        else:
            outcome[row] = "durable"

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit, 1)
        await sync.started()
        tg.start_soon(commit, 2)
        await until(lambda: "1.2" in writer.state.open_intents)
        sync.release()

    assert outcome == {1: "LedgerError", 2: "LedgerError"}


# --- read_ledger ----------------------------------------------------------------------------


def test_a_missing_ledger_is_an_empty_state(path: Path) -> None:
    """No file: no header, no runs, nothing settled, nothing torn."""
    state = read_ledger(path)
    assert state.header is None
    assert state.runs == 0
    assert state.settled == 0
    assert state.watermark == 0
    assert not state.open_intents
    assert not state.torn_tail
    assert state.valid_size == 0


def test_reading_folds_every_line(path: Path) -> None:
    """A whole ledger reads back into header, runs, latest spec hash, counts and open intents."""
    path.write_bytes(
        jsonl(
            HEADER,
            RUN,
            intent("1.1", [1, 2, 3]),
            recipient(1),
            recipient(2, "failed"),
            {**RUN, "run": 2, "spec_hash": "spec-2"},
        )
    )
    state = read_ledger(path)
    assert state.header == HEADER
    assert state.runs == 2
    assert state.spec_hash == "spec-2"
    assert state.counts == Counter({"accepted": 1, "failed": 1})
    assert [(batch, row) for batch, _, row in state.orphaned_rows()] == [("1.1", 3)]
    assert state.valid_size == path.stat().st_size
    assert not state.torn_tail


TORN_TAILS = [
    pytest.param(orjson.dumps(recipient(3))[:20], id="cut-json"),
    pytest.param(orjson.dumps(recipient(3)), id="whole-json-no-newline"),
]


@pytest.mark.parametrize("tail", TORN_TAILS)
def test_a_torn_last_line_is_tolerated(path: Path, tail: bytes) -> None:
    """A last line without its newline (a crash mid-write) is no error: it is marked torn."""
    whole = jsonl(HEADER, RUN, recipient(1), recipient(2))
    path.write_bytes(whole + tail)
    state = read_ledger(path)
    assert state.torn_tail
    assert state.valid_size == len(whole)
    assert state.is_settled(1)
    assert state.is_settled(2)


@pytest.mark.parametrize("tail", TORN_TAILS)
def test_opening_a_writer_cuts_the_torn_tail_off(path: Path, tail: bytes) -> None:
    """Before appending, the writer truncates to the whole lines: earlier lines intact."""
    whole = jsonl(HEADER, RUN, recipient(1), recipient(2))
    path.write_bytes(whole + tail)
    state = read_ledger(path)
    ledger = LedgerWriter(path, state)
    ledger.open()
    assert contents(path) == whole
    assert not state.torn_tail
    ledger.write(recipient(4))
    ledger.close()
    assert contents(path) == whole + jsonl(recipient(4))
    assert not read_ledger(path).torn_tail


def test_a_torn_last_line_is_not_counted(path: Path) -> None:
    """The state after cutting a torn tail is the state of what is left on disk."""
    path.write_bytes(jsonl(HEADER, RUN, recipient(1)) + orjson.dumps(recipient(2)))
    state = read_ledger(path)
    ledger = LedgerWriter(path, state)
    ledger.open()
    ledger.close()
    on_disk = read_ledger(path)
    assert (ledger.state.counts, ledger.state.is_settled(2)) == (
        on_disk.counts,
        on_disk.is_settled(2),
    )


@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param(b"this is not json\n", id="not-json"),
        pytest.param(b"[1, 2, 3]\n", id="not-an-object"),
        pytest.param(b"\n", id="blank"),
        pytest.param(b'{"type": "recipient", "status": "accepted"}\n', id="no-row"),
        pytest.param(b'{"type": "intent", "batch": "1.1"}\n', id="intent-without-rows"),
        pytest.param(b'{"type": "recipient", "row": "3", "status": "x"}\n', id="row-not-int"),
    ],
)
def test_a_corrupt_line_in_the_middle_names_its_number(path: Path, bad_line: bytes) -> None:
    """A bad line followed by others is LedgerError naming the file and the line number."""
    path.write_bytes(jsonl(HEADER, RUN) + bad_line + jsonl(recipient(1)))
    with pytest.raises(LedgerError) as caught:
        read_ledger(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 3 is not a ledger line")
    assert "move it away" in message


def test_a_ledger_without_a_header_is_refused(path: Path) -> None:
    """Lines but no header line: LedgerError naming the file and what to do."""
    path.write_bytes(jsonl(RUN, recipient(1)))
    with pytest.raises(LedgerError, match=r"has no header line; move it away") as caught:
        read_ledger(path)
    assert str(path) in str(caught.value)


def test_a_ledger_holding_only_a_cut_first_line_reads_as_empty(path: Path) -> None:
    """A crash during the very first write leaves a torn first line: an empty, torn state."""
    path.write_bytes(orjson.dumps(HEADER)[:30])
    state = read_ledger(path)
    assert state.header is None
    assert state.torn_tail
    assert state.valid_size == 0


def test_an_unreadable_ledger_is_a_ledger_error(path: Path) -> None:
    """A path that cannot be opened (here: a folder) is LedgerError naming it."""
    path.mkdir()
    with pytest.raises(LedgerError, match="cannot read the ledger") as caught:
        read_ledger(path)
    assert str(path) in str(caught.value)


# --- LedgerState ----------------------------------------------------------------------------


def test_rows_settled_out_of_order_raise_the_watermark_when_the_gap_closes() -> None:
    """The watermark is the highest row with every row below settled; the rest wait above."""
    state = state_of(recipient(1), recipient(3), recipient(5), recipient(2))
    assert state.watermark == 3
    assert state.above == {5}
    assert [state.is_settled(row) for row in range(1, 7)] == [True, True, True, False, True, False]
    state.record(recipient(4))
    assert state.watermark == 5
    assert state.above == set()
    assert state.is_settled(5)
    assert not state.is_settled(6)


def test_memory_stays_flat_for_rows_settled_roughly_in_order() -> None:
    """100,000 rows settled a little out of order: the watermark reaches them, `above` stays small."""
    rng = random.Random(2026)
    order: list[int] = []
    for start in range(1, 100_001, 16):
        chunk = list(range(start, min(start + 16, 100_001)))
        rng.shuffle(chunk)
        order.extend(chunk)
    state = LedgerState()
    largest_above = 0
    for row in order:
        state.record({"type": "recipient", "row": row, "status": "accepted"})
        largest_above = max(largest_above, len(state.above))
    assert state.watermark == 100_000
    assert state.above == set()
    assert largest_above <= 15
    assert state.settled == 100_000


def test_counts_are_by_each_rows_last_state() -> None:
    """Counts hold one entry per settled row, under its state; `settled` is their total."""
    statuses = ["accepted", "accepted", "failed", "invalid", "duplicate", "suppressed", "in_doubt"]
    state = state_of(*(recipient(row, status) for row, status in enumerate(statuses, start=1)))
    assert state.counts == Counter(statuses)
    assert state.settled == 7
    assert state.in_doubt == {7: "1.1"}


def test_a_row_in_doubt_later_accepted_moves_between_counts() -> None:
    """Reconciliation: an in_doubt row's later state replaces it in the counts."""
    state = state_of(recipient(1, "in_doubt", "1.4"), recipient(2, "in_doubt", "1.4"))
    assert state.counts == Counter({"in_doubt": 2})
    assert state.in_doubt == {1: "1.4", 2: "1.4"}
    state.record(recipient(1, "accepted", "2.1"))
    assert state.counts == Counter({"in_doubt": 1, "accepted": 1})
    assert state.in_doubt == {2: "1.4"}
    assert state.settled == 2


@pytest.mark.parametrize("first", ["accepted", "failed", "invalid", "duplicate", "suppressed"])
@pytest.mark.parametrize("second", ["accepted", "failed", "in_doubt"])
def test_a_second_line_for_a_settled_row_is_not_counted_again(first: str, second: str) -> None:
    """Once settled (other than in_doubt), a row keeps its first state and is counted once."""
    state = state_of(recipient(1, first), recipient(1, second, "1.2"))
    assert state.counts == Counter({first: 1})
    assert state.settled == 1
    assert state.in_doubt == {}


def test_an_intent_stays_open_until_every_row_has_a_line() -> None:
    """Rows of an intent with no result yet are its orphans; the last result closes it."""
    state = state_of(intent("1.1", [4, 5, 6]), recipient(5, batch="1.1"))
    orphans = list(state.orphaned_rows())
    assert [(batch, row) for batch, _, row in orphans] == [("1.1", 4), ("1.1", 6)]
    assert orphans[0][1].pool == POOL
    assert orphans[0][1].at == AT
    state.record(recipient(4, batch="1.1"))
    state.record(recipient(6, "failed", batch="1.1"))
    assert list(state.orphaned_rows()) == []
    assert state.open_intents == {}


def test_a_released_intent_is_closed_and_its_rows_stay_unsettled() -> None:
    """A released request was never processed: no orphans, and its rows are free to send."""
    state = state_of(intent("1.1", [1, 2]), intent("1.2", [3]), released("1.1"))
    assert list(state.open_intents) == ["1.2"]
    assert [(batch, row) for batch, _, row in state.orphaned_rows()] == [("1.2", 3)]
    assert not state.is_settled(1)
    assert not state.is_settled(2)


def test_a_result_for_another_batch_does_not_close_an_intent() -> None:
    """A row's line closes only the intent of the batch it names."""
    state = state_of(intent("1.1", [1]), recipient(1, batch="1.9"))
    assert [(batch, row) for batch, _, row in state.orphaned_rows()] == [("1.1", 1)]


def test_a_row_proven_absent_is_unsettled_until_its_next_line() -> None:
    """Reconciliation's `absent` verdict takes an in_doubt row out of the counts, to send again."""
    state = state_of(recipient(1, "in_doubt", "1.1"), recipient(2, "in_doubt", "1.1"), absent(1))
    assert not state.is_settled(1)
    assert state.is_settled(2)
    assert state.unsent == {1}
    assert state.in_doubt == {2: "1.1"}
    assert state.counts == Counter({"in_doubt": 1})
    assert state.settled == 1

    state.record(recipient(1, "accepted", "2.1"))  # sent again
    assert state.is_settled(1)
    assert state.unsent == set()
    assert state.counts == Counter({"in_doubt": 1, "accepted": 1})
    state.record(recipient(1, "failed", "2.2"))  # from now on settled as any other row
    assert state.counts == Counter({"in_doubt": 1, "accepted": 1})


@pytest.mark.parametrize("status", ["accepted", "failed", "suppressed"])
def test_absent_changes_nothing_for_a_row_not_in_doubt(status: str) -> None:
    """Only an in_doubt row can be proven absent; for others (or unknown rows) it is a no-op."""
    state = state_of(recipient(1, status), absent(1), absent(2))
    assert state.is_settled(1)
    assert not state.is_settled(2)
    assert state.unsent == set()
    assert state.counts == Counter({status: 1})


def test_absent_lines_survive_a_reread(path: Path) -> None:
    """read_ledger folds absent lines too: the row is due again after a restart."""
    path.write_bytes(jsonl(HEADER, RUN, intent("1.1", [1]), recipient(1, "in_doubt"), absent(1)))
    state = read_ledger(path)
    assert not state.is_settled(1)
    assert state.unsent == {1}
    assert state.counts["in_doubt"] == 0


# --- LedgerLock -----------------------------------------------------------------------------


def test_a_second_run_on_a_locked_ledger_is_refused(path: Path) -> None:
    """The lock file holds the owner's pid; a second lock on it fails naming the ledger and pid."""
    first = LedgerLock(path)
    first.acquire()
    try:
        assert first.path == path.with_name(path.name + ".lock")
        assert first.path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LedgerBusyError) as caught:
            LedgerLock(path).acquire()
        message = str(caught.value)
        assert message.startswith(f"{path}: another run of this campaign (pid {os.getpid()})")
        assert "nothing was sent" in message
        assert isinstance(caught.value, LedgerError)
    finally:
        first.release()
    again = LedgerLock(path)
    again.acquire()  # released: free to take, and the stale file is no obstacle
    again.release()
    again.release()  # idempotent
    assert first.path.exists()


# --- fingerprints and time stamps -----------------------------------------------------------


@pytest.mark.parametrize("prefix_size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 2_621_440])
def test_the_prefix_hash_is_the_hash_of_the_first_bytes(tmp_path: Path, prefix_size: int) -> None:
    """fingerprint() hashes the whole file and, separately, its first `prefix_size` bytes."""
    data = random.Random(5).randbytes(2_621_440)  # 2.5 MiB: three read chunks
    target = tmp_path / "people.csv"
    target.write_bytes(data)
    whole, prefix = fingerprint(target, prefix_size=prefix_size)
    assert whole.size == len(data)
    assert whole.sha256 == hashlib.sha256(data).hexdigest()
    assert whole.path == str(target)
    assert prefix == hashlib.sha256(data[:prefix_size]).hexdigest()


def test_a_prefix_longer_than_the_file_has_no_hash(tmp_path: Path) -> None:
    """A file shorter than the recorded size gives an empty prefix hash: it cannot match."""
    target = tmp_path / "people.csv"
    target.write_bytes(b"address\n")
    _, prefix = fingerprint(target, prefix_size=100)
    assert prefix == ""


def test_time_stamps_are_utc_with_milliseconds() -> None:
    """now_text() is RFC 3339 in UTC with a Z and exactly three decimals."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_text())


# --- resume: open_ledger / check_ledger ------------------------------------------------------

PEOPLE = "address,first_name\n+12065550101,Ada\n+12065550102,Grace\n+12065550103,Alan\n"


def campaign(folder: Path, *, name: str = "spring-sale", rate_per_s: float = 50) -> CampaignSpec:
    """Write a campaign file beside people.csv (written if missing) and load it."""
    people = folder / "people.csv"
    if not people.exists():
        people.write_text(PEOPLE)
    source = folder / f"{name}.toml"
    source.write_text(
        f'name = "{name}"\n\n'
        '[recipients]\npath = "people.csv"\n\n'
        f'[sender]\npool = "{POOL}"\n\n'
        "[message]\ntext = \"Hi {{ first_name | default: 'there' }}\"\n\n"
        f"[sending]\nrate_per_s = {rate_per_s}\n"
    )
    return load_spec(source)


def run_once(spec: CampaignSpec, ledger: Path, **kw: Any) -> tuple[int, list[str]]:
    """Open the ledger for a run and close it again: the run number and the notes."""
    opened = open_ledger(spec, ledger, **kw)
    opened.writer.close()
    return opened.run_number, opened.notes


def test_a_new_ledger_gets_a_header_and_run_one(tmp_path: Path) -> None:
    """First run: a header with campaign, spec hash and the input's fingerprint, then run 1."""
    spec = campaign(tmp_path)
    assert run_once(spec, spec.ledger_path) == (1, [])
    header, run = lines_of(spec.ledger_path)
    data = (tmp_path / "people.csv").read_bytes()
    assert header["type"] == "header"
    assert header["version"] == 1
    assert header["campaign"] == "spring-sale"
    assert header["spec_hash"] == spec.spec_hash
    assert header["input"] == {
        "path": str(spec.recipients.path),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert run["type"] == "run"
    assert run["run"] == 1
    assert run["spec_hash"] == spec.spec_hash
    assert stat.S_IMODE(spec.ledger_path.stat().st_mode) & 0o077 == 0


def test_checking_a_new_ledger_gives_the_inputs_fingerprint(tmp_path: Path) -> None:
    """check_ledger on an empty state fingerprints the recipients file and has nothing to say."""
    spec = campaign(tmp_path)
    current, notes, extends = check_ledger(spec, LedgerState(), spec.ledger_path, force=False)
    data = (tmp_path / "people.csv").read_bytes()
    assert (current.size, current.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert notes == []
    assert extends is None  # nothing recorded yet that today's file could extend


def test_the_next_run_appends_run_two_and_no_second_header(tmp_path: Path) -> None:
    """Reopening the same campaign adds `run 2` only, without notes."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    assert run_once(spec, spec.ledger_path) == (2, [])
    assert run_once(spec, spec.ledger_path) == (3, [])
    kinds = [(line["type"], line.get("run")) for line in lines_of(spec.ledger_path)]
    assert kinds == [("header", None), ("run", 1), ("run", 2), ("run", 3)]


def test_another_campaigns_ledger_is_refused(tmp_path: Path) -> None:
    """A ledger begun by another campaign: LedgerError naming both, and the file untouched."""
    spring = campaign(tmp_path)
    run_once(spring, spring.ledger_path)
    before = spring.ledger_path.read_bytes()
    autumn = campaign(tmp_path, name="autumn-sale")
    with pytest.raises(LedgerError) as caught:
        open_ledger(autumn, spring.ledger_path)
    message = str(caught.value)
    assert "'spring-sale'" in message
    assert "'autumn-sale'" in message
    assert "its own ledger" in message
    assert spring.ledger_path.read_bytes() == before


def test_rows_appended_to_the_recipients_file_are_allowed_with_a_note(tmp_path: Path) -> None:
    """The old bytes unchanged and new rows after them: the run goes on and says how much grew."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    added = "+12065550104,Edsger\n"
    with (tmp_path / "people.csv").open("a") as people:
        people.write(added)
    run_number, notes = run_once(spec, spec.ledger_path)
    assert run_number == 2
    assert len(notes) == 1
    assert f"has grown by {len(added)} bytes" in notes[0]
    assert "new rows will be sent" in notes[0]


EDITS = [
    pytest.param(PEOPLE.replace("Grace", "Grace "), id="row-edited"),
    pytest.param(PEOPLE.replace("+12065550103,Alan\n", ""), id="row-removed"),
    pytest.param(
        "address,first_name\n+12065550102,Grace\n+12065550101,Ada\n+12065550103,Alan\n",
        id="rows-reordered",
    ),
    pytest.param(PEOPLE.replace("Ada", "Ida") + "+12065550104,Edsger\n", id="edited-and-grown"),
    pytest.param("", id="emptied"),
]


@pytest.mark.parametrize("edited", EDITS)
def test_an_edited_recipients_file_is_refused(tmp_path: Path, edited: str) -> None:
    """Changed, removed or reordered rows: InputChangedError saying how to go on; ledger untouched."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    before = spec.ledger_path.read_bytes()
    (tmp_path / "people.csv").write_text(edited)
    with pytest.raises(InputChangedError) as caught:
        open_ledger(spec, spec.ledger_path)
    message = str(caught.value)
    assert str(spec.recipients.path) in message
    assert str(spec.ledger_path) in message
    assert "--force" in message
    assert isinstance(caught.value, CampaignError)
    assert spec.ledger_path.read_bytes() == before


@pytest.mark.parametrize("edited", EDITS)
def test_force_goes_on_with_an_edited_file_and_says_so(tmp_path: Path, edited: str) -> None:
    """With force=True an edited file is accepted, with a note that names --force."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    (tmp_path / "people.csv").write_text(edited)
    run_number, notes = run_once(spec, spec.ledger_path, force=True)
    assert run_number == 2
    assert len(notes) == 1
    assert "changed since the last run; going on (--force)" in notes[0]


def test_a_changed_campaign_file_is_allowed_with_a_note(tmp_path: Path) -> None:
    """A new rate changes the spec hash: a note once, and the run line records the new hash."""
    first = campaign(tmp_path, rate_per_s=50)
    run_once(first, first.ledger_path)
    faster = campaign(tmp_path, rate_per_s=20)
    assert faster.spec_hash != first.spec_hash
    run_number, notes = run_once(faster, faster.ledger_path)
    assert run_number == 2
    assert len(notes) == 1
    assert "campaign file changed since the last run" in notes[0]
    assert run_once(faster, faster.ledger_path) == (3, [])  # compared with the latest run
    header, *runs = lines_of(first.ledger_path)
    assert header["spec_hash"] == first.spec_hash
    assert [run["spec_hash"] for run in runs] == [
        first.spec_hash,
        faster.spec_hash,
        faster.spec_hash,
    ]


def test_rows_of_requests_left_open_become_in_doubt(tmp_path: Path) -> None:
    """An intent without its answers: the next run writes in_doubt lines for its rows, and says so."""
    spec = campaign(tmp_path)
    opened = open_ledger(spec, spec.ledger_path)
    opened.writer.write_many(
        [
            intent("1.1", [1, 2, 3]),
            recipient(1, batch="1.1"),
            intent("1.2", [4]),
            released("1.2"),  # a 429: certainly not processed, so not in doubt
        ]
    )
    opened.writer.close()  # the process "dies" before rows 2 and 3 get an answer

    run_number, notes = run_once(spec, spec.ledger_path)
    assert run_number == 2
    assert len(notes) == 1
    assert notes[0].startswith("2 recipients were in requests a previous run sent")
    written = lines_of(spec.ledger_path)[-2:]
    for line, row in zip(written, (2, 3), strict=True):
        assert line["type"] == "recipient"
        assert line["row"] == row
        assert line["status"] == "in_doubt"
        assert line["batch"] == "1.1"
        assert line["pool"] == POOL
        assert line["error"] == ORPHAN_ERROR

    state = read_ledger(spec.ledger_path)
    assert state.counts == Counter({"accepted": 1, "in_doubt": 2})
    assert state.in_doubt == {2: "1.1", 3: "1.1"}
    assert state.doubt_batches == {"1.1": (POOL, AT)}
    assert state.open_intents == {}
    assert not state.is_settled(4)
    assert run_once(spec, spec.ledger_path) == (3, [])  # nothing left open the second time


def test_open_ledger_uses_a_state_it_is_given(tmp_path: Path) -> None:
    """With state= the ledger is not read again: the writer carries that very state on."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    state = read_ledger(spec.ledger_path)
    opened = open_ledger(spec, spec.ledger_path, state=state)
    opened.writer.close()
    assert opened.writer.state is state
    assert state.runs == 2


def test_a_ledger_whose_header_was_torn_is_started_again(tmp_path: Path) -> None:
    """A crash in the very first write: the next run gives the ledger a header and run 1."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    header_line = spec.ledger_path.read_bytes().split(b"\n")[0]
    spec.ledger_path.write_bytes(header_line)  # the write stopped just before the newline

    run_once(spec, spec.ledger_path)
    state = read_ledger(spec.ledger_path)
    assert state.header is not None
    assert state.runs == 1


# --- resume: the input each run saw, and what today's file extends ---------------------------


def people_fingerprint(folder: Path) -> dict[str, Any]:
    data = (folder / "people.csv").read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check(spec: CampaignSpec, *, force: bool = False) -> Any:
    """check_ledger on the ledger as it is on disk."""
    return check_ledger(spec, read_ledger(spec.ledger_path), spec.ledger_path, force=force)


def append_people(folder: Path, text: str) -> None:
    with (folder / "people.csv").open("a") as people:
        people.write(text)


def test_each_run_line_records_the_input_it_saw(tmp_path: Path) -> None:
    """Run lines carry the recipients file's size and hash as that run found it; the header
    keeps the first, and the state reads back the latest."""
    spec = campaign(tmp_path)
    first = people_fingerprint(tmp_path)
    run_once(spec, spec.ledger_path)
    append_people(tmp_path, "+12065550104,Edsger\n")
    second = people_fingerprint(tmp_path)
    run_once(spec, spec.ledger_path)
    header, run_one, run_two = lines_of(spec.ledger_path)
    assert {k: header["input"][k] for k in ("size", "sha256")} == first
    assert run_one["input"] == first
    assert run_two["input"] == second
    assert read_ledger(spec.ledger_path).input == second


def test_extends_is_the_recorded_input_when_the_file_is_unchanged(tmp_path: Path) -> None:
    """The same file: `extends` is the recorded fingerprint, which is today's."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    current, notes, extends = check(spec)
    recorded = people_fingerprint(tmp_path)
    assert notes == []
    assert extends is not None
    assert (extends.size, extends.sha256) == (recorded["size"], recorded["sha256"])
    assert (current.size, current.sha256) == (extends.size, extends.sha256)


def test_extends_is_the_recorded_input_when_rows_were_appended(tmp_path: Path) -> None:
    """Rows appended: `extends` is the file as the last run saw it, `current` today's."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    recorded = people_fingerprint(tmp_path)
    append_people(tmp_path, "+12065550104,Edsger\n")
    current, notes, extends = check(spec)
    assert len(notes) == 1
    assert "grown by" in notes[0]
    assert extends is not None
    assert (extends.size, extends.sha256) == (recorded["size"], recorded["sha256"])
    assert (current.size, current.sha256) == tuple(people_fingerprint(tmp_path).values())


@pytest.mark.parametrize("edited", EDITS)
def test_extends_is_none_for_an_edited_file_gone_on_with_force(tmp_path: Path, edited: str) -> None:
    """An edited file passed with --force: nothing today's file is known to extend."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    (tmp_path / "people.csv").write_text(edited)
    current, notes, extends = check(spec, force=True)
    assert extends is None
    assert current.size == len(edited.encode())
    assert "going on (--force)" in notes[0]


def test_extends_follows_the_latest_run_not_the_header(tmp_path: Path) -> None:
    """After a run on an appended file, the next check compares with that run's input: the
    same file is unchanged (no note), and `extends` is that run's fingerprint."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    append_people(tmp_path, "+12065550104,Edsger\n")
    run_once(spec, spec.ledger_path)
    grown = people_fingerprint(tmp_path)
    _, notes, extends = check(spec)
    assert notes == []
    assert extends is not None
    assert (extends.size, extends.sha256) == (grown["size"], grown["sha256"])
    append_people(tmp_path, "+12065550105,Barbara\n")
    _, notes, extends = check(spec)
    assert extends is not None
    assert (extends.size, extends.sha256) == (grown["size"], grown["sha256"])
    assert "grown by 21 bytes since the last run" in notes[0]


def test_rows_appended_and_sent_then_edited_are_refused(tmp_path: Path) -> None:
    """The hole the run lines' input closed: rows appended and run, then those appended rows
    edited (the first run's bytes untouched).  Compared with the header alone this passed as
    'grown'; it is an edited file, refused, and with --force nothing is extended."""
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    append_people(tmp_path, "+12065550104,Edsger\n")
    run_once(spec, spec.ledger_path)
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE + "+12065550199,Mallory\n")  # the same size, another person
    before = spec.ledger_path.read_bytes()
    with pytest.raises(InputChangedError, match="changed since the last run"):
        open_ledger(spec, spec.ledger_path)
    with pytest.raises(InputChangedError):
        check(spec)
    assert spec.ledger_path.read_bytes() == before
    _, notes, extends = check(spec, force=True)
    assert extends is None
    assert "going on (--force)" in notes[0]


def test_a_ledger_whose_runs_record_no_input_is_compared_with_its_header(
    tmp_path: Path,
) -> None:
    """Ledgers written before run lines recorded the input: the header's is the reference."""
    spec = campaign(tmp_path)
    data = PEOPLE.encode()
    header = {
        **HEADER,
        "spec_hash": spec.spec_hash,
        "input": {
            "path": "people.csv",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    spec.ledger_path.write_bytes(
        orjson.dumps(header) + b"\n" + orjson.dumps({**RUN, "spec_hash": spec.spec_hash}) + b"\n"
    )
    assert read_ledger(spec.ledger_path).input == header["input"]
    append_people(tmp_path, "+12065550104,Edsger\n")
    _, notes, extends = check(spec)
    assert extends is not None
    assert (extends.size, extends.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert "grown by" in notes[0]
    (tmp_path / "people.csv").write_text(PEOPLE.replace("Ada", "Ida"))
    with pytest.raises(InputChangedError):
        check(spec)


def test_bytes_appended_to_a_last_line_without_its_newline_are_an_edit(
    tmp_path: Path,
) -> None:
    """A file whose last row had no line break, then rows appended (`>>`): its first bytes
    are unchanged, but its last row is not -- the first appended row joins it.  That is an
    edit: refused, saying why, unless forced; and forced, the kept keys (whose row 1 was
    Ada alone) are not used, so a resumed read answers as a full one."""
    (tmp_path / "people.csv").write_text("first_name,address\nAda,+12065550101")
    spec = campaign(tmp_path)
    run_once(spec, spec.ledger_path)
    store = spec.ledger_path.with_name(spec.ledger_path.name + ".keys")
    recorded = people_fingerprint(tmp_path)
    was = f"{recorded['size']}:{recorded['sha256']}"
    with read_recipients(
        spec.recipients.path, format="csv", kept=KeptKeys(store, None, was)
    ) as rows:
        assert [row.verdict for row in rows] == ["valid"]  # Ada's key is kept, for row 1
    unchanged = check(spec).extends  # the very same file still extends what was recorded
    assert unchanged is not None
    assert (unchanged.size, unchanged.sha256) == (recorded["size"], recorded["sha256"])
    append_people(tmp_path, "Grace,+12065550102\nAda,+12065550101\n")

    with pytest.raises(InputChangedError, match="did not end with a line break"):
        check(spec)
    current, notes, extends = check(spec, force=True)
    assert "--force" in notes[0]
    assert extends is None
    # What the run command makes of this answer (nothing settled yet: watermark 0).
    kept = KeptKeys(store, None, f"{current.size}:{current.sha256}")
    with read_recipients(spec.recipients.path, format="csv", kept=kept) as rows:
        resumed = list(rows)
    with read_recipients(spec.recipients.path, format="csv") as rows:
        full = list(rows)
    assert [row.reason or row.verdict for row in full] == ["bad_row", "valid"]
    assert resumed == full
