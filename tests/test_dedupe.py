"""campaign.dedupe.KeySet: exact answers whatever the bitmap says, in bounded memory."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.dedupe import KeySet

BOUNDED = settings(max_examples=80, deadline=None, database=None)


def model_add(seen: dict[int, int], keys: list[int], rows: list[int]) -> list[int]:
    """What KeySet.add must answer, with a plain dict."""
    firsts = []
    for key, row in zip(keys, rows, strict=True):
        firsts.append(seen.get(key, 0))
        seen.setdefault(key, row)
    return firsts


@pytest.fixture
def tiny(tmp_path: Path) -> KeySet:
    """A KeySet whose bitmap says 'maybe' for everything and that flushes every 3 keys."""
    return KeySet(directory=tmp_path, bitmap_bits=8, flush_at=3)


def test_new_keys_answer_zero_and_repeats_answer_the_first_row(tiny: KeySet) -> None:
    """Within one call and across calls, a repeat names the row that added the key."""
    assert tiny.add([5, 7, 5], [1, 2, 3]) == [0, 0, 1]
    assert tiny.add([7, 9, 5, 9], [4, 5, 6, 7]) == [2, 0, 1, 5]
    assert len(tiny) == 3


def test_find_sees_flushed_and_pending_keys(tiny: KeySet) -> None:
    """find() answers the first row for every present key and 0 for the rest."""
    tiny.add([10, 20, 30, 40], [1, 2, 3, 4])  # three flushed, one pending
    assert tiny.find([40, 10, 99, 30, 0]) == [4, 1, 0, 3, 0]


@pytest.mark.parametrize("key", [0, 1, 2**62, 2**63 - 1])
def test_extreme_keys_round_trip(tiny: KeySet, key: int) -> None:
    """Keys span the whole signed 64-bit range SQLite stores."""
    tiny.add([key, 3, 4, 5], [1, 2, 3, 4])
    assert tiny.add([key], [9]) == [1]


def test_a_temporary_set_leaves_nothing_on_disk_even_while_open(tmp_path: Path) -> None:
    """The file is unlinked once open, so even a killed process leaves nothing behind;
    the keys still work through flushes, and close() may be called again."""
    with KeySet(directory=tmp_path, flush_at=2) as keys:
        assert keys.add([1, 2, 3], [1, 2, 3]) == [0, 0, 0]  # flushed to the unlinked file
        assert list(tmp_path.iterdir()) == []
        assert keys.add([2, 4], [4, 5]) == [2, 0]
        assert keys.find([1, 3, 9]) == [1, 3, 0]
    keys.close()
    assert list(tmp_path.iterdir()) == []
    assert "closed" in repr(keys)


@pytest.mark.parametrize(
    "options",
    [{"bitmap_bits": 4}, {"flush_at": 0}, {"cache_kib": 0}],
    ids=["bits", "flush", "cache"],
)
def test_impossible_sizes_are_refused(tmp_path: Path, options: dict[str, int]) -> None:
    """Sizes that could not work are a ValueError at once."""
    with pytest.raises(ValueError, match="required"):
        KeySet(directory=tmp_path, **options)


@BOUNDED
@given(
    calls=st.lists(st.lists(st.integers(0, 60), max_size=12), max_size=8),
    bitmap_bits=st.sampled_from([8, 64, 1 << 16]),
    flush_at=st.integers(1, 10),
    json=st.booleans(),
)
def test_answers_match_a_dict_for_any_bitmap_and_flush_size(
    tmp_path_factory: pytest.TempPathFactory,
    calls: list[list[int]],
    bitmap_bits: int,
    flush_at: int,
    json: bool,
) -> None:
    """Bitmap collisions, flushes and repeats within a call never change an answer."""
    seen: dict[int, int] = {}
    row = 0
    with KeySet(
        directory=tmp_path_factory.mktemp("keys"), bitmap_bits=bitmap_bits, flush_at=flush_at
    ) as keys:
        keys._json = json  # both ways of flushing: JSON in one statement, or bound rows
        for call in calls:
            rows = list(range(row + 1, row + 1 + len(call)))
            row += len(call)
            assert keys.add(call, rows) == model_add(seen, call, rows)
        assert keys.find(list(range(61))) == [seen.get(k, 0) for k in range(61)]
        assert len(keys) == len(seen)


# --- kept sets: the reader's keys kept beside the ledger between runs ------------------------


def kept(path: Path, identity: str = "input-1", **options: Any) -> KeySet:
    """A kept set at `path` that takes an earlier store of the same identity."""
    options.setdefault("accept", {identity})
    return KeySet.kept(path, identity=identity, **options)


def meta(path: Path) -> dict[str, Any]:
    """The store's meta table, read straight from the closed file."""
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT name, value FROM meta").fetchall())


def stored(path: Path) -> dict[int, int]:
    """Every key in the closed store's file, with its row."""
    with closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT key, row FROM keys").fetchall())


def copy_while_open(source: Path, target: Path) -> None:
    """What a crash at this instant leaves on disk: the file and its write-ahead log."""
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + "-wal"))


def test_a_kept_set_answers_the_same_after_it_is_reopened(tmp_path: Path) -> None:
    """Keys and their rows, and `covered`, survive close() and a new open with that identity;
    new keys then go on from there."""
    path = tmp_path / "ledger.keys"
    with kept(path) as keys:
        assert keys.covered == 0
        assert len(keys) == 0
        assert keys.add([10, 20, 10, 30], [1, 2, 3, 4]) == [0, 0, 1, 0]
        keys.cover(4)
        assert keys.covered == 0  # nothing written yet: only a write advances it
    assert meta(path) == {"identity": "input-1", "covered": 4}
    assert stored(path) == {10: 1, 20: 2, 30: 4}

    with kept(path) as again:
        assert again.covered == 4
        assert len(again) == 3
        assert again.find([10, 20, 30, 40]) == [1, 2, 4, 0]
        assert again.add([30, 40, 20, 40], [5, 6, 7, 8]) == [4, 0, 2, 6]
        again.cover(8)
    with kept(path) as third:
        assert third.covered == 8
        assert third.find([10, 20, 30, 40, 50]) == [1, 2, 4, 6, 0]


def test_covered_advances_only_with_a_write(tmp_path: Path) -> None:
    """cover() is remembered for the next flush; until then the file (and `covered`) says
    the rows of the last flush, and the keys after it are not in the file either."""
    path = tmp_path / "ledger.keys"
    keys = kept(path, flush_at=3, bitmap_bits=64)
    try:
        keys.add([1, 2], [1, 2])
        keys.cover(2)
        assert keys.covered == 0
        keys.add([3], [3])  # the third pending key: a flush, covering the rows offered so far
        assert keys.covered == 2
        keys.cover(3)
        keys.add([4, 5], [4, 5])
        keys.cover(5)
        assert keys.covered == 2
        copy_while_open(path, tmp_path / "crashed.keys")
    finally:
        keys.close()
    assert meta(path)["covered"] == 5  # close() writes the rest

    with kept(tmp_path / "crashed.keys") as crashed:
        assert crashed.covered == 2
        # The keys of the flush, not those pending when the process "died".
        assert crashed.find([1, 2, 3, 4, 5]) == [1, 2, 3, 0, 0]
        assert len(crashed) == 3


def test_a_set_dropped_without_close_keeps_only_what_was_flushed(tmp_path: Path) -> None:
    """A KeySet its owner forgets (no close()): its pending keys are lost, never half-written,
    so the file's `covered` still names rows whose keys are all in it."""
    path = tmp_path / "ledger.keys"
    keys = kept(path, flush_at=2, bitmap_bits=64)
    keys.add([7, 8], [1, 2])  # flushed at once: covered 0, as nothing was covered yet
    keys.cover(2)
    keys.add([9], [3])
    keys.cover(3)
    keys.add([11, 12], [4, 5])  # flushed: rows up to 3 covered, keys of rows 4 and 5 too
    keys.cover(5)
    keys.add([13], [6])
    keys.cover(6)
    del keys
    gc.collect()
    assert meta(path) == {"identity": "input-1", "covered": 3}
    assert stored(path) == {7: 1, 8: 2, 9: 3, 11: 4, 12: 5}
    assert not path.with_name("ledger.keys-wal").exists()


def test_a_store_of_another_identity_starts_afresh(tmp_path: Path) -> None:
    """An identity not in `accept` (another input or other reader settings): the set is empty,
    covered 0, and the file carries the new identity from now on."""
    path = tmp_path / "ledger.keys"
    with kept(path, "input-1") as keys:
        keys.add([1, 2, 3], [1, 2, 3])
        keys.cover(3)
    with KeySet.kept(path, accept={"input-2", "input-3"}, identity="input-3") as other:
        assert (len(other), other.covered) == (0, 0)
        assert other.find([1, 2, 3]) == [0, 0, 0]
        assert other.add([2], [1]) == [0]
        other.cover(1)
    assert meta(path) == {"identity": "input-3", "covered": 1}
    assert stored(path) == {2: 1}


def test_an_accepted_earlier_identity_is_taken_and_restamped(tmp_path: Path) -> None:
    """The identity of the input the keys were read from (a prefix of today's) is accepted;
    from then on the file is stamped with today's, and the old one no longer opens it."""
    path = tmp_path / "ledger.keys"
    with kept(path, "before") as keys:
        keys.add([5], [1])
        keys.cover(1)
    with KeySet.kept(path, accept={"before", "after"}, identity="after") as grown:
        assert (grown.covered, grown.find([5])) == (1, [1])
    assert meta(path)["identity"] == "after"
    with kept(path, "before") as stale:
        assert (len(stale), stale.covered) == (0, 0)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not a database at all\n" * 300, id="text"),
        pytest.param(b"SQLite format 3\x00" + b"\xff" * 5000, id="bad-header"),
        pytest.param(b"\x00" * 1000, id="zeros"),
        pytest.param("truncated", id="truncated"),
        pytest.param("no-meta", id="no-meta"),
        pytest.param("covered-not-a-number", id="covered-text"),
    ],
)
def test_an_unreadable_store_starts_afresh_without_an_error(
    tmp_path: Path, content: bytes | str
) -> None:
    """Any file that is not a store of ours in good order -- garbage, a torn copy, another
    schema -- gives an empty set (and a good file afterwards), never an exception."""
    path = tmp_path / "ledger.keys"
    if content == "truncated":
        with kept(path) as keys:
            keys.add(list(range(1, 4001)), list(range(1, 4001)))
            keys.cover(4000)
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif content == "no-meta":
        with closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE keys (key INTEGER PRIMARY KEY, row INTEGER NOT NULL)")
            db.execute("INSERT INTO keys VALUES (1, 1)")
            db.commit()
    elif content == "covered-not-a-number":
        with kept(path) as keys:
            keys.add([1], [1])
            keys.cover(1)
        with closing(sqlite3.connect(path)) as db:
            db.execute("UPDATE meta SET value = 'x' WHERE name = 'covered'")
            db.commit()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    with kept(path) as keys:
        assert (len(keys), keys.covered) == (0, 0)
        assert keys.find([1, 2, 3]) == [0, 0, 0]
        assert keys.add([1, 1], [1, 2]) == [0, 1]
        keys.cover(2)
    assert meta(path) == {"identity": "input-1", "covered": 2}
    assert stored(path) == {1: 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_kept_file_is_private_and_leaves_no_log_behind(tmp_path: Path) -> None:
    """Keys are phone numbers: the file (and its write-ahead log while open) is 0600; after
    close() only the file itself is left, and never a -shm file."""
    path = tmp_path / "ledger.keys"
    with kept(path, flush_at=1) as keys:
        keys.add([1, 2], [1, 2])
        keys.cover(2)
        wal = tmp_path / "ledger.keys-wal"
        assert wal.exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert not (tmp_path / "ledger.keys-shm").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.keys"]
    with kept(path, "another") as fresh:  # started afresh: created private again
        fresh.add([3], [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.keys"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@BOUNDED
@given(
    first=st.lists(st.lists(st.integers(0, 40), max_size=10), max_size=6),
    second=st.lists(st.lists(st.integers(0, 40), max_size=10), max_size=6),
    bitmap_bits=st.sampled_from([8, 64, 1 << 16]),
    flush_at=st.integers(1, 8),
)
def test_two_sessions_answer_like_one_dict(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[list[int]],
    second: list[list[int]],
    bitmap_bits: int,
    flush_at: int,
) -> None:
    """Keys added in one session, the set closed and reopened (same identity, other bitmap
    sizes are fine), then more keys: every answer is what one dict would give."""
    path = tmp_path_factory.mktemp("kept") / "ledger.keys"
    seen: dict[int, int] = {}
    row = 0
    for session in (first, second):
        with kept(path, bitmap_bits=bitmap_bits, flush_at=flush_at) as keys:
            assert keys.covered == row
            assert len(keys) == len(seen)
            for call in session:
                rows = list(range(row + 1, row + 1 + len(call)))
                row += len(call)
                assert keys.add(call, rows) == model_add(seen, call, rows)
                keys.cover(row)
            assert keys.find(list(range(41))) == [seen.get(k, 0) for k in range(41)]
        bitmap_bits = 1 << 16 if bitmap_bits == 8 else 8
    assert stored(path) == seen
    assert meta(path)["covered"] == row
