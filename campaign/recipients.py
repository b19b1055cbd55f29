"""Recipient lists: a CSV or JSONL file, streamed into exactly one settled verdict per row.

`read_recipients` checks the file as a whole first and raises one `RecipientsFileError` when
it cannot be read at all (missing, not decodable, empty, no header, no address column or
field), *before* handing out any row.  After that nothing raises for a row: every data row
becomes one `RecipientRow`, in file order, whose verdict comes from these checks in this
order (the first that fails decides):

1. ``bad_row``          the line is malformed: a CSV record with the wrong number of fields,
                        a JSONL line that is not valid JSON, not an object, or holds an array
                        or object as a value;
2. ``invalid_channel``  with a channel column: its value is not PHONE or WHATSAPP (any case,
                        surrounding blanks ignored; an empty cell is invalid too);
3. ``unknown_pool``     with a pool column: the alias is not one of `pools` (an empty cell
                        means `default_pool`);
4. ``invalid_address``  the address is not a valid phone number for phonenumbers once read
                        with `default_region` (WhatsApp addresses are phone numbers too);
5. ``missing_variable`` a required template variable is absent or empty;
6. ``suppressed``       the address is on the suppression list (on any channel);
7. ``duplicate``        an earlier row with a *valid* verdict had the same E.164 address on
                        the same channel (in whatever pool).  Only valid rows claim an address,
                        so the first row that can actually be sent is the one that is sent;
                        suppressed rows need not claim, as every later row with that address
                        is suppressed too.

Everything else is ``valid``.  The verdicts depend on the file's bytes and the arguments
alone, never on timing or batching, so a preview and any later run (or resume) of the same
file agree row for row.

Row numbers count data rows from 1: the CSV header is not a row, and blank lines (an empty
CSV record, a JSONL line of only whitespace) are skipped without a number.  A quoted CSV field
may span lines; details of malformed rows name the physical line as well.

Every CSV column / JSONL field other than the address -- including the channel and pool
columns -- becomes a template variable.  CSV columns with an empty header name are dropped.
JSON strings are kept as they are, integers and floats are written as Python prints them
(``1e3`` -> ``1000.0``; quote a value to keep its exact text), booleans as ``true`` /
``false``, and ``null`` means the field is absent.

Speed and memory: rows are handled in batches of 2,048; steps 6 and 7 go to an exact,
flat-memory `campaign.dedupe.KeySet` (see there for why it is built as it is) in one call
per batch.  Nothing is kept per row once its batch has been handed out.  Rows are
NamedTuples rather than frozen dataclasses because a frozen dataclass's ``__init__`` costs
~2 µs here against ~0.25 µs, a fifth of the budget for a million rows in 10 s.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Self

from campaign.dedupe import KeySet
from campaign.e164 import normalise
from campaign.exceptions import RecipientsFileError
from campaign.listfile import Record, check_list_file, open_csv, open_jsonl, text_encoding
from campaign.spec import CampaignSpec
from campaign.suppression import SuppressionList, load_suppression

__all__ = [
    "CHANNELS",
    "REASONS",
    "VERDICTS",
    "KeptKeys",
    "RecipientRow",
    "Recipients",
    "read_campaign_recipients",
    "read_recipients",
]

Verdict = Literal["valid", "invalid", "duplicate", "suppressed"]
Reason = Literal[
    "invalid_address", "missing_variable", "bad_row", "unknown_pool", "invalid_channel"
]
VERDICTS: Final = ("valid", "invalid", "duplicate", "suppressed")
REASONS: Final = (
    "bad_row",
    "invalid_channel",
    "unknown_pool",
    "invalid_address",
    "missing_variable",
)
# The channel is the low bit of a dedupe key: one number on two channels is two messages,
# not a duplicate.
CHANNELS: Final = {"PHONE": 0, "WHATSAPP": 1}

_ROLE: Final = "recipients file"


class RecipientRow(NamedTuple):
    """One data row of a recipients file and its settled verdict."""

    row: int  # 1-based data row number (header and blank lines not counted)
    address: str  # E.164 when the address is valid, else the text as written
    channel: str  # "PHONE" | "WHATSAPP"; as written when the verdict is invalid_channel
    pool: str  # pool alias
    variables: dict[str, str]  # every column/field but the address
    verdict: Verdict
    reason: Reason | None  # set only for verdict "invalid"
    detail: str | None  # human words: what is malformed, missing, or which row it repeats


@dataclass(frozen=True, slots=True)
class KeptKeys:
    """Keep the dedupe keys in a file between runs of one campaign (`KeySet.kept`), so that
    a resumed run reads rows up to `settled_through` (all settled already) no more.

    `input_was` and `input_now` are fingerprints of the recipients file (any text that
    changes with its bytes): as the ledger's last run saw it, when that file is known to be
    today's or a prefix of it (else None, as for a new ledger: the keys start afresh), and
    as it is now."""

    path: Path
    input_was: str | None
    input_now: str
    settled_through: int = 0


class Recipients:
    """The rows of one recipients file, in file order; iterate once.  Holds an open file and
    temporary dedupe storage: `close()` it, or use it as a context manager, or exhaust it.

    `columns` is the CSV header's variable names in order (empty for JSONL); `suppression`
    describes the suppression list read, if any; `skipped` counts the rows at the start left
    out because `KeptKeys` said they are settled."""

    def __init__(
        self,
        path: Path,
        file_format: str,
        columns: tuple[str, ...],
        suppression: SuppressionList | None,
        rows: Iterator[RecipientRow],
        resources: list[Any],
        skipped: int = 0,
    ) -> None:
        self.path = path
        self.format = file_format
        self.columns = columns
        self.suppression = suppression
        self.skipped = skipped
        self._rows = rows
        self._resources = resources

    def __iter__(self) -> Iterator[RecipientRow]:
        # The generator itself, so that a for-loop pays no Python call per row.
        return self._rows

    def __next__(self) -> RecipientRow:
        return next(self._rows)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Recipients {self.format} {str(self.path)!r}>"

    def close(self) -> None:
        """Release the file and the dedupe storage; idempotent."""
        close_rows = getattr(self._rows, "close", None)
        if close_rows is not None:
            close_rows()
        _close_all(self._resources)  # when the rows were never started


def read_recipients(
    path: Path,
    *,
    format: Literal["csv", "jsonl"],
    address_field: str = "address",
    channel: str = "PHONE",
    channel_field: str | None = None,
    default_region: str | None = None,
    pool_field: str | None = None,
    pools: frozenset[str] = frozenset({"default"}),
    default_pool: str = "default",
    required_variables: frozenset[str] = frozenset(),
    suppression: Path | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    work_dir: Path | None = None,
    kept: KeptKeys | None = None,
) -> Recipients:
    """Open the recipients file at `path` and return its rows as they will be settled.

    Raises RecipientsFileError now (never while iterating) when the recipients file or the
    `suppression` list cannot be read at all, and ValueError for arguments that no file could
    satisfy.  `channel` is every row's channel unless `channel_field` names a column that
    picks it per row; `pool_field` likewise picks a pool alias from `pools`.  `work_dir` is
    where the temporary dedupe store goes (default: the system temporary directory); it
    grows by ~20 bytes per distinct address.  With `kept`, the store is that file instead,
    and rows it shows were read before, up to `kept.settled_through`, are left out.
    """
    if format not in ("csv", "jsonl"):
        raise ValueError(f"format must be 'csv' or 'jsonl', not {format!r}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be PHONE or WHATSAPP, not {channel!r}")
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            f"delimiter must be one character other than a quote or newline, not {delimiter!r}"
        )
    size = check_list_file(path, encoding=encoding, role=_ROLE)
    checks = _Checks(
        address_field=address_field,
        channel=channel,
        channel_field=channel_field,
        default_region=default_region,
        pool_field=pool_field,
        pools=pools,
        default_pool=default_pool,
        required=tuple(sorted(required_variables - {address_field})),
    )
    resources: list[Any] = []
    skip = 0
    try:
        # 16 bits of bitmap per byte of file, at most 16 MiB: a small file gets a small one,
        # and any file over 8 MB (~250,000 rows) the same, so memory stays flat beyond that.
        bits = 1 << max(16, min(27, (size * 16).bit_length()))
        if kept is None:
            seen = KeySet(directory=work_dir, bitmap_bits=bits)
        else:
            settings = _reader_settings(
                format, checks, sorted(required_variables), suppression, delimiter, encoding
            )
            identity = _identity(settings, kept.input_now)
            # Nothing recorded to compare with (a new ledger, an edited input): afresh.
            accept = set()
            if kept.input_was is not None:
                accept = {_identity(settings, kept.input_was), identity}
            try:
                seen = KeySet.kept(kept.path, accept=accept, identity=identity, bitmap_bits=bits)
            except (OSError, sqlite3.Error) as error:
                raise RecipientsFileError(
                    str(kept.path),
                    f"cannot keep the addresses read so far here: {error}",
                    hint="free disk space there, or make the ledger's folder writable",
                ) from None
            skip = min(kept.settled_through, seen.covered)
        resources.append(seen)
        if format == "csv":
            handle = path.open(encoding=text_encoding(encoding), newline="")
            resources.append(handle)
            columns, records = open_csv(
                path,
                handle,
                address_field=address_field,
                channel_field=channel_field,
                pool_field=pool_field,
                default_region=default_region,
                delimiter=delimiter,
                skip=skip,
            )
        else:
            binary = path.open("rb")
            resources.append(binary)
            columns, records = (), open_jsonl(path, binary, address_field, encoding, skip)
        blocked: KeySet | None = None
        summary: SuppressionList | None = None
        if suppression is not None:
            blocked, summary = load_suppression(
                suppression,
                default_region=default_region,
                address_fields=tuple(dict.fromkeys(("address", address_field))),
                delimiter=delimiter,
                encoding=encoding,
                work_dir=work_dir,
            )
            resources.append(blocked)
    except BaseException:
        _close_all(resources)
        raise
    rows = _settled(path, records, checks, seen, blocked, resources)
    return Recipients(path, format, columns, summary, rows, resources, skip)


def read_campaign_recipients(
    spec: CampaignSpec,
    required_variables: frozenset[str],
    *,
    work_dir: Path | None = None,
    kept: KeptKeys | None = None,
) -> Recipients:
    """`read_recipients` as a campaign file says: the one way preview and run open a list."""
    recipients = spec.recipients
    return read_recipients(
        recipients.path,
        format=recipients.format,
        address_field=recipients.address,
        channel=recipients.channel or "PHONE",
        channel_field=recipients.channel_column,
        default_region=recipients.default_region,
        pool_field=recipients.pool_column,
        pools=frozenset(spec.pools),
        default_pool=next(iter(spec.pools)),
        required_variables=required_variables,
        suppression=recipients.suppression,
        delimiter=recipients.delimiter,
        encoding=recipients.encoding,
        work_dir=work_dir,
        kept=kept,
    )


_KEYS_VERSION: Final = 1  # of how rows become keys: a change here starts kept keys afresh


def _reader_settings(
    file_format: str,
    checks: _Checks,
    required: list[str],
    suppression: Path | None,
    delimiter: str,
    encoding: str,
) -> str:
    """Everything besides the input's bytes that decides a row's key or whether it gets one."""
    blocked = None
    if suppression is not None:
        try:
            stat = suppression.stat()
            blocked = [str(suppression.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            blocked = [str(suppression)]  # load_suppression says what is wrong with it
    return repr(
        (
            _KEYS_VERSION,
            file_format,
            [getattr(checks, name) for name in _Checks.__slots__ if name != "pools"],
            sorted(checks.pools),
            required,
            blocked,
            delimiter,
            encoding,
        )
    )


def _identity(settings: str, input_fingerprint: str) -> str:
    return hashlib.sha256(f"{settings}\n{input_fingerprint}".encode()).hexdigest()


def _close_all(resources: list[Any]) -> None:
    """Close and forget `resources`, last opened first."""
    while resources:
        resources.pop().close()


# --- the checks ------------------------------------------------------------------------------


class _Checks:
    """Steps 2-5 of the module docstring for one row, and the settings they need."""

    __slots__ = (
        "address_field",
        "channel",
        "channel_field",
        "default_pool",
        "default_region",
        "pool_field",
        "pools",
        "required",
    )

    def __init__(
        self,
        *,
        address_field: str,
        channel: str,
        channel_field: str | None,
        default_region: str | None,
        pool_field: str | None,
        pools: frozenset[str],
        default_pool: str,
        required: tuple[str, ...],
    ) -> None:
        self.address_field = address_field
        self.channel = channel
        self.channel_field = channel_field
        self.default_region = default_region
        self.pool_field = pool_field
        self.pools = pools
        self.default_pool = default_pool
        self.required = required

    def address_problem(self, raw: str) -> str:
        """Why `raw` is not a valid address, in words."""
        if not raw.strip():
            return f"no address in {self.address_field!r}"
        if self.default_region is None and not raw.lstrip().startswith(("+", "00")):
            return f"{raw!r} is not a valid phone number (no country code, and no default region)"
        return f"{raw!r} is not a valid phone number"

    def missing_detail(self, variables: dict[str, str]) -> str:
        """Which required variables `variables` lacks, in words."""
        missing = [name for name in self.required if not variables.get(name)]
        return f"no value for {', '.join(missing)}"


_new_row = tuple.__new__  # skips NamedTuple's Python-level __new__: half the cost of a row


def _settled(
    path: Path,
    batches: Iterator[list[Record]],
    checks: _Checks,
    seen: KeySet,
    blocked: KeySet | None,
    resources: list[Any],
) -> Iterator[RecipientRow]:
    """Every record's verdict, in file order, settled a batch at a time; `resources` are
    closed as soon as the last row is out (or the generator is closed)."""
    try:
        for records in batches:
            rows, positions, keys = _check(records, checks)
            if positions:
                _settle(rows, positions, keys, seen, blocked)
            seen.cover(records[-1][0])
            yield from rows
    except UnicodeDecodeError as error:
        # Only if the file changed after check_list_file() decoded all of it.
        raise RecipientsFileError(str(path), f"changed while being read: {error}") from None
    except sqlite3.Error as error:
        # The disk under the store filled up, or went away: not this row's fault.
        raise RecipientsFileError(
            seen.directory,
            f"the store of addresses for finding duplicates failed: {error}",
            hint="free disk space there (the temporary folder, or the ledger's for a run)",
        ) from None
    finally:
        _close_all(resources)


def _check(
    records: list[Record], checks: _Checks
) -> tuple[list[RecipientRow], list[int], list[int]]:
    """Steps 1-5 for a batch: its rows, the positions of those still valid, and their dedupe
    keys (E.164 digits * 2 + channel bit)."""
    channel_field = checks.channel_field
    pool_field = checks.pool_field
    pools = checks.pools
    region = checks.default_region
    required = checks.required
    default_channel = checks.channel
    default_pool = checks.default_pool
    default_bit = CHANNELS[default_channel]
    new = _new_row
    rows: list[RecipientRow] = []
    append = rows.append
    positions: list[int] = []
    keys: list[int] = []
    for row, raw, variables, problem in records:
        if problem is not None:
            append(_invalid(row, raw, default_channel, default_pool, variables, "bad_row", problem))
            continue
        channel, bit, pool = default_channel, default_bit, default_pool
        if channel_field is not None:
            written = variables.get(channel_field, "")
            channel = written.strip().upper()
            if channel not in CHANNELS:
                detail = f"channel {written!r} is not PHONE or WHATSAPP"
                append(_invalid(row, raw, written, pool, variables, "invalid_channel", detail))
                continue
            bit = CHANNELS[channel]
        if pool_field is not None:
            pool = variables.get(pool_field, "").strip() or default_pool
            if pool not in pools:
                detail = f"pool {pool!r} is not one of {', '.join(sorted(pools))}"
                append(_invalid(row, raw, channel, pool, variables, "unknown_pool", detail))
                continue
        e164 = normalise(raw, region)
        if e164 is None:
            detail = checks.address_problem(raw)
            append(_invalid(row, raw, channel, pool, variables, "invalid_address", detail))
            continue
        # A plain loop: a list comprehension costs a frame, 0.3 µs a row.
        missing = False
        for name in required:
            if not variables.get(name):
                missing = True
                break
        if missing:
            detail = checks.missing_detail(variables)
            append(_invalid(row, e164, channel, pool, variables, "missing_variable", detail))
            continue
        positions.append(len(rows))
        keys.append(int(e164) * 2 + bit)  # int() takes the '+' as a sign
        append(new(RecipientRow, (row, e164, channel, pool, variables, "valid", None, None)))
    return rows, positions, keys


def _invalid(
    row: int,
    address: str,
    channel: str,
    pool: str,
    variables: dict[str, str],
    reason: Reason,
    detail: str,
) -> RecipientRow:
    return RecipientRow(row, address, channel, pool, variables, "invalid", reason, detail)


def _settle(
    rows: list[RecipientRow],
    positions: list[int],
    keys: list[int],
    seen: KeySet,
    blocked: KeySet | None,
) -> None:
    """Steps 6 and 7 for the rows still valid at `positions`, in place."""
    if blocked is not None:
        lines = blocked.find([key >> 1 for key in keys])
        if any(lines):
            kept_positions: list[int] = []
            kept_keys: list[int] = []
            for position, key, line in zip(positions, keys, lines, strict=True):
                if line:
                    detail = f"on the suppression list (line {line})"
                    rows[position] = rows[position]._replace(verdict="suppressed", detail=detail)
                else:
                    kept_positions.append(position)
                    kept_keys.append(key)
            positions, keys = kept_positions, kept_keys
    # Readers number every record, so a batch's row numbers are consecutive.
    base = rows[0].row
    firsts = seen.add(keys, [base + position for position in positions])
    for position, first in zip(positions, firsts, strict=True):
        # A kept store may hold this very row's key, from a run that read it before.
        if first and first != base + position:
            detail = f"same address and channel as row {first}"
            rows[position] = rows[position]._replace(verdict="duplicate", detail=detail)
