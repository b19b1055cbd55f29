"""Suppression lists: the addresses a campaign must never message, read into an exact set.

The form is told by the file itself:

* ``.jsonl`` / ``.ndjson``: one JSON object per line with an ``address`` field (or a field
  named like the recipients' address column), or one JSON string per line;
* otherwise, when the first non-blank line is a CSV header with an ``address`` column (or
  one named like the recipients' address column; delimited by the recipients' delimiter,
  ``,``, ``;`` or a tab): that column of every following row;
* otherwise one address per line.

Every entry is normalised as the recipients are (same default region), so
``+1 914-318-8062`` here suppresses ``+19143188062`` there.  An entry that is not a valid
phone number can never equal a valid recipient, so it is skipped and counted (the first
few line numbers are kept for the preview) -- except that a list whose entries are *all*
unusable is an error, because then it was surely misread and nobody would be suppressed.
Suppression is by address on every channel: an opt-out belongs to a person, not a channel.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from campaign.dedupe import KeySet
from campaign.e164 import normalise
from campaign.exceptions import RecipientsFileError
from campaign.listfile import check_list_file, is_utf8, text_encoding

__all__ = ["SuppressionList", "load_suppression"]

_ROLE: Final = "suppression list"
_JSONL_SUFFIXES: Final = frozenset({".jsonl", ".ndjson"})
_DELIMITERS: Final = (",", ";", "\t")
_KEPT_LINES: Final = 10
_BATCH: Final = 4096


@dataclass(frozen=True, slots=True)
class SuppressionList:
    """What was read from a suppression list, for the preview to show."""

    path: str
    form: str  # "jsonl", "csv" or "lines"
    addresses: int  # distinct valid addresses
    skipped: int  # entries that are not valid phone numbers
    skipped_lines: tuple[int, ...]  # the first few of those, 1-based line numbers


def load_suppression(
    path: Path,
    *,
    default_region: str | None,
    address_fields: tuple[str, ...] = ("address",),
    delimiter: str = ",",
    encoding: str = "utf-8",
    work_dir: Path | None = None,
) -> tuple[KeySet, SuppressionList]:
    """Read the suppression list at `path` into a KeySet of E.164 digits (as integers),
    each remembered with its line number; the caller closes the set."""
    size = check_list_file(path, encoding=encoding, role=_ROLE)
    if path.suffix.lower() in _JSONL_SUFFIXES:
        form, entries = "jsonl", _jsonl_entries(path, address_fields, encoding)
    else:
        form, entries = _text_entries(path, address_fields, delimiter, encoding)
    # About two bytes of bitmap per line the file can hold: few keys ever reach SQLite.
    bits = 1 << max(16, min(27, (size // 10 * 16).bit_length()))
    store = KeySet(directory=work_dir, bitmap_bits=bits)
    try:
        seen = skipped = 0
        skipped_lines: list[int] = []
        keys: list[int] = []
        lines: list[int] = []
        for line, raw in entries:
            seen += 1
            e164 = normalise(raw, default_region)
            if e164 is None:
                skipped += 1
                if len(skipped_lines) < _KEPT_LINES:
                    skipped_lines.append(line)
                continue
            keys.append(int(e164[1:]))
            lines.append(line)
            if len(keys) >= _BATCH:
                store.add(keys, lines)
                keys, lines = [], []
        store.add(keys, lines)
        if seen and seen == skipped:
            raise RecipientsFileError(
                str(path),
                f"none of its {seen} entries is a valid phone number (read as {form})",
                hint="give one address per line, or a CSV/JSONL 'address' column/field",
            )
    except BaseException:
        store.close()
        raise
    summary = SuppressionList(str(path), form, len(store), skipped, tuple(skipped_lines))
    return store, summary


def _text_entries(
    path: Path, address_fields: tuple[str, ...], delimiter: str, encoding: str
) -> tuple[str, Iterator[tuple[int, str]]]:
    """CSV with a header naming an address column, or else one address per line."""
    wanted = [field.strip().casefold() for field in address_fields]
    with path.open(encoding=text_encoding(encoding), newline="") as handle:
        first = next((line for line in handle if line.strip()), "")
    for candidate in dict.fromkeys((delimiter, *_DELIMITERS)):
        names = [cell.strip().casefold() for cell in next(csv.reader([first], delimiter=candidate))]
        column = next((names.index(field) for field in wanted if field in names), None)
        if column is not None:
            return "csv", _csv_entries(path, column, candidate, encoding)
    return "lines", _line_entries(path, encoding)


def _line_entries(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    with path.open(encoding=text_encoding(encoding)) as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if text:
                yield number, text


def _csv_entries(
    path: Path, column: int, delimiter: str, encoding: str
) -> Iterator[tuple[int, str]]:
    with path.open(encoding=text_encoding(encoding), newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header_seen = False
        while True:
            try:
                for record in reader:
                    if not record:
                        continue
                    if not header_seen:
                        header_seen = True
                    elif len(record) > column and record[column].strip():
                        yield reader.line_num, record[column]
            except csv.Error:
                # A malformed line is an unusable entry: counted as skipped, never fatal.
                yield reader.line_num, ""
                continue
            return


def _jsonl_entries(
    path: Path, address_fields: tuple[str, ...], encoding: str
) -> Iterator[tuple[int, str]]:
    utf8 = is_utf8(encoding)
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # noqa: PLW2901  (a BOM is not data)
            try:
                value = orjson.loads(line if utf8 else line.decode(encoding))
            except orjson.JSONDecodeError:
                yield number, ""
                continue
            if isinstance(value, dict):
                value = next((value[f] for f in address_fields if f in value), None)
            yield number, value if isinstance(value, str) else _scalar_text(value)


def _scalar_text(value: object) -> str:
    """An address written as a JSON number is read as its digits; anything else is unusable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""
