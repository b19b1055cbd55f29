"""Count how many SMS segments a message body costs.

Both the emulator (to report ``num_segments`` like Twilio does) and the sending side (to
estimate cost and pace) need the same answer, so this is a leaf module with no
dependencies beyond the standard library.

Rules, per 3GPP TS 23.038 (GSM 03.38) and Twilio's own segment calculator
(github.com/TwilioDevEd/message-segment-calculator):

* If every character is in the GSM-7 default alphabet or its extension table, the
  message is GSM-7. Basic-table characters cost 1 septet, extension-table characters
  cost 2 (an ESC prefix plus the character). One SMS holds 160 septets; a concatenated
  SMS holds 153 per part (the user data header takes the rest).
* Otherwise the whole message is UCS-2 (really UTF-16): 70 code units for one SMS,
  67 per concatenated part, and a character outside the BMP costs 2 code units.
* A character is never split across two parts: an extension character (ESC + char) or
  a surrogate pair that would straddle a part boundary moves to the next part, which
  is why parts are counted by greedy packing rather than by ``ceil(units / 153)``.
* An empty body still costs one segment.

U+001B (ESC) itself is deliberately *not* treated as a GSM-7 character: position 0x1B
in the table is the escape to the extension table, not a printable character, so a
literal ESC in the text cannot be sent in GSM-7. Twilio's calculator and the
unicode.org GSM0338 mapping agree (the latter maps 0x1B to NBSP for display only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

__all__ = [
    "GSM7_BASIC_CHARS",
    "GSM7_EXTENSION_CHARS",
    "SegmentCount",
    "count_segments",
]

# The GSM 03.38 default alphabet in table order (0x00..0x7F), minus 0x1B (ESC, see the
# module docstring). Written out in table order so it can be checked against the
# standard row by row.
GSM7_BASIC_CHARS: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ"  # 0x10-0x1A
    "ÆæßÉ"  # 0x1C-0x1F (0x1B is ESC)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)

# The extension table characters that cost ESC + char, i.e. 2 septets each.
GSM7_EXTENSION_CHARS: Final = "\x0c^{}\\[~]|€"

_GSM7_SINGLE: Final = 160
_GSM7_PART: Final = 153
_UCS2_SINGLE: Final = 70
_UCS2_PART: Final = 67

# ASCII-only fast path: bytes.translate(None, delete) runs in C and is several times
# faster than a regex or a set test over the str, and most campaign bodies are ASCII.
_ASCII_BASIC_BYTES: Final = bytes(ord(c) for c in GSM7_BASIC_CHARS if c.isascii())
_ASCII_EXTENSION_BYTES: Final = bytes(ord(c) for c in GSM7_EXTENSION_CHARS if c.isascii())

# General path for text with non-ASCII characters.
_NON_GSM7: Final = re.compile("[^" + re.escape(GSM7_BASIC_CHARS + GSM7_EXTENSION_CHARS) + "]")
_GSM7_EXTENSION: Final = re.compile("[" + re.escape(GSM7_EXTENSION_CHARS) + "]")
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a message body is encoded and how many segments it costs.

    ``units`` is septets for GSM-7 and UTF-16 code units for UCS-2, before any
    padding caused by the no-straddle rule.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int


# Building a frozen dataclass costs ~0.5 µs (object.__setattr__ per field), as much as
# the counting itself, and results are immutable, so they are shared: single-segment
# results are precomputed, multi-part ones are memoized.
_GSM7_SINGLE_RESULTS: Final = tuple(SegmentCount("GSM-7", n, 1) for n in range(_GSM7_SINGLE + 1))
_UCS2_SINGLE_RESULTS: Final = tuple(SegmentCount("UCS-2", n, 1) for n in range(_UCS2_SINGLE + 1))
_result: Final = lru_cache(maxsize=4096)(SegmentCount)


def count_segments(text: str) -> SegmentCount:
    """Return the encoding, unit count and segment count of an SMS body."""
    if text.isascii():
        raw = text.encode("ascii")
        leftover = raw.translate(None, _ASCII_BASIC_BYTES)
        if not leftover:
            # The common case: plain ASCII text with no extension characters.
            return _gsm7(text, len(raw), 0)
        if not leftover.translate(None, _ASCII_EXTENSION_BYTES):
            return _gsm7(text, len(raw) + len(leftover), len(leftover))
        return _ucs2(text)
    if _NON_GSM7.search(text) is None:
        # UTF-8 never uses ASCII bytes inside multi-byte sequences, so the ASCII extension
        # characters can be counted with the same C-speed bytes.translate; € is the only
        # non-ASCII one.
        raw = text.encode("utf-8")
        doubles = len(raw) - len(raw.translate(None, _ASCII_EXTENSION_BYTES)) + text.count("€")
        return _gsm7(text, len(text) + doubles, doubles)
    return _ucs2(text)


def _gsm7(text: str, units: int, doubles: int) -> SegmentCount:
    if units <= _GSM7_SINGLE:
        return _GSM7_SINGLE_RESULTS[units]
    if not doubles:
        return _result("GSM-7", units, -(-units // _GSM7_PART))
    starts = _wide_unit_starts(_GSM7_EXTENSION, text)
    return _result("GSM-7", units, _pack(units, _GSM7_PART, starts))


def _ucs2(text: str) -> SegmentCount:
    # Encoding is the cheapest way to count UTF-16 code units in CPython (a C loop; max()
    # or a regex over non-Latin-1 text is several times slower). "surrogatepass" lets a
    # lone surrogate, which JSON can carry, count as the one unit it is.
    units = len(text.encode("utf-16-le", "surrogatepass")) >> 1
    if units <= _UCS2_SINGLE:
        return _UCS2_SINGLE_RESULTS[units]
    if units == len(text):  # no astral characters, so nothing can straddle a boundary
        return _result("UCS-2", units, -(-units // _UCS2_PART))
    starts = _wide_unit_starts(_ASTRAL, text)
    return _result("UCS-2", units, _pack(units, _UCS2_PART, starts))


def _wide_unit_starts(pattern: re.Pattern[str], text: str) -> frozenset[int]:
    """Unit offsets at which each 2-unit character starts.

    The k-th wide character at string index p starts at unit p + k, because each of
    the k wide characters before it added one extra unit.
    """
    return frozenset(match.start() + k for k, match in enumerate(pattern.finditer(text)))


def _pack(units: int, capacity: int, wide_starts: frozenset[int]) -> int:
    """Greedily fill parts of ``capacity`` units without splitting a 2-unit character.

    A part normally ends at ``start + capacity``; if a 2-unit character starts on the
    part's last unit it would straddle the boundary, so the part ends one unit early
    and that character opens the next part. Loops once per part, not per character.
    """
    parts = 1
    start = 0
    while units - start > capacity:
        end = start + capacity
        start = end - 1 if end - 1 in wide_starts else end
        parts += 1
    return parts
