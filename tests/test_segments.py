"""Tests for campaign.segments: GSM-7/UCS-2 detection and segment counting."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.segments import (
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    SegmentCount,
    count_segments,
)

# The GSM 03.38 default alphabet written independently of the module, row by row as in
# 3GPP TS 23.038 section 6.2.1 (0x1B, the escape to the extension table, left out).
REFERENCE_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
REFERENCE_EXTENSION = set("\f^{}\\[~]|€")


def reference_count(text: str) -> SegmentCount:
    """Slow, obviously-correct model: per-character units, per-character packing."""
    gsm = all(c in REFERENCE_BASIC or c in REFERENCE_EXTENSION for c in text)
    encoding: Literal["GSM-7", "UCS-2"]
    if gsm:
        sizes = [2 if c in REFERENCE_EXTENSION else 1 for c in text]
        single, part, encoding = 160, 153, "GSM-7"
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part, encoding = 70, 67, "UCS-2"
    units = sum(sizes)
    if units <= single:
        return SegmentCount(encoding, units, 1)
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return SegmentCount(encoding, units, parts)


def test_tables_match_reference() -> None:
    """The module's tables are exactly GSM 03.38's basic and extension characters."""
    assert len(GSM7_BASIC_CHARS) == 127
    assert set(GSM7_BASIC_CHARS) == REFERENCE_BASIC
    assert set(GSM7_EXTENSION_CHARS) == REFERENCE_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentCount("GSM-7", 0, 1)),
        ("a", SegmentCount("GSM-7", 1, 1)),
        ("a" * 160, SegmentCount("GSM-7", 160, 1)),
        ("a" * 161, SegmentCount("GSM-7", 161, 2)),
        ("a" * 306, SegmentCount("GSM-7", 306, 2)),
        ("a" * 307, SegmentCount("GSM-7", 307, 3)),
        ("ж" * 70, SegmentCount("UCS-2", 70, 1)),
        ("ж" * 71, SegmentCount("UCS-2", 71, 2)),
        ("ж" * 134, SegmentCount("UCS-2", 134, 2)),
        ("ж" * 135, SegmentCount("UCS-2", 135, 3)),
    ],
)
def test_boundaries(text: str, expected: SegmentCount) -> None:
    """Single-message and per-part capacities: 160/153 for GSM-7, 70/67 for UCS-2."""
    assert count_segments(text) == expected


@pytest.mark.parametrize("char", sorted(REFERENCE_BASIC))
def test_every_basic_char_is_one_gsm7_unit(char: str) -> None:
    """Each basic-table character keeps the text GSM-7 and costs one septet."""
    assert count_segments("a" + char) == SegmentCount("GSM-7", 2, 1)
    assert count_segments(char * 160).segments == 1


@pytest.mark.parametrize("char", sorted(REFERENCE_EXTENSION))
def test_every_extension_char_is_two_gsm7_units(char: str) -> None:
    """Each extension-table character keeps the text GSM-7 but costs two septets."""
    assert count_segments("a" + char) == SegmentCount("GSM-7", 3, 1)
    assert count_segments(char * 80) == SegmentCount("GSM-7", 160, 1)
    assert count_segments(char * 81).segments == 2


@pytest.mark.parametrize(
    "char",
    ["`", "\t", "\x00", "\x1b", "\x7f", "ç", "Á", "ã", "\u2019", "\u00a0", "ж", "\u0301"],
)
def test_non_gsm_char_forces_ucs2(char: str) -> None:
    """One character outside GSM-7 (incl. ESC, lowercase ç, curly quote) makes it UCS-2."""
    assert count_segments("a" * 100 + char) == SegmentCount("UCS-2", 101, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 151 + 2 + 153 = 306: the escape pair fits in part one, two parts.
        ("a" * 151 + "^" + "a" * 153, SegmentCount("GSM-7", 306, 2)),
        # 152 + 2 + 152 = 306, but "^" would straddle units 153/154: three parts.
        ("a" * 152 + "^" + "a" * 152, SegmentCount("GSM-7", 306, 3)),
        ("a" * 152 + "€" + "a" * 6, SegmentCount("GSM-7", 160, 1)),
        ("{" * 81, SegmentCount("GSM-7", 162, 2)),
        ("a" + "{" * 153, SegmentCount("GSM-7", 307, 3)),
    ],
)
def test_extension_pair_never_straddles_parts(text: str, expected: SegmentCount) -> None:
    """An ESC pair that would cross a 153-septet boundary moves to the next part."""
    assert count_segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("😀", SegmentCount("UCS-2", 2, 1)),
        ("Hi 😀", SegmentCount("UCS-2", 5, 1)),
        ("😀" * 35, SegmentCount("UCS-2", 70, 1)),
        ("a" * 69 + "😀", SegmentCount("UCS-2", 71, 2)),
        ("ж" * 65 + "😀" + "ж" * 67, SegmentCount("UCS-2", 134, 2)),
        # The surrogate pair would straddle units 67/68, so it opens part two.
        ("ж" * 66 + "😀" + "ж" * 66, SegmentCount("UCS-2", 134, 3)),
        ("\ud83d" * 70, SegmentCount("UCS-2", 70, 1)),
    ],
)
def test_astral_chars_count_two_utf16_units(text: str, expected: SegmentCount) -> None:
    """Characters outside the BMP force UCS-2, cost 2 units and are never split."""
    assert count_segments(text) == expected


TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("aZ0 @£Δ\n^{}€|~[]\\\f"),
        st.sampled_from("ж`çé\u2019😀🇫🇷"),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_matches_reference_model(text: str) -> None:
    """The fast implementation agrees with a per-character reference model."""
    assert count_segments(text) == reference_count(text)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, char=st.one_of(st.sampled_from("a^€ж😀"), st.characters()))
def test_appending_never_reduces_segments(text: str, char: str) -> None:
    """Appending a character never lowers the segment count."""
    assert count_segments(text + char).segments >= count_segments(text).segments
