"""campaign.recipients: one settled verdict per data row, and one clear error for a bad file."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import os
import shutil
import sqlite3
import string
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign import listfile
from campaign import recipients as recipients_module
from campaign.dedupe import KeySet
from campaign.exceptions import CampaignError, RecipientsFileError
from campaign.recipients import (
    REASONS,
    VERDICTS,
    KeptKeys,
    RecipientRow,
    Recipients,
    read_recipients,
)

# Bounded so the file runs in seconds; no example database written into the tree.
BOUNDED = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
BOM = codecs.BOM_UTF8
NUMBER = "+19143188062"


def write(tmp_path: Path, content: str | bytes, name: str = "recipients.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def read(path: Path, **options: Any) -> list[RecipientRow]:
    """Every row of the file, with format from its suffix unless given."""
    options.setdefault("format", "jsonl" if path.suffix == ".jsonl" else "csv")
    with read_recipients(path, **options) as rows:
        return list(rows)


def jsonl(*lines: object) -> str:
    """One line per item: dicts and lists as JSON, strings as they are (for broken lines)."""
    return "".join((x if isinstance(x, str) else orjson.dumps(x).decode()) + "\n" for x in lines)


def verdicts(rows: list[RecipientRow]) -> list[str | None]:
    """Each row's reason when invalid, else its verdict."""
    return [row.reason or row.verdict for row in rows]


# --- the verdicts ----------------------------------------------------------------------------


def test_a_valid_row_is_normalised_and_keeps_every_other_column_as_a_variable(
    tmp_path: Path,
) -> None:
    """The address becomes E.164; every other column, in header order, is a variable."""
    path = write(tmp_path, "name,address,city\nAnn,+1 (914) 318-8062,Paris\n")
    (row,) = read(path)
    assert row == RecipientRow(
        row=1,
        address=NUMBER,
        channel="PHONE",
        pool="default",
        variables={"name": "Ann", "city": "Paris"},
        verdict="valid",
        reason=None,
        detail=None,
    )


@pytest.mark.parametrize(
    ("line", "options", "reason", "detail"),
    [
        ("+19143188062,Ann,x", {}, "bad_row", "3 fields where the header has 2"),
        ("+19143188062", {}, "bad_row", "1 fields where the header has 2"),
        ("not a number,Ann", {}, "invalid_address", "'not a number' is not a valid phone"),
        (",Ann", {}, "invalid_address", "no address in 'address'"),
        ("(914) 318-8062,Ann", {}, "invalid_address", "no default region"),
        ("+1914318806,Ann", {}, "invalid_address", "not a valid phone number"),
        (
            "+19143188062,",
            {"required_variables": frozenset({"name"})},
            "missing_variable",
            "no value for name",
        ),
        (
            "+19143188062,Ann",
            {"required_variables": frozenset({"name", "city", "zip"})},
            "missing_variable",
            "no value for city, zip",
        ),
    ],
)
def test_each_invalid_reason_says_why(
    tmp_path: Path, line: str, options: dict[str, Any], reason: str, detail: str
) -> None:
    """A row that cannot be sent is invalid with its reason and a detail in words."""
    (row,) = read(write(tmp_path, f"address,name\n{line}\n"), **options)
    assert (row.verdict, row.reason) == ("invalid", reason)
    assert row.detail is not None
    assert detail in row.detail


@pytest.mark.parametrize(
    ("cell", "verdict", "channel"),
    [
        ("PHONE", "valid", "PHONE"),
        ("phone", "valid", "PHONE"),
        (" WhatsApp ", "valid", "WHATSAPP"),
        ("whatsapp", "valid", "WHATSAPP"),
        ("sms", "invalid_channel", "sms"),
        ("", "invalid_channel", ""),
    ],
)
def test_a_channel_column_picks_the_channel_in_any_case(
    tmp_path: Path, cell: str, verdict: str, channel: str
) -> None:
    """Channel values are read case-insensitively; anything else is invalid_channel."""
    path = write(tmp_path, f"address,via\n{NUMBER},{cell}\n")
    (row,) = read(path, channel_field="via")
    assert (row.reason or row.verdict, row.channel) == (verdict, channel)
    assert row.variables == {"via": cell}


@pytest.mark.parametrize(
    ("cell", "verdict", "pool"),
    [
        ("eu", "valid", "eu"),
        (" us ", "valid", "us"),
        ("", "valid", "default"),
        ("asia", "unknown_pool", "asia"),
    ],
)
def test_a_pool_column_picks_a_known_alias(
    tmp_path: Path, cell: str, verdict: str, pool: str
) -> None:
    """An empty pool cell means the default pool; an alias not configured is unknown_pool."""
    path = write(tmp_path, f"address,pool\n{NUMBER},{cell}\n")
    (row,) = read(path, pool_field="pool", pools=frozenset({"default", "eu", "us"}))
    assert (row.reason or row.verdict, row.pool) == (verdict, pool)


def test_the_whole_campaign_channel_applies_without_a_column(tmp_path: Path) -> None:
    """channel= sets every row's channel; WhatsApp addresses are phone numbers."""
    (row,) = read(write(tmp_path, "address\n+44 7911 123456\n"), channel="WHATSAPP")
    assert (row.verdict, row.channel, row.address) == ("valid", "WHATSAPP", "+447911123456")


@pytest.mark.parametrize(
    ("line", "options", "reason"),
    [
        # channel before pool, pool before address, address before variables
        ("sms,mars,nonsense,", {}, "invalid_channel"),
        ("PHONE,mars,nonsense,", {}, "unknown_pool"),
        ("PHONE,default,nonsense,", {}, "invalid_address"),
        ("PHONE,default,+19143188062,", {}, "missing_variable"),
        # bad_row before everything
        ("sms,mars,nonsense", {}, "bad_row"),
        # invalid beats suppressed
        ("PHONE,default,+19143188062,", {"suppressed": True}, "missing_variable"),
    ],
)
def test_the_first_failing_check_decides(
    tmp_path: Path, line: str, options: dict[str, Any], reason: str
) -> None:
    """Checks run in the documented order: bad_row, channel, pool, address, variables."""
    suppression = None
    if options.get("suppressed"):
        suppression = write(tmp_path, f"{NUMBER}\n", "optouts.txt")
    path = write(tmp_path, f"via,pool,address,name\n{line}\n")
    (row,) = read(
        path,
        channel_field="via",
        pool_field="pool",
        required_variables=frozenset({"name"}),
        suppression=suppression,
    )
    assert row.reason == reason


def test_duplicates_are_found_across_formatting_variants(tmp_path: Path) -> None:
    """Two spellings of one number are one address; the later row names the first."""
    path = write(tmp_path, "address\n+1 914-318-8062\n+19143188062\n+1 (914) 318 8062\n")
    rows = read(path)
    assert verdicts(rows) == ["valid", "duplicate", "duplicate"]
    assert rows[1].detail == "same address and channel as row 1"
    assert rows[1].address == NUMBER


def test_a_national_number_is_read_with_the_default_region(tmp_path: Path) -> None:
    """default_region turns national numbers into E.164, and dedupes them with the rest."""
    path = write(tmp_path, "address\n(914) 318-8062\n+1 914 318 8062\n")
    rows = read(path, default_region="US")
    assert [(r.address, r.verdict) for r in rows] == [(NUMBER, "valid"), (NUMBER, "duplicate")]


def test_the_same_number_on_two_channels_is_not_a_duplicate(tmp_path: Path) -> None:
    """Dedupe is per address and channel; a third row repeating either is a duplicate."""
    path = write(tmp_path, f"address,via\n{NUMBER},PHONE\n{NUMBER},WHATSAPP\n{NUMBER},whatsapp\n")
    assert verdicts(read(path, channel_field="via")) == ["valid", "valid", "duplicate"]


def test_the_same_number_in_two_pools_is_a_duplicate(tmp_path: Path) -> None:
    """One person gets one message, whichever pool a later row names."""
    path = write(tmp_path, f"address,pool\n{NUMBER},eu\n{NUMBER},us\n")
    rows = read(path, pool_field="pool", pools=frozenset({"eu", "us"}))
    assert verdicts(rows) == ["valid", "duplicate"]


def test_only_a_valid_row_claims_its_address(tmp_path: Path) -> None:
    """An invalid row does not make the next row with that address a duplicate."""
    path = write(tmp_path, f"address,name\n{NUMBER},\n{NUMBER},Ann\n{NUMBER},Bob\n")
    rows = read(path, required_variables=frozenset({"name"}))
    assert verdicts(rows) == ["missing_variable", "valid", "duplicate"]
    assert rows[2].detail == "same address and channel as row 2"


def test_duplicates_are_found_across_batches(tmp_path: Path) -> None:
    """Rows far apart in a file (several internal batches) are still compared."""
    numbers = [f"+1914318{i:04d}" for i in range(5000)]
    lines = [*numbers, numbers[0], numbers[2500], numbers[4999], "+1 914 318 0001"]
    rows = read(write(tmp_path, "address\n" + "\n".join(lines) + "\n"))
    assert len(rows) == 5004
    assert verdicts(rows)[:5000] == ["valid"] * 5000
    assert [r.detail for r in rows[5000:]] == [
        f"same address and channel as row {n}" for n in (1, 2501, 5000, 2)
    ]


def test_reading_twice_gives_the_same_rows(tmp_path: Path) -> None:
    """Verdicts depend on the file alone, so a preview and a run agree."""
    path = write(tmp_path, f"address,n\n{NUMBER},1\nx,2\n{NUMBER},3\n+447911123456,4\n")
    assert read(path) == read(path)


# --- suppression -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("optouts.csv", "address,date\n+1 (914) 318-8062,2024-01-01\n"),
        ("optouts.csv", "id;Address\n7;+1.914.318.8062\n"),
        ("optouts.csv", "phone\n+19143188062\n"),  # named like the recipients' column
        ("optouts.txt", "+1 914 318 8062\n\n+447911123456\n"),
        ("optouts.txt", "(914) 318-8062\n"),  # national, read with the default region
        ("optouts.jsonl", '{"address": "+1 914-318-8062"}\n"+447911123456"\n'),
    ],
)
def test_a_suppression_list_in_any_form_suppresses_every_spelling(
    tmp_path: Path, name: str, content: str
) -> None:
    """CSV with an address column, one address per line, or JSONL; normalised like rows."""
    suppression = write(tmp_path, content, name)
    path = write(
        tmp_path, f"phone,via\n{NUMBER},PHONE\n+1 914-318-8062,WHATSAPP\n+4915123456789,PHONE\n"
    )
    with read_recipients(
        path,
        format="csv",
        address_field="phone",
        channel_field="via",
        default_region="US",
        suppression=suppression,
    ) as recipients:
        rows = list(recipients)
    assert verdicts(rows) == ["suppressed", "suppressed", "valid"]
    assert rows[0].detail is not None
    assert rows[0].detail.startswith("on the suppression list (line ")
    assert recipients.suppression is not None
    assert recipients.suppression.addresses >= 1


def test_unusable_suppression_entries_are_skipped_and_counted(tmp_path: Path) -> None:
    """Entries that are not phone numbers cannot match anyone; the summary lists them."""
    suppression = write(tmp_path, "phone numbers\n+19143188062\nnobody@example.com\n", "o.txt")
    path = write(tmp_path, f"address\n{NUMBER}\n")
    with read_recipients(path, format="csv", suppression=suppression) as recipients:
        assert verdicts(list(recipients)) == ["suppressed"]
    summary = recipients.suppression
    assert summary is not None
    assert (summary.form, summary.addresses, summary.skipped) == ("lines", 1, 2)
    assert summary.skipped_lines == (1, 3)


def test_a_suppression_list_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    """A list that was surely misread must not silently suppress nobody."""
    suppression = write(tmp_path, "id,when\n1,2024\n2,2025\n", "optouts.csv")
    path = write(tmp_path, f"address\n{NUMBER}\n")
    with pytest.raises(RecipientsFileError, match="none of its 3 entries") as caught:
        read(path, suppression=suppression)
    assert caught.value.path == str(suppression)


def test_a_missing_suppression_list_is_a_file_error(tmp_path: Path) -> None:
    """The suppression list gets the same clear error as the recipients file."""
    path = write(tmp_path, f"address\n{NUMBER}\n")
    with pytest.raises(RecipientsFileError, match="suppression list not found"):
        read(path, suppression=tmp_path / "nope.csv")


# --- CSV forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [b"", BOM], ids=["no-bom", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_utf8_with_or_without_bom_reads_the_same(
    tmp_path: Path, prefix: bytes, newline: bytes
) -> None:
    """A byte order mark is not part of the first column's name."""
    content = newline.join([b"address,name", b"+19143188062,Zo\xc3\xab", b""])
    (row,) = read(write(tmp_path, prefix + content))
    assert (row.verdict, row.variables) == ("valid", {"name": "Zoë"})


def test_quoted_fields_keep_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    """A quoted field may hold commas, quotes and line breaks; rows still count records."""
    content = 'address,note\n+19143188062,"a, b"\n+447911123456,"two\nlines ""quoted"""\n+4915123456789,x\n'
    rows = read(write(tmp_path, content))
    assert [r.row for r in rows] == [1, 2, 3]
    assert [r.variables["note"] for r in rows] == ["a, b", 'two\nlines "quoted"', "x"]


def test_a_malformed_row_names_its_physical_line(tmp_path: Path) -> None:
    """Details of bad rows give the line a person would look at."""
    content = 'address,note\n+19143188062,"one\ntwo"\n+447911123456\n'
    rows = read(write(tmp_path, content))
    assert rows[1].detail == "line 4: 1 fields where the header has 2"


@pytest.mark.parametrize(
    ("content", "details"),
    [
        (
            'address,note\n+19143188062,"a"b\n+447911123456,x\n',
            ["line 2: ',' expected after '\"'", None],
        ),
        (
            'address,note\n+19143188062,"open\n+447911123456,x\n',
            ["lines 2-3: a quoted field is never closed"],
        ),
        (
            'address,note\n+19143188062,"two\nlines",x\n+447911123456,x\n',
            ["lines 2-3: 3 fields where the header has 2", None],
        ),
        (
            'address,note\n+19143188062,"' + "a" * 140_000 + '"\n+447911123456,x\n',
            ["line 2: field larger than field limit (131072)", None],
        ),
    ],
)
def test_broken_quoting_is_a_bad_row_and_reading_goes_on(
    tmp_path: Path, content: str, details: list[str | None]
) -> None:
    """A stray or unclosed quote is reported with its lines, never silently mended."""
    rows = read(write(tmp_path, content))
    assert [r.detail for r in rows] == details
    assert [r.row for r in rows] == list(range(1, len(details) + 1))


def test_another_delimiter_is_honoured(tmp_path: Path) -> None:
    """delimiter=';' reads files from locales where ',' is the decimal mark."""
    rows = read(write(tmp_path, "address;price\n+19143188062;1,50\n"), delimiter=";")
    assert rows[0].variables == {"price": "1,50"}


def test_another_encoding_is_honoured(tmp_path: Path) -> None:
    """encoding= reads legacy exports."""
    path = write(tmp_path, "address,name\n+19143188062,Zo\xeb\n".encode("latin-1"))
    assert read(path, encoding="latin-1")[0].variables == {"name": "Zoë"}


def test_blank_lines_are_skipped_without_a_number(tmp_path: Path) -> None:
    """Row numbers count data rows only, so they stay stable whatever the spacing."""
    rows = read(write(tmp_path, f"\naddress\n\n{NUMBER}\n\n\n+447911123456\n\n"))
    assert [(r.row, r.verdict) for r in rows] == [(1, "valid"), (2, "valid")]


def test_header_names_are_trimmed_and_unnamed_columns_dropped(tmp_path: Path) -> None:
    """' name ' is 'name'; a trailing delimiter's empty column is no variable."""
    (row,) = read(write(tmp_path, f" address , name ,\n{NUMBER},Ann,\n"))
    assert row.variables == {"name": "Ann"}


def test_header_only_has_no_rows(tmp_path: Path) -> None:
    """A list with a header and no one on it is valid and empty."""
    with read_recipients(write(tmp_path, "address,name\n"), format="csv") as recipients:
        assert list(recipients) == []
        assert recipients.columns == ("name",)


# --- files that cannot be read ---------------------------------------------------------------


def test_bytes_that_are_not_utf8_name_the_line_and_offset(tmp_path: Path) -> None:
    """The error says where the bad byte is and what to do, before any row is read."""
    content = b"address,name\n+19143188062,Ann\n+447911123456,Zo\xeb\n"
    path = write(tmp_path, content)
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(path, format="csv")
    error = caught.value
    assert (error.line, error.offset) == (3, content.index(b"\xeb"))
    assert str(error).startswith(
        f"{path}: line 3: recipients file is not utf-8: byte(s) EB at offset"
    )
    assert "save it as UTF-8" in str(error)
    assert isinstance(error, CampaignError)


def test_bad_bytes_after_the_first_mebibyte_are_found_too(tmp_path: Path) -> None:
    """The offset is exact across read chunks, even mid-character."""
    content = b"address\n" + b"+19143188062\n" * 90_000 + "é".encode()[:1] + b"\n"
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(write(tmp_path, content), format="csv")
    assert (caught.value.line, caught.value.offset) == (90_002, len(content) - 2)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (BOM, "the file is empty"),
        (b"\n\n\r\n", "the file is empty"),
        (b"name,city\nAnn,Paris\n", "no column 'address'; the header has 'name', 'city'"),
        (b"Address,name\n+19143188062,Ann\n", "did you mean 'Address'?"),
        (b"+19143188062,Ann\n+447911123456,Bob\n", "looks like a recipient, not a header"),
        (b"address;name\n+19143188062;Ann\n", "another delimiter"),
        (b"address,name,address\n", "the header names 'address' more than once"),
        (b'{"address": "+19143188062"}\n', "this looks like JSON, not CSV"),
    ],
)
def test_a_csv_that_cannot_be_read_raises_one_clear_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """Missing header, address column or content stop with what, where and what to do."""
    path = write(tmp_path, content)
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(path, format="csv")
    assert problem in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("name", ["recipients.jsonl", "optouts.txt"])
def test_a_jsonl_or_suppression_list_that_is_not_utf8_is_a_file_error(
    tmp_path: Path, name: str
) -> None:
    """Every list the reader opens is decoded in full first, with the same error."""
    bad = write(tmp_path, b'{"address": "+19143188062"}\n{"name": "Zo\xeb"}\n', name)
    path = bad if name.endswith(".jsonl") else write(tmp_path, f"address\n{NUMBER}\n")
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(
            path, format="jsonl" if path is bad else "csv", suppression=None if path is bad else bad
        )
    assert (caught.value.path, caught.value.line) == (str(bad), 2)


def test_the_header_error_names_the_header_line(tmp_path: Path) -> None:
    """Blank lines before the header are counted in the line the error names."""
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(write(tmp_path, "\n\nname\nAnn\n"), format="csv")
    assert caught.value.line == 3


def test_a_missing_channel_column_is_a_file_error(tmp_path: Path) -> None:
    """A configured column that is not in the header is caught before any row."""
    with pytest.raises(RecipientsFileError, match="no column 'channel'"):
        read_recipients(
            write(tmp_path, f"address\n{NUMBER}\n"), format="csv", channel_field="channel"
        )


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_path_that_is_not_a_readable_file_is_a_file_error(tmp_path: Path, kind: str) -> None:
    """Missing files and directories are named as such."""
    path = tmp_path / "list.csv"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(
        RecipientsFileError, match="not found" if kind == "missing" else "directory"
    ):
        read_recipients(path, format="csv")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "xlsx"}, "format must be"),
        ({"format": "csv", "channel": "SMS"}, "channel must be"),
        ({"format": "csv", "delimiter": ";;"}, "delimiter must be"),
    ],
)
def test_impossible_arguments_are_value_errors(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """Settings no file could satisfy are the caller's bug, not a file error."""
    with pytest.raises(ValueError, match=message):
        read_recipients(write(tmp_path, "address\n"), **options)


# --- JSONL -----------------------------------------------------------------------------------


def test_jsonl_values_become_strings_and_null_means_absent(tmp_path: Path) -> None:
    """Numbers and booleans are stringified as the API expects; null fields are dropped."""
    line = {"address": NUMBER, "n": 3, "price": 1.5, "vip": True, "gone": None, "name": "Zoë"}
    (row,) = read(write(tmp_path, jsonl(line), "r.jsonl"))
    assert row.variables == {"n": "3", "price": "1.5", "vip": "true", "name": "Zoë"}


def test_jsonl_blank_lines_are_skipped_and_bad_lines_are_bad_rows(tmp_path: Path) -> None:
    """Each non-blank line is one row; what is not an object of flat values is bad_row."""
    content = jsonl(
        {"address": NUMBER},
        "",
        "   ",
        '{"address": "+447911123456", oops}',
        [1, 2],
        '"just text"',
        {"address": "+4915123456789", "tags": ["a"]},
        {"address": "+4915123456780", "more": {"x": 1}},
        {"name": "no address here"},
        {"address": 19143188063},
    )
    rows = read(write(tmp_path, content, "r.jsonl"), default_region="US")
    assert [r.row for r in rows] == list(range(1, 9))
    assert verdicts(rows) == [
        "valid", "bad_row", "bad_row", "bad_row", "bad_row", "bad_row", "invalid_address", "valid",
    ]  # fmt: skip
    details = [r.detail or "" for r in rows]
    assert details[1].startswith("line 4: not valid JSON")
    assert details[2] == "line 5: an array, not an object"
    assert details[3] == "line 6: a string, not an object"
    assert "'tags' is an array" in details[4]
    assert "'more' is an object" in details[5]
    assert rows[4].address == "+4915123456789"  # kept for the report
    assert details[6] == "no address in 'address'"
    assert rows[7].address == "+19143188063"


def test_jsonl_may_start_with_a_bom(tmp_path: Path) -> None:
    """A byte order mark before the first object is not data."""
    rows = read(write(tmp_path, BOM + jsonl({"address": NUMBER}).encode(), "r.jsonl"))
    assert verdicts(rows) == ["valid"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
        ("address,name\n+19143188062,Ann\n", "not JSONL: the first line is not JSON"),
        ('["+19143188062"]\n', "not JSONL of objects: the first line is an array"),
        (
            jsonl({"phone": NUMBER, "name": "Ann"}),
            "no object among the first 1 has a field 'address'; the first has 'phone', 'name'",
        ),
    ],
)
def test_a_jsonl_that_cannot_be_read_raises_one_clear_error(
    tmp_path: Path, content: str, problem: str
) -> None:
    """A file that is not JSONL of objects with the address field stops before any row."""
    with pytest.raises(RecipientsFileError) as caught:
        read_recipients(write(tmp_path, content, "r.jsonl"), format="jsonl")
    assert problem in str(caught.value)


def test_jsonl_needs_the_address_field_somewhere_early(tmp_path: Path) -> None:
    """Objects lacking the field are invalid rows as long as one of the first has it."""
    rows = read(write(tmp_path, jsonl({"name": "a"}, {"address": NUMBER}), "r.jsonl"))
    assert verdicts(rows) == ["invalid_address", "valid"]


def test_jsonl_with_a_channel_field(tmp_path: Path) -> None:
    """The channel field works in JSONL as a column does in CSV."""
    content = jsonl({"address": NUMBER, "channel": "whatsapp"}, {"address": NUMBER, "channel": 7})
    rows = read(write(tmp_path, content, "r.jsonl"), channel_field="channel")
    assert [(r.reason or r.verdict, r.channel) for r in rows] == [
        ("valid", "WHATSAPP"), ("invalid_channel", "7"),
    ]  # fmt: skip


# --- the Recipients object -------------------------------------------------------------------


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_closing_releases_the_file_and_store_and_is_idempotent(tmp_path: Path) -> None:
    """close() (or leaving the with block) gives back the list and the dedupe store, even
    if unread; the store never shows on disk, so a killed run leaves nothing behind."""
    work = tmp_path / "work"
    work.mkdir()
    before = open_files()
    recipients = read_recipients(
        write(tmp_path, f"address\n{NUMBER}\n"), format="csv", work_dir=work
    )
    assert isinstance(recipients, Recipients)
    assert open_files() > before
    assert list(work.iterdir()) == []
    recipients.close()
    recipients.close()
    assert open_files() == before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_reading_the_last_row_releases_the_store(tmp_path: Path) -> None:
    """An exhausted reader has already given back its file and temporary store."""
    path = write(tmp_path, f"address\n{NUMBER}\n")
    before = open_files()
    recipients = read_recipients(path, format="csv")
    assert [row.verdict for row in recipients] == ["valid"]
    assert open_files() == before


def test_rows_can_be_taken_one_at_a_time(tmp_path: Path) -> None:
    """The object is an iterator as well as an iterable."""
    with read_recipients(write(tmp_path, f"address\n{NUMBER}\nx\n"), format="csv") as recipients:
        assert next(recipients).verdict == "valid"
        assert next(recipients).reason == "invalid_address"
        with pytest.raises(StopIteration):
            next(recipients)


def test_verdict_and_reason_names_are_the_documented_ones() -> None:
    """The names the preview and the ledger rely on."""
    assert VERDICTS == ("valid", "invalid", "duplicate", "suppressed")
    assert set(REASONS) == {
        "invalid_address", "missing_variable", "bad_row", "unknown_pool", "invalid_channel",
    }  # fmt: skip


# --- properties ------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.sampled_from([*string.printable, "é", "ß", "中", "😀", "\u00a0", "\x00", '"']),
    max_size=12,
)
ADDRESSES = st.sampled_from([NUMBER, "+1 914-318-8062", "+447911123456", "(914) 318-8062", ""])
FIELD = st.one_of(TEXT, ADDRESSES)


@BOUNDED
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=5), max_size=40))
def test_random_csv_rows_never_raise_and_each_gets_one_verdict(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    """Any rows csv can write read back as exactly one verdict each, numbered 1..N."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["address", "name", "channel"])
    writer.writerows(rows)
    path = write(tmp_path_factory.mktemp("csv"), buffer.getvalue())
    result = read(
        path, channel_field="channel", default_region="US", required_variables=frozenset({"name"})
    )
    assert [r.row for r in result] == list(range(1, len(rows) + 1))
    assert all(
        r.verdict in VERDICTS and (r.reason in REASONS) == (r.verdict == "invalid") for r in result
    )
    valid = [(r.address, r.channel) for r in result if r.verdict == "valid"]
    assert len(valid) == len(set(valid))
    for row in result:
        if row.verdict == "duplicate":
            assert (row.address, row.channel) in valid


@BOUNDED
@given(
    lines=st.lists(st.text(alphabet=",;\"'\r\n\t +0123456789aé中\x00", max_size=30), max_size=30)
)
def test_random_text_as_csv_never_raises_and_numbers_rows_from_one(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    """Malformed CSV of any shape gives contiguous rows, each with one verdict."""
    path = write(tmp_path_factory.mktemp("raw"), "address,name\n" + "\n".join(lines))
    result = read(path, default_region="US")
    assert [r.row for r in result] == list(range(1, len(result) + 1))
    assert all(r.verdict in VERDICTS for r in result)


JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    ADDRESSES,
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
JSON_LINE = st.one_of(
    st.dictionaries(st.sampled_from(["address", "name", "x", "é"]), JSON_VALUE, max_size=4).map(
        lambda d: orjson.dumps(d).decode()
    ),
    JSON_VALUE.map(lambda v: orjson.dumps(v).decode()),
    TEXT.filter(lambda t: t.strip(" \t\r\n\x0b\x0c") != "").map(
        lambda t: t.replace("\n", " ").replace("\r", " ")
    ),
)


@BOUNDED
@given(lines=st.lists(JSON_LINE, max_size=40), blanks=st.lists(st.integers(0, 40), max_size=5))
def test_random_jsonl_lines_never_raise_and_each_gets_one_verdict(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], blanks: list[int]
) -> None:
    """Any non-blank line after a valid first object is exactly one row; blank lines none."""
    body = ['{"address": "+19143188062"}', *lines]
    for position in sorted(blanks, reverse=True):
        body.insert(min(position, len(body)) + 1, "  ")
    path = write(tmp_path_factory.mktemp("jsonl"), "\n".join(body) + "\n", "r.jsonl")
    result = read(path, default_region="GB", required_variables=frozenset({"name"}))
    assert [r.row for r in result] == list(range(1, len(lines) + 2))
    assert all(
        r.verdict in VERDICTS and all(isinstance(v, str) for v in r.variables.values())
        for r in result
    )


# --- resuming with kept keys -----------------------------------------------------------------

A, B, C = NUMBER, "+447911123456", "+4915123456789"
S = "+33612345678"  # on the suppression list below
SUPPRESSED = f"{S}\n"

# Every verdict, duplicates on both sides of any split point, a quoted newline (one holding a
# blank line too), blank lines, malformed rows of each kind and a channel column.
KEPT_CSV = (
    "address,name,channel\n"
    f"{A},Ann,PHONE\n"  # 1 valid
    "\n"
    f"{B},Bob,whatsapp\n"  # 2 valid
    f"+1 914-318-8062,Ann,phone\n"  # 3 duplicate of 1
    f'{A},"Ann\nWhatsApp",WHATSAPP\n'  # 4 valid: another channel
    f"{C},Cid\n"  # 5 bad_row: too few fields
    f"{S},Sue,PHONE\n"  # 6 suppressed
    f"{C},Cid,PHONE\n"  # 7 valid
    f'{B},"B"x,WHATSAPP\n'  # 8 bad_row: stray quote
    f"{B},Bob,WHATSAPP\n"  # 9 duplicate of 2
    "not a number,Nob,PHONE\n"  # 10 invalid_address
    f"{C},Cid,sms\n"  # 11 invalid_channel
    "\n"
    f"{A},Ann,WHATSAPP\n"  # 12 duplicate of 4
    f"{S},Sue,WHATSAPP\n"  # 13 suppressed
    f'{C},"C\n\nid",PHONE\n'  # 14 duplicate of 7
    f"{B},Bob,PHONE\n"  # 15 valid
    f"{B},,PHONE\n"  # 16 duplicate of 15
)
KEPT_JSONL = jsonl(
    {"address": A, "name": "Ann", "channel": "PHONE"},  # 1 valid
    "",
    {"address": B, "name": "Bob", "channel": "whatsapp"},  # 2 valid
    {"address": "+1 914-318-8062", "name": "Ann", "channel": "phone"},  # 3 duplicate of 1
    {"address": A, "name": "Ann", "channel": "WHATSAPP"},  # 4 valid
    '{"address": "+4915123456789", oops}',  # 5 bad_row
    {"address": S, "name": "Sue", "channel": "PHONE"},  # 6 suppressed
    {"address": C, "name": "Cid", "channel": "PHONE"},  # 7 valid
    [B, "WHATSAPP"],  # 8 bad_row
    {"address": B, "name": "Bob", "channel": "WHATSAPP"},  # 9 duplicate of 2
    {"address": "not a number", "channel": "PHONE"},  # 10 invalid_address
    {"address": C, "channel": "sms"},  # 11 invalid_channel
    "   ",
    {"address": A, "name": "Ann", "channel": "WHATSAPP"},  # 12 duplicate of 4
    {"address": S, "name": "Sue", "channel": "WHATSAPP"},  # 13 suppressed
    {"address": C, "tags": ["x"], "channel": "PHONE"},  # 14 bad_row
    {"address": C, "name": "Cid", "channel": "PHONE"},  # 15 duplicate of 7
    {"address": B, "name": "Bob", "channel": "PHONE"},  # 16 valid
)
KEPT_VERDICTS = {
    "csv": [
        "valid", "valid", "duplicate", "valid", "bad_row", "suppressed", "valid", "bad_row",
        "duplicate", "invalid_address", "invalid_channel", "duplicate", "suppressed",
        "duplicate", "valid", "duplicate",
    ],
    "jsonl": [
        "valid", "valid", "duplicate", "valid", "bad_row", "suppressed", "valid", "bad_row",
        "duplicate", "invalid_address", "invalid_channel", "duplicate", "suppressed",
        "bad_row", "duplicate", "valid",
    ],
}  # fmt: skip


def fingerprint_of(path: Path) -> str:
    """A fingerprint of the file's bytes, as the run command hands it to KeptKeys."""
    data = path.read_bytes()
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def kept_run(
    path: Path, keys: KeptKeys, take: int | None = None, **options: Any
) -> tuple[int, list[RecipientRow]]:
    """One run: open with `keys`, take `take` rows (all with None), close as the engine does
    when it stops early; `skipped` and the rows taken."""
    options.setdefault("format", "jsonl" if path.suffix == ".jsonl" else "csv")
    with read_recipients(path, kept=keys, **options) as rows:
        return rows.skipped, list(itertools.islice(rows, take))


def covered(store: Path) -> int:
    """The closed store's `covered`, read from its file; 0 when there is none."""
    if not store.exists():
        return 0
    with closing(sqlite3.connect(store)) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE name = 'covered'").fetchone()
    return value


class FlushOften(KeySet):
    """KeySet.kept writing at every new key, in the middle of a batch: the file then holds
    keys of rows past `covered`, and a crash image has something to lose."""

    @classmethod
    def kept(cls, path: Path, **options: Any) -> KeySet:
        options["flush_at"] = 1
        return super().kept(path, **options)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of three rows, so that one file gives many different `covered` values."""
    monkeypatch.setattr(listfile, "_BATCH", 3)


def write_kept_case(folder: Path, file_format: str) -> tuple[Path, dict[str, Any]]:
    """The recipients file of `file_format` above and the options it is read with."""
    content = KEPT_CSV if file_format == "csv" else KEPT_JSONL
    path = write(folder, content, f"recipients.{file_format}")
    suppression = write(folder, SUPPRESSED, "optouts.txt")
    return path, {"channel_field": "channel", "suppression": suppression}


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("flush", ["at-close", "often"])
@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_a_resumed_read_skips_settled_rows_and_answers_the_rest_as_a_full_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str, flush: str
) -> None:
    """Run one takes the first k rows and stops; run two, with any watermark j (beyond what
    the store covers too), leaves out min(j, covered) rows and gives every later row the very
    verdict and detail of one full read without kept keys."""
    if flush == "often":
        monkeypatch.setattr(recipients_module, "KeySet", FlushOften)
    path, options = write_kept_case(tmp_path, file_format)
    full = read(path, **options)
    assert verdicts(full) == KEPT_VERDICTS[file_format]
    assert [r.row for r in full] == list(range(1, 17))
    now = fingerprint_of(path)
    for k in range(len(full) + 1):
        store = tmp_path / f"after-{k}.keys"
        skipped, first = kept_run(path, KeptKeys(store, None, now), take=k, **options)
        assert (skipped, first) == (0, full[:k])
        done = covered(store)
        # Every row taken is covered; the store covers the whole batch of the last one.
        assert done == (0 if k == 0 else min(-(-k // 3) * 3, len(full)))
        # Watermarks below, at and beyond what run one took and what the store covers.
        for j in sorted({0, 1, k - 1, k, done - 1, done, done + 1, len(full) + 2} - {-1}):
            again = tmp_path / "again.keys"
            shutil.copyfile(store, again)
            skipped, rest = kept_run(path, KeptKeys(again, now, now, settled_through=j), **options)
            assert skipped == min(j, done), (k, j)
            assert rest == full[skipped:], (k, j)
            assert covered(again) == len(full)  # and now the store covers the whole file


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_a_store_left_by_a_crash_resumes_from_its_last_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str
) -> None:
    """What a killed run leaves (the file and its log as they were at that instant): the
    next run skips no row the store does not vouch for, and answers the rest right."""
    monkeypatch.setattr(recipients_module, "KeySet", FlushOften)
    path, options = write_kept_case(tmp_path, file_format)
    full = read(path, **options)
    now = fingerprint_of(path)
    seen_covered = set()
    for k in range(1, len(full) + 1):
        store = tmp_path / f"run-{k}.keys"
        crashed = tmp_path / f"crashed-{k}.keys"
        with read_recipients(
            path, format=file_format, kept=KeptKeys(store, None, now), **options
        ) as rows:
            assert list(itertools.islice(rows, k)) == full[:k]
            shutil.copyfile(store, crashed)
            shutil.copyfile(
                store.with_name(store.name + "-wal"), crashed.with_name(crashed.name + "-wal")
            )
        left = covered(crashed)
        assert left <= covered(store)  # a crash image is never ahead of a clean close
        seen_covered.add(left)
        skipped, rest = kept_run(path, KeptKeys(crashed, now, now, len(full)), **options)
        assert skipped == left
        assert rest == full[left:]
    assert len(seen_covered) > 3  # crashes between many different writes were tried


@pytest.mark.parametrize(
    "change",
    ["default_region", "required_variables", "suppression", "suppression_removed", "input"],
)
def test_other_reader_settings_or_input_read_everything_again(tmp_path: Path, change: str) -> None:
    """Keys kept by a read with other settings (or of an input not known to be a prefix of
    today's) are not used: nothing is skipped, the answers are a full read's, and the store
    then serves the next run with the new settings."""
    path = write(
        tmp_path,
        f"address,name\n{A},Ann\n(914) 318-8063,Nat\n{S},\n{B},Bob\n{A},Ann\n",
        "recipients.csv",
    )
    first_options: dict[str, Any] = {"suppression": write(tmp_path, SUPPRESSED, "optouts.txt")}
    store = tmp_path / "ledger.keys"
    was: str | None = fingerprint_of(path)
    skipped, first_rows = kept_run(path, KeptKeys(store, None, was), **first_options)
    assert skipped == 0
    assert covered(store) == 5
    second_options = dict(first_options)
    if change == "default_region":
        second_options["default_region"] = "US"
    elif change == "required_variables":
        second_options["required_variables"] = frozenset({"name"})
    elif change == "suppression":
        second_options["suppression"] = write(tmp_path, f"{S}\n{B}\n", "optouts.txt")
    elif change == "suppression_removed":
        del second_options["suppression"]
    else:
        was = None
        with path.open("a") as handle:
            handle.write(f"{C},Cid\n{B},Bob\n")
    now = fingerprint_of(path)
    full = read(path, **second_options)
    assert full != first_rows  # the change matters: old answers would be wrong answers
    skipped, rows = kept_run(path, KeptKeys(store, was, now, 99), **second_options)
    assert (skipped, rows) == (0, full)
    skipped, rows = kept_run(path, KeptKeys(store, now, now, 2), **second_options)
    assert (skipped, rows) == (2, full[2:])


def test_an_edited_input_is_never_answered_from_old_keys(tmp_path: Path) -> None:
    """With no earlier input to extend (input_was None), the keys of the old file are
    dropped: a number that moved to a later row is valid there, not a duplicate of a row
    that now holds someone else."""
    path = write(tmp_path, f"address\n{A}\n{B}\n", "recipients.csv")
    store = tmp_path / "ledger.keys"
    kept_run(path, KeptKeys(store, None, fingerprint_of(path)))
    path.write_text(f"address\n{C}\n{B}\n{A}\n")
    skipped, rows = kept_run(path, KeptKeys(store, None, fingerprint_of(path)))
    assert skipped == 0
    assert verdicts(rows) == ["valid", "valid", "valid"]
    assert rows == read(path)


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_rows_appended_after_a_run_are_checked_against_the_kept_keys(
    tmp_path: Path, file_format: str
) -> None:
    """The keys of the file as the last run saw it serve today's file with rows appended:
    new rows that repeat old ones are duplicates of those, the rest as a full read says."""
    path, options = write_kept_case(tmp_path, file_format)
    store = tmp_path / "ledger.keys"
    before = fingerprint_of(path)
    assert kept_run(path, KeptKeys(store, None, before), take=7, **options)[0] == 0
    done = covered(store)
    assert done == 9
    extra = (
        f"{B},Bob,PHONE\n{C},Cid,WHATSAPP\n{A},Ann,PHONE\n"
        if file_format == "csv"
        else jsonl(
            {"address": B, "channel": "PHONE"},
            {"address": C, "channel": "WHATSAPP"},
            {"address": A, "channel": "PHONE"},
        )
    )
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(extra)
    full = read(path, **options)
    assert verdicts(full[-3:]) == ["duplicate", "valid", "duplicate"]
    now = fingerprint_of(path)
    for j in (0, 4, 9, 12, 19):
        again = tmp_path / "again.keys"
        shutil.copyfile(store, again)
        skipped, rows = kept_run(path, KeptKeys(again, before, now, j), **options)
        assert skipped == min(j, done)
        assert rows == full[skipped:]


def test_a_store_that_cannot_be_made_is_a_file_error(tmp_path: Path) -> None:
    """No place to keep the keys (the ledger's folder is gone): one RecipientsFileError that
    names the store's path, before any row."""
    path = write(tmp_path, f"address\n{A}\n")
    store = tmp_path / "missing" / "ledger.keys"
    with pytest.raises(RecipientsFileError, match="cannot keep the addresses") as caught:
        read_recipients(path, format="csv", kept=KeptKeys(store, None, "x"))
    assert caught.value.path == str(store)


RESUME_ADDRESSES = [A, "+1 914-318-8062", B, C, S, "(914) 318-8063", "nope", ""]


@st.composite
def resume_rows(draw: st.DrawFn, file_format: str) -> list[str]:
    """Lines of a recipients file (each ending in a newline) from a small pool of addresses,
    so that duplicates are common, with blank and malformed lines among them."""
    lines = []
    for _ in range(draw(st.integers(0, 14))):
        address = draw(st.sampled_from(RESUME_ADDRESSES))
        channel = draw(st.sampled_from(["PHONE", "whatsapp", "sms"]))
        name = draw(st.sampled_from(["", "Ann", "Bo b"]))
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "bad", "odd"]))
        if file_format == "csv":
            line = {
                "row": f"{address},{name},{channel}",
                "blank": "",
                "bad": f"{address},{name}",
                "odd": f'{address},"{name}\n{name}",{channel}',
            }[kind]
        else:
            line = {
                "row": orjson.dumps(
                    {"address": address, "name": name, "channel": channel}
                ).decode(),
                "blank": "  ",
                "bad": "{oops",
                "odd": orjson.dumps({"address": address, "name": [name]}).decode(),
            }[kind]
        lines.append(line + "\n")
    return lines


@settings(max_examples=50, deadline=None, database=None)
@given(
    data=st.data(),
    file_format=st.sampled_from(["csv", "jsonl"]),
    batch=st.integers(1, 4),
    flush_often=st.booleans(),
    region=st.sampled_from([None, "US"]),
    required=st.sampled_from([frozenset(), frozenset({"name"})]),
)
def test_any_sequence_of_runs_answers_like_full_reads(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    file_format: str,
    batch: int,
    flush_often: bool,
    region: str | None,
    required: frozenset[str],
) -> None:
    """Random small files, runs that stop after any number of rows with any watermark, and
    rows appended between runs: each run skips exactly min(watermark, covered) rows and
    answers every other row as a full read of today's file without kept keys would."""
    folder = tmp_path_factory.mktemp("resume")
    head = (
        "address,name,channel\n"
        if file_format == "csv"
        else orjson.dumps({"address": A, "channel": "PHONE"}).decode() + "\n"
    )
    lines = data.draw(resume_rows(file_format))
    grown = data.draw(resume_rows(file_format))
    runs = data.draw(
        st.lists(
            st.tuples(st.one_of(st.none(), st.integers(0, 8)), st.integers(0, 16), st.booleans()),
            min_size=1,
            max_size=4,
        )
    )
    path = write(folder, head + "".join(lines), f"recipients.{file_format}")
    options: dict[str, Any] = {
        "channel_field": "channel",
        "default_region": region,
        "required_variables": required,
        "suppression": write(folder, SUPPRESSED, "optouts.txt"),
    }
    store = folder / "ledger.keys"
    was: str | None = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(listfile, "_BATCH", batch)
        if flush_often:
            patch.setattr(recipients_module, "KeySet", FlushOften)
        for take, through, grow in [*runs, (None, 99, False)]:
            if grow and grown:
                with path.open("a", encoding="utf-8", newline="") as handle:
                    handle.write("".join(grown))
                grown = []
            now = fingerprint_of(path)
            full = read(path, **options)
            before = covered(store)
            skipped, rows = kept_run(path, KeptKeys(store, was, now, through), take, **options)
            assert skipped == min(through, before)
            end = len(full) if take is None else skipped + take
            assert rows == full[skipped:end]
            after = covered(store)
            assert after <= len(full)
            assert after >= (before if not rows else max(before, rows[-1].row))
            was = now
    assert covered(store) == len(full)
