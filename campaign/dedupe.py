"""An exact set of integer keys whose memory does not grow with the number of keys.

The recipients reader needs two membership tests on every row, a million rows in a few
seconds: "has this address (and channel) been seen earlier in the file?" and "is this
address on the suppression list?".  Both must be exact -- a false "duplicate" or
"suppressed" silently skips a recipient -- and neither may hold every key in memory, because
memory must stay flat from one million rows to five.

`KeySet` keeps the keys on disk, in an SQLite table in a private temporary file
(``INTEGER PRIMARY KEY`` = the key, plus the row that added it), and puts two bounded
structures in front of it:

* a fixed-size bitmap, one bit per ``key % modulus``, which can only answer "certainly
  absent" (bit clear) or "maybe present" (bit set).  It is never the judge: every "maybe"
  is settled against the exact keys.  With the default 2**27 bits, 5 million keys set
  3.7% of the bits, so ~96% of new keys never touch SQLite for their lookup;
* a dict of the keys added since the last flush (at most `flush_at` of them), which answers
  "maybe" exactly for recent keys and is written to SQLite in one sorted statement when full.

Measured on this project's 2-core box with 1 million random keys (scripts/bench_reader.py
for the whole reader), per key:

  INSERT OR IGNORE ... RETURNING, 2,000-key batches in file order   4-5 µs
  the same as a SELECT, then executemany of the new keys            ~9 µs
  this module: bitmap + pending dict + sorted 25,000-key flushes    ~2 µs (~1.3 of it SQLite)

The gap is the B-tree: keys in file order land on random pages, missing SQLite's page cache
(kept small on purpose) and the CPU's caches on every insert, while a sorted flush walks the
leaves in order.  Writing flushes from a background thread (SQLite releases the GIL) was
tried and dropped: on two shared cores it bought nothing measurable.

Memory is the bitmap (16 MiB at most) + `cache_kib` of page cache + the pending dict and
its flush (JSON text, SQLite's sort), which peak together at a size set by `flush_at`, not
by the number of keys; the allocator reaches that steady state within the first million
rows.  At 25,000 a KeySet holds ~20 MB in all, 16 of them the bitmap; 100,000 was no
faster and needed ~50 MB more.  The file on disk grows by ~15-20 bytes a key.

A temporary KeySet's file is unlinked as soon as it is open: nothing is left on disk
however the process ends (a SIGKILLed run used to leave its keys in /tmp).

`KeySet.kept(path, ...)` is the same set kept in a file between runs, so that a resumed
campaign need not re-read and re-check the rows an earlier run already went through (at a
million rows that is ~3 s before the first new request).  The file remembers an `identity`
(what was read, and how: the caller's hash of the input file and the reader's settings)
and `covered`, the row through which every key is in it.  It is written ahead-log style
(SQLite WAL, fsync at checkpoints), so a crash or power loss leaves it at some earlier
consistent state -- `covered` and the keys always agree -- and any doubt (another identity,
an unreadable file) starts it afresh: a rebuilt set costs time, never a wrong answer.  The
bitmap is not stored; it is rebuilt from the keys when the file is opened (~0.35 s for
900,000 keys).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import weakref
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Final, Self

import orjson

__all__ = ["KeySet"]

# Keys are looked up in chunks of this many parameters, padded with a key that cannot
# exist, so that SQLite's statement cache sees one statement instead of one per length.
_LOOKUP_CHUNK: Final = 128
_NO_KEY: Final = -1
_LOOKUP_SQL: Final = f"SELECT key, row FROM keys WHERE key IN ({', '.join('?' * _LOOKUP_CHUNK)})"  # noqa: S608  (placeholders only)
# One statement per flush: SQLite parses the JSON object and sorts the keys itself, which
# is cheaper than sorting (key, row) pairs in Python and binding them one by one.
_FLUSH_JSON_SQL: Final = (
    "INSERT INTO keys(key, row) SELECT CAST(key AS INTEGER), value FROM json_each(?) ORDER BY 1"
)
_FLUSH_ROWS_SQL: Final = "INSERT INTO keys(key, row) VALUES (?, ?)"


def _prime_at_most(number: int) -> int:
    """The largest prime <= `number` (>= 2): a modulus that spreads keys with common
    factors (numbers ending in 000, even channel-tagged keys) over the whole bitmap."""
    for candidate in range(number, 1, -1):
        if all(candidate % d for d in range(2, int(candidate**0.5) + 1)):
            return candidate
    return 2


class KeySet:
    """An exact set of keys (0 <= key < 2**63), each remembered with the row (>= 1) that
    added it first.  Memory is bounded by `bitmap_bits` / 8 bytes, `cache_kib` of SQLite page
    cache and at most `flush_at` pending keys; the keys themselves go to an unlinked
    temporary SQLite file in `directory` (default: the system's temporary directory), gone
    with `close()` or the process.  Calls must not overlap, but may come from different
    threads.  `KeySet.kept()` opens one kept in a file between runs instead."""

    def __init__(
        self,
        *,
        directory: str | Path | None = None,
        bitmap_bits: int = 1 << 27,
        flush_at: int = 25_000,
        cache_kib: int = 2_048,
        _kept: Path | None = None,
    ) -> None:
        if bitmap_bits < 8 or flush_at < 1 or cache_kib < 1:
            raise ValueError("bitmap_bits >= 8, flush_at >= 1 and cache_kib >= 1 are required")
        self._modulus = _prime_at_most(bitmap_bits)
        # Zeroed (so touched) in full now: memory is flat from the first key on.
        self._bits = bytearray((bitmap_bits + 7) // 8)
        self._pending: dict[int, int] = {}
        self._flush_at = flush_at
        self._stored = 0
        self._kept = _kept
        self._through = 0  # every row up to here has been offered (see `cover`)
        self.covered = 0  # ... and is in the file (kept sets: from an earlier run too)
        if _kept is None:
            folder = tempfile.mkdtemp(prefix="campaign-keys-", dir=directory)
            file = Path(folder, "keys.sqlite3")
            self._directory = folder
        else:
            file = _kept
            self._directory = str(_kept.parent)
        # check_same_thread=False: the owner may iterate from a pool of worker threads.
        self._db = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        self._cleanup = weakref.finalize(self, self._db.close)
        try:
            if _kept is None:
                # Nothing here needs to survive a crash: no journal, no fsync, and the
                # file unlinked at once (SQLite keeps using it through its descriptor).
                _set_pragmas(self._db, cache_kib, "OFF", "OFF")
                self._db.execute(_CREATE_KEYS)
            else:
                _set_pragmas(self._db, cache_kib, "WAL", "NORMAL")
        except BaseException:
            self._cleanup()  # closes the connection: nothing half-open is left behind
            raise
        finally:
            if _kept is None:
                with contextlib.suppress(OSError):
                    file.unlink()
                    os.rmdir(self._directory)
        self._json = _has_json(self._db)

    @classmethod
    def kept(
        cls,
        path: Path,
        *,
        accept: Collection[str],
        identity: str,
        bitmap_bits: int = 1 << 27,
        flush_at: int = 25_000,
        cache_kib: int = 2_048,
    ) -> KeySet:
        """The set kept in the file at `path` (created 0600), as an earlier run left it if
        its identity is one of `accept`, else empty; stamped `identity` from now on.

        `covered` says through which row the file already holds every key.  Raises
        sqlite3.Error (or OSError) when the file cannot be made at all."""
        for attempt in range(2):
            if attempt or not path.exists():
                _remove_kept(path)
                # Created by us first, so that SQLite keeps these permissions: keys are
                # phone numbers.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            try:
                # Opening may already find the file is no database (its first pragmas read it).
                keys = cls(
                    bitmap_bits=bitmap_bits, flush_at=flush_at, cache_kib=cache_kib, _kept=path
                )
            except sqlite3.DatabaseError:
                continue  # not a store we can read: start it afresh
            try:
                if keys._resume(accept, identity):
                    return keys
            except sqlite3.DatabaseError:
                pass  # not a store we can read: start it afresh
            keys.close()
        raise sqlite3.DatabaseError(f"{path}: cannot start a store of keys afresh")

    def _resume(self, accept: Collection[str], identity: str) -> bool:
        """Take the file's keys if its identity is accepted; False when it must start afresh."""
        db = self._db
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if not tables:
            db.execute("BEGIN")
            db.execute(_CREATE_KEYS)
            db.execute(_CREATE_META)
            db.executemany(
                "INSERT INTO meta(name, value) VALUES (?, ?)",
                [("identity", identity), ("covered", 0)],
            )
            db.execute("COMMIT")
            return True
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("identity") not in accept or not isinstance(meta.get("covered"), int):
            return False
        bits = self._bits
        modulus = self._modulus
        stored = 0
        for (slot,) in db.execute("SELECT key % ? FROM keys", (modulus,)):
            bits[slot >> 3] |= 1 << (slot & 7)
            stored += 1
        self._stored = stored
        self.covered = self._through = meta["covered"]
        db.execute("UPDATE meta SET value = ? WHERE name = 'identity'", (identity,))
        return True

    def __len__(self) -> int:
        return self._stored + len(self._pending)

    @property
    def directory(self) -> str:
        """The temporary directory that holds the keys' file."""
        return self._directory

    def __repr__(self) -> str:
        state = "closed" if not self._cleanup.alive else f"{len(self)} keys"
        return f"<KeySet {state}, {len(self._pending)} pending, modulus={self._modulus}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file: a temporary set's keys are gone, a kept one's are written out
        first; idempotent."""
        if self._cleanup.alive:
            try:
                if self._kept is not None and (self._pending or self._through > self.covered):
                    # A failed last write leaves `covered` where it was: the next run
                    # re-reads a little more, nothing is answered wrongly.
                    with contextlib.suppress(sqlite3.Error):
                        self._flush()
            finally:
                self._pending = {}
                self._cleanup()

    def cover(self, row: int) -> None:
        """Every row up to `row` has been offered to `add` (or judged not to need a key):
        a kept set records it with its next write, for `covered`."""
        self._through = row

    def add(self, keys: Sequence[int], rows: Sequence[int]) -> list[int]:
        """Add `keys` in order, `rows[i]` being the row that brings `keys[i]`.  For each key:
        0 if it was new (it is now in the set, with its row), else the row that added it
        first, earlier in this call or in an earlier one."""
        bits = self._bits
        modulus = self._modulus
        pending = self._pending
        firsts: list[int] = []
        maybe: list[int] = []  # positions whose bit was set but whose key is not pending
        for key, row in zip(keys, rows, strict=True):
            slot = key % modulus
            byte = slot >> 3
            mask = 1 << (slot & 7)
            value = bits[byte]
            if value & mask:
                first = pending.get(key, 0)
                if not first:
                    maybe.append(len(firsts))
                firsts.append(first)
            else:
                bits[byte] = value | mask
                pending[key] = row
                firsts.append(0)
        if maybe:
            stored = self._lookup([keys[p] for p in maybe])
            # In file order, so that of two unsettled copies in this call the first wins.
            for position in maybe:
                key = keys[position]
                first = stored.get(key) or pending.get(key, 0)
                if first:
                    firsts[position] = first
                else:
                    pending[key] = rows[position]
        if len(pending) >= self._flush_at:
            self._flush()
        return firsts

    def find(self, keys: Sequence[int]) -> list[int]:
        """For each key: the row that added it, or 0 when it is not in the set."""
        bits = self._bits
        modulus = self._modulus
        pending = self._pending
        found: list[int] = []
        maybe: list[int] = []
        for key in keys:
            slot = key % modulus
            if bits[slot >> 3] & (1 << (slot & 7)):
                first = pending.get(key, 0)
                if not first:
                    maybe.append(len(found))
                found.append(first)
            else:
                found.append(0)
        if maybe:
            stored = self._lookup([keys[p] for p in maybe])
            for position in maybe:
                found[position] = stored.get(keys[position], 0)
        return found

    def _lookup(self, keys: list[int]) -> dict[int, int]:
        """The flushed keys among `keys`, with their rows."""
        stored: dict[int, int] = {}
        execute = self._db.execute
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            chunk += [_NO_KEY] * (_LOOKUP_CHUNK - len(chunk))
            stored.update(execute(_LOOKUP_SQL, chunk).fetchall())
        return stored

    def _flush(self) -> None:
        pending = self._pending
        self._db.execute("BEGIN")
        if not pending:
            pass
        elif self._json:
            payload = orjson.dumps(pending, option=orjson.OPT_NON_STR_KEYS)
            self._db.execute(_FLUSH_JSON_SQL, (payload,))
        else:
            self._db.executemany(_FLUSH_ROWS_SQL, sorted(pending.items()))
        if self._kept is not None:
            # In the same transaction as the keys: after any crash the two agree.
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'covered'", (self._through,))
        self._db.execute("COMMIT")
        self.covered = self._through
        self._stored += len(pending)
        pending.clear()


_CREATE_KEYS: Final = "CREATE TABLE keys (key INTEGER PRIMARY KEY, row INTEGER NOT NULL)"
_CREATE_META: Final = "CREATE TABLE meta (name TEXT PRIMARY KEY, value)"


def _set_pragmas(db: sqlite3.Connection, cache_kib: int, journal: str, synchronous: str) -> None:
    for pragma in (
        # Before WAL: an exclusive connection keeps the WAL index in its own memory,
        # so there is no -shm file.
        "locking_mode = EXCLUSIVE",
        # Fewer, larger pages: a sorted flush touches fewer of them (~10% faster).  Only
        # takes effect on a new file.
        "page_size = 16384",
        f"journal_mode = {journal}",
        f"synchronous = {synchronous}",
        f"cache_size = -{cache_kib}",
        # Pages touched through mmap would count as this process's memory.
        "mmap_size = 0",
    ):
        db.execute(f"PRAGMA {pragma}")


def _remove_kept(path: Path) -> None:
    """Remove a kept set's file and its write-ahead log, if there."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            name.unlink()


def _has_json(db: sqlite3.Connection) -> bool:
    """SQLite builds before 3.38 may lack the JSON functions; flushes then bind rows."""
    try:
        db.execute("SELECT json_valid('1')")
    except sqlite3.OperationalError:
        return False
    return True
