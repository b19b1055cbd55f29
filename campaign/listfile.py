"""Reading a recipients list file into records: every check that concerns the file as a
whole happens before the first record is handed out.

`check_list_file` decodes the whole file once, in 1 MiB chunks (~0.1 s for a million rows),
so that a file which cannot be read fails with one `RecipientsFileError` naming the byte and
line *before* any row is handed out -- a run never sends the first half of a list and then
dies on a stray Windows-1252 byte in the second half.  `open_csv` checks the header and
`open_jsonl` the first objects the same way; then both yield records in batches, where a
malformed line is a record with a bad_row detail, never an exception.  What the records
mean is `campaign.recipients`' business.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from campaign.e164 import normalise
from campaign.exceptions import RecipientsFileError

__all__ = ["Record", "check_list_file", "is_utf8", "open_csv", "open_jsonl", "text_encoding"]

# One data row as the readers hand it over, in lists of up to _BATCH: data row number, raw
# address, variables, and the bad_row detail (None for a well-formed row).
Record = tuple[int, str, dict[str, str], str | None]

_BATCH: Final = 2048
# How many JSONL objects may go by before the address field must have been seen once.
_JSONL_PROBE: Final = 1000
_BOM: Final = codecs.BOM_UTF8

_CHUNK: Final = 1 << 20
_UTF8_NAMES: Final = frozenset({"utf-8", "utf-8-sig"})
_EXPORT_HINT: Final = "save it as UTF-8 (in a spreadsheet: 'CSV UTF-8'), or set its encoding"


def is_utf8(encoding: str) -> bool:
    """True for every spelling of UTF-8, with or without a byte order mark."""
    return codecs.lookup(encoding).name in _UTF8_NAMES


def text_encoding(encoding: str) -> str:
    """The codec to read text with: UTF-8 becomes 'utf-8-sig', which drops a leading byte
    order mark (Excel writes one) and otherwise reads plain UTF-8."""
    return "utf-8-sig" if is_utf8(encoding) else encoding


def check_list_file(path: Path, *, encoding: str, role: str) -> int:
    """Check that `path` is a readable file whose bytes all decode with `encoding`; return
    its size in bytes.  `role` ('recipients file', 'suppression list') starts the problem
    text.  Raises RecipientsFileError (and LookupError for an unknown encoding name)."""
    codecs.lookup(encoding)  # an unknown name is a settings error, not a file error
    name = str(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise RecipientsFileError(
            name, f"{role} not found", hint="check the path (relative to the campaign file)"
        ) from None
    except IsADirectoryError:
        raise RecipientsFileError(name, f"{role} is a directory, not a file") from None
    except OSError as error:
        raise RecipientsFileError(name, f"{role} cannot be opened: {error.strerror}") from None
    with handle:
        return _decode_all(handle, name, encoding, role)


def _decode_all(handle: BinaryIO, name: str, encoding: str, role: str) -> int:
    read = handle.read
    utf8 = is_utf8(encoding)
    decoder = codecs.getincrementaldecoder("utf-8" if utf8 else encoding)("strict")
    fed = 0  # bytes handed to the decoder so far
    newlines = 0  # in those bytes: only meaningful for ASCII-compatible encodings
    first = True
    while chunk := read(_CHUNK):
        start = 0
        if first and utf8 and chunk.startswith(codecs.BOM_UTF8):
            start = len(codecs.BOM_UTF8)  # the BOM is not data (and its bytes would not decode)
        first = False
        held = len(decoder.getstate()[0])  # undecoded tail of the previous chunk
        try:
            decoder.decode(chunk[start:] if start else chunk)
        except UnicodeDecodeError as error:
            offset = fed + start - held + error.start
            line = newlines + error.object[: error.start].count(b"\n") + 1 if utf8 else None
            bad = error.object[error.start : error.end].hex(" ").upper()
            raise RecipientsFileError(
                name,
                f"{role} is not {encoding}: byte(s) {bad} at offset {offset} cannot be decoded",
                hint=_EXPORT_HINT,
                line=line,
                offset=offset,
            ) from None
        fed += len(chunk)
        newlines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise RecipientsFileError(
            name,
            f"{role} is not {encoding}: it ends in the middle of a character",
            hint=_EXPORT_HINT,
            line=newlines + 1 if utf8 else None,
            offset=fed - len(error.object) + error.start,
        ) from None
    return fed


# --- CSV -------------------------------------------------------------------------------------


def open_csv(
    path: Path,
    handle: Any,
    *,
    address_field: str,
    channel_field: str | None,
    pool_field: str | None,
    default_region: str | None,
    delimiter: str,
    skip: int = 0,
) -> tuple[tuple[str, ...], Iterator[list[Record]]]:
    """Read and check the header; the variable names and the batches of records after it,
    leaving out the first `skip` records (only counted, ~0.2 µs each)."""
    # strict: a stray quote or a quoted field left open is a bad row, not silently mended.
    reader = csv.reader(handle, delimiter=delimiter, strict=True)
    try:
        header = next((record for record in reader if record), None)
    except csv.Error as error:
        raise RecipientsFileError(str(path), f"the header cannot be read as CSV: {error}") from None
    if header is None:
        raise RecipientsFileError(
            str(path), "the file is empty", hint="it needs a header row and one row per recipient"
        )
    names = [name.strip() for name in header]
    fields = {"address": address_field, "channel_column": channel_field, "pool_column": pool_field}
    _check_header(path, names, fields, default_region, delimiter, reader.line_num)
    address_index = names.index(address_field)
    kept = [i for i, name in enumerate(names) if name and i != address_index]
    columns = tuple(names[i] for i in kept)
    variables_of = _variables_builder(columns, kept)
    return columns, _csv_batches(reader, len(names), address_index, variables_of, skip)


def _variables_builder(
    columns: tuple[str, ...], indexes: list[int]
) -> Callable[[list[str]], dict[str, str]]:
    """A function making a record's variables dict: `lambda record: {'name': record[1], ...}`.

    A dict display is ~5x faster than dict(zip(...)), a microsecond a row here; the code is
    generated as namedtuple and dataclasses generate theirs.  The only outside text in it is
    column names, each written with repr(), which always gives an inert string literal.
    """
    items = ", ".join(
        f"{name!r}: record[{index}]" for name, index in zip(columns, indexes, strict=True)
    )
    builder: Callable[[list[str]], dict[str, str]] = eval(f"lambda record: {{{items}}}", {})  # noqa: S307
    return builder


def _check_header(
    path: Path,
    names: list[str],
    fields: dict[str, str | None],
    default_region: str | None,
    delimiter: str,
    line: int,
) -> None:
    """Raise RecipientsFileError unless `names` (on `line`) is a usable header with every
    configured column in `fields` (keyed by its campaign-file setting)."""
    shown = ", ".join(repr(name) for name in names[:12]) + (", ..." if len(names) > 12 else "")
    if names[0].startswith(("{", "[")):
        raise RecipientsFileError(
            str(path), "this looks like JSON, not CSV", hint="name the file .jsonl", line=line
        )
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise RecipientsFileError(
            str(path),
            f"the header names {', '.join(map(repr, repeated))} more than once",
            line=line,
        )
    for setting, field in fields.items():
        if field is None or field in names:
            continue
        if any(normalise(name, default_region) for name in names):
            problem = "the first line looks like a recipient, not a header"
            hint = "add a header row naming the columns"
        else:
            problem = f"no column {field!r}; the header has {shown}"
            close = [name for name in names if name.casefold() == field.casefold()]
            hint = f"did you mean {close[0]!r}?" if close else ""
            hint = hint or f"set [recipients] {setting} to one of these columns"
            if len(names) == 1 and delimiter == "," and (";" in names[0] or "\t" in names[0]):
                hint = "the file seems to use another delimiter: set [recipients] delimiter"
        raise RecipientsFileError(str(path), problem, hint=hint, line=line)


def _csv_batches(
    reader: Any,
    width: int,
    address_index: int,
    variables_of: Callable[[list[str]], dict[str, str]],
    skip: int,
) -> Iterator[list[Record]]:
    row = 0
    batch: list[Record] = []
    last = reader.line_num  # the physical line the previous record ended on
    while True:
        try:
            for record in reader:
                if not record:
                    last = reader.line_num
                    continue  # a blank line, as csv.DictReader skips it
                row += 1
                if row <= skip:
                    last = reader.line_num
                    continue
                if len(record) == width:
                    batch.append((row, record[address_index], variables_of(record), None))
                else:
                    raw = record[address_index] if len(record) > address_index else ""
                    where = _lines(last + 1, reader.line_num)
                    detail = f"{where}: {len(record)} fields where the header has {width}"
                    batch.append((row, raw, {}, detail))
                last = reader.line_num
                if len(batch) >= _BATCH:
                    yield batch
                    batch = []
        except csv.Error as error:
            # The reader carries on with the next line after a malformed record.
            row += 1
            where = _lines(last + 1, reader.line_num)
            problem = str(error)
            if problem == "unexpected end of data":
                problem = "a quoted field is never closed"
            if row > skip:
                batch.append((row, "", {}, f"{where}: {problem}"))
            last = reader.line_num
            continue
        break
    if batch:
        yield batch


def _lines(first: int, last: int) -> str:
    return f"line {last}" if first >= last else f"lines {first}-{last}"


# --- JSONL -----------------------------------------------------------------------------------


def open_jsonl(
    path: Path, handle: Any, address_field: str, encoding: str, skip: int = 0
) -> Iterator[list[Record]]:
    """Check that the file starts like JSONL and that the address field appears early on;
    the records from the start, leaving out the first `skip` (only counted)."""
    utf8 = is_utf8(encoding)
    first: dict[str, Any] | None = None
    found = False
    probed = 0
    for number, line in enumerate(handle, 1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]  # noqa: PLW2901  (a BOM is not data)
        if not line.strip():
            continue
        try:
            value = orjson.loads(line if utf8 else line.decode(encoding))
        except orjson.JSONDecodeError as error:
            if first is None:
                raise RecipientsFileError(
                    str(path), f"not JSONL: the first line is not JSON ({error})", line=number
                ) from None
            continue
        if first is None:
            if not isinstance(value, dict):
                kind = _json_kind(value)
                raise RecipientsFileError(
                    str(path), f"not JSONL of objects: the first line is {kind}", line=number
                )
            first = value
        if isinstance(value, dict):
            probed += 1
            if address_field in value:
                found = True
                break
            if probed >= _JSONL_PROBE:
                break
    if first is None:
        raise RecipientsFileError(
            str(path), "the file is empty", hint="it needs one JSON object per recipient"
        )
    if not found:
        shown = ", ".join(repr(name) for name in list(first)[:12])
        raise RecipientsFileError(
            str(path),
            f"no object among the first {probed} has a field {address_field!r}; the first has {shown}",
            hint="set [recipients] address to the field that holds the phone number",
        )
    handle.seek(0)
    return _jsonl_batches(handle, address_field, utf8, encoding, skip)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _jsonl_batches(
    handle: Any, address_field: str, utf8: bool, encoding: str, skip: int
) -> Iterator[list[Record]]:
    row = 0
    batch: list[Record] = []
    loads = orjson.loads
    for number, line in enumerate(handle, 1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]  # noqa: PLW2901  (a BOM is not data)
        if not line.strip():
            continue
        row += 1
        if row <= skip:
            continue
        try:
            value = loads(line if utf8 else line.decode(encoding))
        except orjson.JSONDecodeError as error:
            batch.append((row, "", {}, f"line {number}: not valid JSON ({error})"))
        else:
            if type(value) is dict:
                batch.append((row, *_jsonl_fields(number, value, address_field)))
            else:
                batch.append((row, "", {}, f"line {number}: {_json_kind(value)}, not an object"))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_fields(
    number: int, value: dict[str, Any], address_field: str
) -> tuple[str, dict[str, str], str | None]:
    """The raw address, the variables and the bad_row detail of the object on line `number`."""
    raw = ""
    variables: dict[str, str] = {}
    for name, field in value.items():
        kind = type(field)
        if kind is str:
            text = field
        elif field is None:
            continue  # null: as if the field were absent
        elif kind is bool:
            text = "true" if field else "false"
        elif kind is int or kind is float:
            text = repr(field)
        else:
            detail = f"line {number}: {name!r} is {_json_kind(field)}; values must be text, numbers or booleans"
            address = value.get(address_field)
            return (address if type(address) is str else ""), {}, detail
        if name == address_field:
            raw = text
        else:
            variables[name] = text
    return raw, variables, None
