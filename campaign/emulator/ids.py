"""Resource ids shaped like the API's: `comms_<kind>_` + 26 lowercase Crockford base32 chars.

The tail is ULID-like: 10 characters of millisecond timestamp, then 16 of sequence number.
Encoding the sequence number (instead of randomness) lets the emulator find a message by
its id with arithmetic, so it needs no id index for millions of messages.
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "KINDS", "make_id", "sequence_of"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_VALUE = {ch: i for i, ch in enumerate(_ALPHABET)}
KINDS = ("sender", "senderpool", "message", "operation")
ID_PATTERN = re.compile(
    r"^comms_(sender|senderpool|message|operation)_[0-7][a-hjkmnp-tv-z0-9]{25}$"
)


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def make_id(kind: str, timestamp_ms: int, sequence: int) -> str:
    """The id of the `sequence`-th resource of `kind` created at `timestamp_ms`."""
    # 10 chars of 5 bits hold 50 bits; a 48-bit timestamp keeps the first char in 0-7.
    return f"comms_{kind}_{_encode(timestamp_ms & (2**48 - 1), 10)}{_encode(sequence, 16)}"


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
