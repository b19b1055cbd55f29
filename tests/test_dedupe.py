"""campaign.dedupe.KeySet: exact answers whatever the bitmap says, in bounded memory."""

from __future__ import annotations

from pathlib import Path

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
