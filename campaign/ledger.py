"""The ledger: an append-only JSONL record of a campaign, and the state a run resumes from.

One JSON object per line (orjson), the file created 0600::

    {"type": "header", "version": 1, "campaign": "spring-sale", "spec_hash": "…",
     "input": {"path": "…", "size": 123, "sha256": "…"}, "at": "…"}
    {"type": "run", "run": 1, "spec_hash": "…", "at": "…"}
    {"type": "intent", "batch": "1.7", "pool": "comms_senderpool_…", "rows": [18, 19], "at": "…"}
    {"type": "recipient", "row": 18, "address": "+19143188062", "channel": "PHONE",
     "pool": "comms_senderpool_…", "status": "accepted", "operation": "comms_operation_…",
     "attempts": 1, "batch": "1.7", "at": "…"}
    {"type": "released", "batch": "1.8", "why": "429", "at": "…"}
    {"type": "absent", "row": 19, "batch": "1.7", "at": "…"}

A batch's *intent* is on disk (written and fsync'd) before its request goes out, so a
crash can never leave a request the ledger does not know about. Its recipients' lines
follow once the answer is known. A *released* intent is one whose request was certainly
not processed (a 429, a 400, bad credentials, a refused connection): its rows are free to
send again. Rows of an intent with neither a result nor a release are in doubt: the
request may or may not have been processed. An *absent* line is reconciliation's verdict
on an in-doubt row: the API holds no message for it, so it is to be sent again.

The last recipient line for a row is its state. `read_ledger` folds a ledger into a
`LedgerState` in flat memory: a contiguous low watermark of settled rows plus the few
settled rows above it (rows are settled roughly in file order), the rows of intents still
open, and counts by state. A torn last line (a crash mid-write) is ignored, and cut off
before anything new is appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from campaign.exceptions import CampaignError

__all__ = [
    "KEYS_SUFFIX",
    "SETTLED_STATES",
    "InputFingerprint",
    "LedgerBusyError",
    "LedgerError",
    "LedgerLock",
    "LedgerState",
    "LedgerWriter",
    "fingerprint",
    "now_text",
    "read_ledger",
]

VERSION: Final = 1
# `<ledger>.keys`: the addresses read so far (campaign.dedupe.KeySet.kept), so that a
# resumed run need not read the settled rows again; safe to delete (rebuilt when missing).
KEYS_SUFFIX: Final = ".keys"
SETTLED_STATES: Final = ("accepted", "failed", "invalid", "duplicate", "suppressed", "in_doubt")
_CHUNK: Final = 1 << 20
_BUFFER_LIMIT: Final = 1 << 20  # result lines are handed to the OS at least every MiB


class LedgerError(CampaignError):
    """The ledger cannot be read, written or trusted; the message says which and what to do."""


class LedgerBusyError(LedgerError):
    """Another process is running this campaign on this ledger right now."""


class LedgerLock:
    """One run per ledger: an exclusive `flock` on `<ledger>.lock`, held for the whole run.

    The kernel drops the lock when its process ends, however it ends (even SIGKILL), so a
    lock file left behind never blocks anyone: it is stale-safe by construction. The file
    holds the owner's pid, for the message a second run prints.
    """

    def __init__(self, ledger: Path) -> None:
        self.path = ledger.with_name(ledger.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise LedgerError(
                f"{self.path}: cannot create the ledger's lock file: {err.strerror or err}; "
                "check the folder's permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LedgerBusyError(
                f"{self.path.with_suffix('')}: another run of this campaign (pid {owner}) is "
                "using this ledger; nothing was sent. Let it finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Unlock; the file stays (unlinking it could race with a run taking it)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def now_text() -> str:
    """The time stamp every ledger line carries: UTC, RFC 3339, milliseconds.

    Formatting a datetime costs more than a small ledger line's other work, so the text of
    the current second is kept and only the milliseconds are added.
    """
    now = time.time()
    second = int(now)
    if _second[0] != second:
        _second[0] = second
        _second[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


@dataclass(frozen=True, slots=True)
class InputFingerprint:
    """The recipients file as a run saw it: its size and the SHA-256 of its bytes."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def fingerprint(path: Path, *, prefix_size: int | None = None) -> tuple[InputFingerprint, str]:
    """The file's fingerprint, and the SHA-256 of its first `prefix_size` bytes.

    The prefix hash tells an appended file (its old bytes unchanged) from an edited one.
    """
    whole = hashlib.sha256()
    prefix_digest = ""
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if prefix_size is not None and size <= prefix_size < size + len(chunk):
                prefix = whole.copy()
                prefix.update(chunk[: prefix_size - size])
                prefix_digest = prefix.hexdigest()
            whole.update(chunk)
            size += len(chunk)
    digest = whole.hexdigest()
    if prefix_size is not None and prefix_size == size:
        prefix_digest = digest
    return InputFingerprint(str(path), size, digest), prefix_digest


@dataclass(slots=True)
class _OpenIntent:
    pool: str
    at: str
    waiting: set[int]  # rows of the intent with no result line yet


@dataclass(slots=True)
class LedgerState:
    """What a ledger says: who is settled, in which state, and which requests are open."""

    header: dict[str, Any] | None = None
    runs: int = 0
    spec_hash: str | None = None  # of the latest run
    input: dict[str, Any] | None = None  # the recipients file as the latest run saw it
    counts: Counter[str] = field(default_factory=Counter)  # rows by their last state
    in_doubt: dict[int, str] = field(default_factory=dict)  # row -> batch of its request
    doubt_batches: dict[str, tuple[str, str]] = field(default_factory=dict)  # batch -> pool, at
    unsent: set[int] = field(default_factory=set)  # in doubt, then proven absent: send again
    open_intents: dict[str, _OpenIntent] = field(default_factory=dict)
    watermark: int = 0  # every row up to here is settled
    above: set[int] = field(default_factory=set)  # settled rows above the watermark
    valid_size: int = 0  # bytes of whole lines; a torn tail starts here
    torn_tail: bool = False

    def is_settled(self, row: int) -> bool:
        return (row <= self.watermark or row in self.above) and row not in self.unsent

    @property
    def settled(self) -> int:
        return self.counts.total()

    def _settle(self, row: int) -> bool:
        """Mark `row` settled; False when it already was (a later state replaces the first)."""
        if row <= self.watermark or row in self.above:
            return False
        if row == self.watermark + 1:
            self.watermark = row
            above = self.above
            while self.watermark + 1 in above:
                self.watermark += 1
                above.discard(self.watermark)
        else:
            self.above.add(row)
        return True

    def record(self, line: dict[str, Any]) -> None:
        """Fold one ledger line in (also used by the writer to keep a live state)."""
        kind = line.get("type")
        if kind == "recipient":
            self._recipient(line)
        elif kind == "intent":
            rows = set(line["rows"])
            self.open_intents[line["batch"]] = _OpenIntent(line["pool"], line["at"], rows)
        elif kind == "released":
            self.open_intents.pop(line["batch"], None)
        elif kind == "absent":
            row = line["row"]
            if self._leave_doubt(row):
                self.unsent.add(row)
        elif kind == "run":
            self.runs = max(self.runs, int(line["run"]))
            self.spec_hash = line.get("spec_hash")
            self.input = line.get("input") or self.input
        elif kind == "header":
            self.header = line
            self.spec_hash = line.get("spec_hash")
            self.input = line.get("input")

    def _recipient(self, line: dict[str, Any]) -> None:
        row: int = line["row"]
        status: str = line["status"]
        batch = line.get("batch")
        if batch is not None:
            intent = self.open_intents.get(batch)
            if intent is not None:
                if status == "in_doubt":
                    self.doubt_batches[batch] = (intent.pool, intent.at)
                waiting = intent.waiting
                waiting.discard(row)
                if not waiting:
                    del self.open_intents[batch]
        if row == self.watermark + 1 and not self.above and row not in self.unsent:
            # The common case, a ledger read back in row order: `_settle` in one step.
            self.watermark = row
        elif row in self.unsent:
            # Sent again after reconciliation proved it absent: this is its state now.
            self.unsent.discard(row)
        elif not self._settle(row) and not self._leave_doubt(row):
            return  # a row settled before changes state only out of in_doubt
        self.counts[status] += 1
        if status == "in_doubt":
            self.in_doubt[row] = batch or ""

    def _leave_doubt(self, row: int) -> bool:
        """Take `row` out of in_doubt (reconciliation settled it); False if it was not in it."""
        if self.in_doubt.pop(row, None) is None:
            return False
        self.counts["in_doubt"] -= 1
        return True

    def orphaned_rows(self) -> Iterator[tuple[str, _OpenIntent, int]]:
        """Rows of open intents that never got a line: their request's fate is unknown."""
        for batch, intent in self.open_intents.items():
            for row in sorted(intent.waiting):
                yield batch, intent, row


def read_ledger(path: Path) -> LedgerState:
    """Fold the ledger at `path` into a `LedgerState`; a missing file is an empty ledger."""
    state = LedgerState()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return state
    except OSError as err:
        raise LedgerError(
            f"{path}: cannot read the ledger: {err.strerror or err}; check its permissions"
        ) from None
    offset = 0
    loads = orjson.loads
    record = state.record
    recipient = state._recipient  # most lines: one call fewer each (~10% of the read)
    with handle:
        for number, line in enumerate(handle, start=1):
            if line[-1:] != b"\n":
                state.torn_tail = True  # a crash cut the last write short: not counted
                break
            try:
                document = loads(line)
                if document.__class__ is not dict:
                    raise TypeError("not an object")
                if document.get("type") == "recipient":
                    recipient(document)
                else:
                    record(document)
            except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as err:
                raise LedgerError(
                    f"{path}: line {number} is not a ledger line ({err}); the ledger was "
                    "edited or belongs to something else: move it away to start afresh"
                ) from None
            offset += len(line)
    state.valid_size = offset
    if state.header is None and offset:
        raise LedgerError(f"{path}: the ledger has no header line; move it away to start afresh")
    return state


class LedgerWriter:
    """The one writer of a ledger: buffers lines, and makes intents durable in groups.

    `write` only buffers (a result line need not be on disk before anything else happens);
    `durable()` writes everything buffered and fsyncs once for every caller waiting at the
    time, so many workers' intents share one fsync (group commit). Every line also goes
    through `state.record`, so the writer's `state` is always the ledger's state.
    """

    def __init__(self, path: Path, state: LedgerState) -> None:
        self.path = path
        self.state = state
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._written_seq = 0  # lines handed to the OS
        self._queued_seq = 0  # lines buffered so far
        self._synced_seq = 0
        self._wanted_seq = 0  # lines `sync_soon` was asked to make durable
        self._syncing: asyncio.Future[None] | None = None
        self._fd: int | None = None
        self._broken: LedgerError | None = None

    def open(self) -> None:
        """Open for appending (created 0600); cut off a torn last line first."""
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if self.state.torn_tail:
                os.ftruncate(self._fd, self.state.valid_size)
                self.state.torn_tail = False
        except OSError as err:
            raise self._error("open", err) from None

    def close(self) -> None:
        """Write out what is buffered (no fsync: the OS has it) and close; idempotent.

        After a failed write or sync it still tries once: the lines that record what the
        API already took are worth saving if the disk has room again.
        """
        if self._fd is None:
            return
        was_broken = self._broken is not None
        try:
            self._write_buffer()
        except LedgerError:
            if not was_broken:
                raise  # a new failure: the caller must hear of it
        finally:
            os.close(self._fd)
            self._fd = None

    def salvage(self, line: dict[str, Any]) -> None:
        """Buffer a line even after a failure, for `close()` to try: the last words."""
        self._buffer.append(orjson.dumps(line) + b"\n")

    def _error(self, action: str, err: OSError) -> LedgerError:
        return LedgerError(
            f"{self.path}: cannot {action} the ledger: {err.strerror or err}; free space or fix "
            "its permissions, then run again: what is on disk is kept and the run resumes"
        )

    def write(self, line: dict[str, Any]) -> int:
        """Buffer one line (and fold it into `state`); its number, for `durable(upto=)`."""
        if self._broken is not None:
            raise self._broken
        if self._fd is None:
            raise LedgerError(f"{self.path}: the ledger is not open for writing")
        self.state.record(line)
        data = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        self._buffer.append(data)
        self._buffered += len(data)
        self._queued_seq += 1
        if self._buffered >= _BUFFER_LIMIT:
            self._write_buffer()
        return self._queued_seq

    def write_many(self, lines: Iterable[dict[str, Any]]) -> None:
        for line in lines:
            self.write(line)

    def _write_buffer(self) -> None:
        if not self._buffer or self._fd is None:
            return
        data = b"".join(self._buffer)
        upto = self._queued_seq
        self._buffer.clear()
        self._buffered = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as err:
            self._buffer.append(bytes(view))  # kept for one last try at close()
            self._broken = self._error("write", err)
            raise self._broken from None
        self._written_seq = upto

    def is_durable(self, upto: int) -> bool:
        """Whether line number `upto` is on disk already (and the writer still sound)."""
        return self._synced_seq >= upto and self._broken is None

    async def durable(self, upto: int | None = None) -> None:
        """Return once every line written so far (or up to line number `upto`) is on disk.

        Group commit: while one fsync runs (in a thread, so the loop goes on), callers
        arriving meanwhile wait for it to end and then share the next one. `upto` (what
        `write` returned) lets a caller wait for its own line only, not for lines written
        after it.
        """
        if self._broken is not None:
            raise self._broken
        target = self._queued_seq if upto is None else upto
        while self._synced_seq < target:
            if self._syncing is not None:
                if self._syncing.done():
                    # Finished, its bookkeeping callback not yet run: let the loop run it
                    # (awaiting a done future would not yield, and this would spin).
                    await asyncio.sleep(0)
                else:
                    # shield: one waiter cancelled must not cancel the sync others wait on
                    with contextlib.suppress(OSError):  # its own caller reports the failure
                        await asyncio.shield(self._syncing)
                if self._broken is not None:
                    raise self._broken  # the sync this one waited on failed
                continue
            syncing = self._start_sync()
            try:
                await asyncio.shield(syncing)
            except OSError:
                raise self._broken or self._error("sync", OSError()) from None

    def sync_soon(self, upto: int) -> None:
        """Start making the lines up to number `upto` durable, without waiting.

        The fsync runs in the background (and, if one is running, right after it), so a
        later `durable(upto)` usually finds the line on disk already; a failure is raised
        there.
        """
        self._wanted_seq = max(self._wanted_seq, upto)
        if self._syncing is None and self._synced_seq < upto and self._broken is None:
            with contextlib.suppress(LedgerError):  # kept in _broken, raised by durable()
                self._start_sync()

    def _start_sync(self) -> asyncio.Future[None]:
        """Hand every buffered line to the OS and start one fsync of them in a thread."""
        self._write_buffer()
        fd = self._fd
        if fd is None:
            raise LedgerError(f"{self.path}: the ledger is closed")
        syncing = asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
        # The bookkeeping runs as the sync's first callback, before any waiter wakes,
        # so no waiter can find the sync finished but not yet accounted for.
        syncing.add_done_callback(functools.partial(self._sync_done, self._written_seq))
        self._syncing = syncing
        return syncing

    def _sync_done(self, upto: int, syncing: asyncio.Future[None]) -> None:
        self._syncing = None
        if syncing.cancelled():
            return
        error = syncing.exception()
        if isinstance(error, OSError):
            self._broken = self._error("sync", error)
        elif error is None:
            self._synced_seq = max(self._synced_seq, upto)
            if self._wanted_seq > self._synced_seq and self._fd is not None:
                self.sync_soon(self._wanted_seq)  # asked for while this one ran
