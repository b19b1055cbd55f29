"""Resource ids shaped like the API's: `comms_<kind>_` + 26 lowercase Crockford base32 chars.

The tail is ULID-like: 10 characters of millisecond timestamp, then 16 of sequence number.
Encoding the sequence number (instead of randomness) lets the emulator find a message by
its id with arithmetic, so it needs no id index for millions of messages.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["ID_PATTERN", "KINDS", "make_id", "sequence_of"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_VALUE = {ch: i for i, ch in enumerate(_ALPHABET)}
KINDS = ("sender", "senderpool", "message", "operation")
ID_PATTERN = re.compile(
    r"^comms_(sender|senderpool|message|operation)_[0-7][a-hjkmnp-tv-z0-9]{25}$"
)


# Every 10-bit value as its two base32 characters: ids are encoded 10 bits at a time.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def make_id(kind: str, timestamp_ms: int, sequence: int) -> str:
    """The id of the `sequence`-th resource of `kind` created at `timestamp_ms`."""
    # 26 chars hold 130 bits: a 48-bit timestamp in the first 10 chars (so the first one
    # stays in 0-7), then an 80-bit sequence number in the last 16.
    pairs = _PAIRS
    sequence &= 2**80 - 1
    return (
        f"comms_{kind}_{_timestamp_chars(timestamp_ms & (2**48 - 1))}"
        f"{pairs[sequence >> 70]}{pairs[(sequence >> 60) & 1023]}{pairs[(sequence >> 50) & 1023]}"
        f"{pairs[(sequence >> 40) & 1023]}{pairs[(sequence >> 30) & 1023]}"
        f"{pairs[(sequence >> 20) & 1023]}{pairs[(sequence >> 10) & 1023]}{pairs[sequence & 1023]}"
    )


@lru_cache(maxsize=64)
def _timestamp_chars(timestamp_ms: int) -> str:
    pairs = _PAIRS
    return "".join(pairs[(timestamp_ms >> shift) & 1023] for shift in (40, 30, 20, 10, 0))


def sequence_of(resource_id: str, kind: str) -> int | None:
    """The sequence number encoded in an id of `kind`, or None when it is not such an id."""
    prefix = f"comms_{kind}_"
    if not resource_id.startswith(prefix) or len(resource_id) != len(prefix) + 26:
        return None
    value = 0
    for ch in resource_id[-16:]:
        digit = _VALUE.get(ch)
        if digit is None:
            return None
        value = value * 32 + digit
    return value
