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
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Sequence
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
    cache and at most `flush_at` pending keys; the keys themselves go to a temporary SQLite
    file in `directory` (default: the system's temporary directory), removed by `close()`.
    Calls must not overlap, but may come from different threads."""

    def __init__(
        self,
        *,
        directory: str | Path | None = None,
        bitmap_bits: int = 1 << 27,
        flush_at: int = 25_000,
        cache_kib: int = 2_048,
    ) -> None:
        if bitmap_bits < 8 or flush_at < 1 or cache_kib < 1:
            raise ValueError("bitmap_bits >= 8, flush_at >= 1 and cache_kib >= 1 are required")
        self._modulus = _prime_at_most(bitmap_bits)
        # Zeroed (so touched) in full now: memory is flat from the first key on.
        self._bits = bytearray((bitmap_bits + 7) // 8)
        self._pending: dict[int, int] = {}
        self._flush_at = flush_at
        self._stored = 0
        self._directory = tempfile.mkdtemp(prefix="campaign-keys-", dir=directory)
        # Removes the file even if the owner forgets close(), at the latest at exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._directory, True)
        # check_same_thread=False: the owner may iterate from a pool of worker threads.
        self._db = sqlite3.connect(
            Path(self._directory, "keys.sqlite3"), isolation_level=None, check_same_thread=False
        )
        for pragma in (
            # Nothing here needs to survive a crash: no journal, no fsync, one connection.
            "journal_mode = OFF",
            "synchronous = OFF",
            "locking_mode = EXCLUSIVE",
            f"cache_size = -{cache_kib}",
            # Pages touched through mmap would count as this process's memory.
            "mmap_size = 0",
            # Fewer, larger pages: a sorted flush touches fewer of them (~10% faster).
            "page_size = 16384",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE keys (key INTEGER PRIMARY KEY, row INTEGER NOT NULL)")
        self._json = _has_json(self._db)

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
        """Drop the keys and remove the temporary file; idempotent."""
        if self._cleanup.alive:
            self._db.close()
            self._pending = {}
            self._cleanup()

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
        if self._json:
            payload = orjson.dumps(pending, option=orjson.OPT_NON_STR_KEYS)
            self._db.execute(_FLUSH_JSON_SQL, (payload,))
        else:
            self._db.executemany(_FLUSH_ROWS_SQL, sorted(pending.items()))
        self._db.execute("COMMIT")
        self._stored += len(pending)
        pending.clear()


def _has_json(db: sqlite3.Connection) -> bool:
    """SQLite builds before 3.38 may lack the JSON functions; flushes then bind rows."""
    try:
        db.execute("SELECT json_valid('1')")
    except sqlite3.OperationalError:
        return False
    return True
