"""Campaign files: every key and default, every refusal, and a hash that ignores cosmetics."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from campaign.exceptions import CampaignError, CampaignFileError
from campaign.spec import CampaignSpec, PoolSpec, load_spec

SAMPLES = Path(__file__).resolve().parent.parent / "sample_campaigns"
POOL = "comms_senderpool_01kdvdna000000000000000001"
OTHER_POOL = "comms_senderpool_01kdvdna00000000000000000a"
DROP = object()  # in an override: remove this key from the base campaign

BASE: dict[str, Any] = {
    "name": "spring-sale",
    "recipients": {"path": "people.csv"},
    "sender": {"pool": POOL},
    "message": {"text": "Hi {{ first_name | default: 'there' }}"},
    "sending": {"rate_per_s": 50},
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def toml_of(document: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the tests: scalars first, then one [table] per dict."""
    lines = [f"{k} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for key, value in document.items():
        if isinstance(value, dict):
            bare = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)
            name = f"{prefix}.{bare}" if prefix else bare
            if any(not isinstance(v, dict) for v in value.values()) or not value:
                lines.append(f"\n[{name}]")
            lines.append(toml_of(value, name))
    return "\n".join(lines)


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is DROP:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with the files campaigns refer to."""
    (tmp_path / "people.csv").write_text("address,first_name\n+12065550101,Ada\n")
    (tmp_path / "people.jsonl").write_text('{"address": "+12065550101"}\n')
    (tmp_path / "people.xlsx").write_bytes(b"PK")
    (tmp_path / "people.tsv").write_text("address\n+12065550101\n")
    (tmp_path / "optouts.csv").write_text("address\n+12065550102\n")
    (tmp_path / "a-folder").mkdir()
    return tmp_path


def write(folder: Path, override: dict[str, Any] | None = None, text: str | None = None) -> Path:
    path = folder / "campaign.toml"
    path.write_text(text if text is not None else toml_of(merged(BASE, override or {})))
    return path


def load(folder: Path, override: dict[str, Any] | None = None) -> CampaignSpec:
    return load_spec(write(folder, override))


def test_a_minimal_campaign_gets_every_default(folder: Path) -> None:
    """Only name, recipients.path, the pool, the text and the rate are needed."""
    spec = load(folder)
    assert spec.name == "spring-sale"
    assert spec.source_path == folder.resolve() / "campaign.toml"
    r = spec.recipients
    assert r.path == folder.resolve() / "people.csv"
    assert (r.format, r.address, r.channel, r.channel_column) == ("csv", "address", "PHONE", None)
    assert (r.default_region, r.suppression, r.pool_column) == (None, None, None)
    assert (r.delimiter, r.encoding) == (",", "utf-8")
    assert spec.pools == {"default": PoolSpec(POOL, 50.0)}
    assert spec.message.text == BASE["message"]["text"]
    assert (spec.sending.rate_per_s, spec.sending.batch_size, spec.sending.concurrency) == (
        50.0,
        100,
        8,
    )
    assert spec.ledger_path == folder.resolve() / "spring-sale.ledger.jsonl"
    assert spec.api_base_url is None
    assert re.fullmatch(r"[0-9a-f]{64}", spec.spec_hash)


def test_every_key_of_the_issue_example_is_read(folder: Path) -> None:
    """Each documented key lands in its field, normalised."""
    (folder / "ledgers").mkdir()
    spec = load(
        folder,
        {
            "recipients": {
                "address": "phone",
                "channel": "whatsapp",
                "default_region": "gb",
                "suppression": "optouts.csv",
                "delimiter": ";",
                "encoding": "UTF8",
                "format": "CSV",
            },
            "sending": {"rate_per_s": 2.5, "batch_size": 10_000, "concurrency": 1},
            "ledger": {"path": "ledgers/x.jsonl"},
            "api": {"base_url": "https://comms.twilio.com/v1/"},
        },
    )
    r = spec.recipients
    assert (r.address, r.channel, r.default_region) == ("phone", "WHATSAPP", "GB")
    assert r.suppression == folder.resolve() / "optouts.csv"
    assert (r.format, r.delimiter, r.encoding) == ("csv", ";", "utf-8")
    assert (spec.sending.rate_per_s, spec.sending.batch_size, spec.sending.concurrency) == (
        2.5,
        10_000,
        1,
    )
    assert spec.ledger_path == folder.resolve() / "ledgers" / "x.jsonl"
    assert spec.api_base_url == "https://comms.twilio.com/v1"


@pytest.mark.parametrize(
    ("path", "expected_format", "expected_delimiter"),
    [
        ("people.csv", "csv", ","),
        ("people.tsv", "csv", "\t"),
        ("people.jsonl", "jsonl", ","),
    ],
)
def test_the_format_comes_from_the_extension(
    folder: Path, path: str, expected_format: str, expected_delimiter: str
) -> None:
    """.csv, .tsv (tab-delimited) and .jsonl need no `format` key."""
    spec = load(folder, {"recipients": {"path": path}})
    assert (spec.recipients.format, spec.recipients.delimiter) == (
        expected_format,
        expected_delimiter,
    )


def test_an_explicit_format_reads_any_extension(folder: Path) -> None:
    """`format` overrides what the extension says."""
    spec = load(folder, {"recipients": {"path": "people.xlsx", "format": "jsonl"}})
    assert spec.recipients.format == "jsonl"


def test_pools_tables_with_a_pool_column(folder: Path) -> None:
    """[pools.<alias>] keep file order; rate_per_s falls back to [sending]."""
    spec = load(
        folder,
        {
            "sender": DROP,
            "pools": {"east": {"id": POOL, "rate_per_s": 20}, "west": {"id": OTHER_POOL}},
            "recipients": {"pool_column": "pool", "channel_column": "channel"},
        },
    )
    assert spec.pools == {"east": PoolSpec(POOL, 20.0), "west": PoolSpec(OTHER_POOL, 50.0)}
    assert list(spec.pools) == ["east", "west"]
    assert (spec.recipients.pool_column, spec.recipients.channel_column) == ("pool", "channel")
    assert spec.recipients.channel is None


def test_pools_that_all_set_their_rate_need_no_sending_rate(folder: Path) -> None:
    """sending.rate_per_s may be left out when every pool has its own."""
    spec = load(
        folder, {"sender": DROP, "sending": DROP, "pools": {"only": {"id": POOL, "rate_per_s": 3}}}
    )
    assert spec.pools == {"only": PoolSpec(POOL, 3.0)}
    assert spec.sending.rate_per_s is None


def test_a_bom_and_windows_line_endings_are_fine(folder: Path) -> None:
    """Editors on Windows save TOML with a BOM and CRLF."""
    text = "\ufeff" + toml_of(BASE).replace("\n", "\r\n")
    assert load_spec(write(folder, text=text)).name == "spring-sale"


@pytest.mark.parametrize("sample", ["spring-sale.toml", "multichannel.toml"])
def test_the_sample_campaigns_load(sample: str) -> None:
    """Both shipped samples are valid campaign files."""
    spec = load_spec(SAMPLES / sample)
    assert spec.recipients.path.exists()
    assert spec.recipients.suppression is not None


def test_the_multichannel_sample_uses_channel_and_pool_columns() -> None:
    """The JSONL sample routes by column across two pool aliases."""
    spec = load_spec(SAMPLES / "multichannel.toml")
    assert spec.recipients.format == "jsonl"
    assert spec.recipients.channel_column == "channel"
    assert spec.recipients.pool_column == "pool"
    assert len(spec.pools) == 2


# (override, dotted key named in the message, words the message must contain)
ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"colour": "red"}, "colour", "unknown key"),
    ({"sending": {"batch_sise": 5}}, "sending.batch_sise", "did you mean 'batch_size'"),
    ({"recipients": {"adress": "phone"}}, "recipients.adress", "did you mean 'address'"),
    ({"sender": DROP, "pools": {"a": {"id": POOL, "rate": 1}}}, "pools.a.rate", "unknown key"),
    ({"name": DROP}, "name", "missing"),
    ({"name": 7}, "name", "must be a string, got an integer (7)"),
    ({"name": "spring sale"}, "name", "cannot be a campaign name"),
    ({"name": "x" * 65}, "name", "cannot be a campaign name"),
    ({"name": "sale/2026"}, "name", "letters, digits and . _ ~ -"),
    ({"name": "  "}, "name", "is empty"),
    ({"recipients": "people.csv"}, "recipients", "must be a table, got a string"),
    ({"recipients": DROP}, "recipients", "missing"),
    ({"recipients": {"path": DROP}}, "recipients.path", "missing"),
    ({"recipients": {"path": "nobody.csv"}}, "recipients.path", "does not exist"),
    ({"recipients": {"path": "a-folder"}}, "recipients.path", "is not a file"),
    ({"recipients": {"path": "people.xlsx"}}, "recipients.path", 'recipients.format = "csv"'),
    ({"recipients": {"format": "xlsx"}}, "recipients.format", "is not a format"),
    ({"recipients": {"suppression": "optout.csv"}}, "recipients.suppression", "does not exist"),
    ({"recipients": {"channel": "SMS"}}, "recipients.channel", 'use "PHONE"'),
    ({"recipients": {"channel": "EMAIL"}}, "recipients.channel", "not a recipient channel"),
    ({"recipients": {"channel": 1}}, "recipients.channel", "must be a string"),
    (
        {"recipients": {"channel": "PHONE", "channel_column": "ch"}},
        "recipients.channel_column",
        "keep one",
    ),
    ({"recipients": {"default_region": "XX"}}, "recipients.default_region", "not a known region"),
    ({"recipients": {"encoding": "klingon"}}, "recipients.encoding", "not a text encoding"),
    ({"recipients": {"encoding": "base64"}}, "recipients.encoding", "not a text encoding"),
    ({"recipients": {"delimiter": ";;"}}, "recipients.delimiter", "cannot be a delimiter"),
    ({"recipients": {"delimiter": '"'}}, "recipients.delimiter", "cannot be a delimiter"),
    (
        {"recipients": {"path": "people.jsonl", "delimiter": ";"}},
        "recipients.delimiter",
        "only applies to CSV",
    ),
    ({"recipients": {"pool_column": "pool"}}, "recipients.pool_column", "needs [pools.<alias>]"),
    (
        {
            "sender": DROP,
            "pools": {"a": {"id": POOL}},
            "recipients": {"address": "phone", "pool_column": "phone"},
        },
        "recipients.pool_column",
        "already recipients.address",
    ),
    ({"sender": {"pool": DROP}}, "sender.pool", "missing"),
    ({"sender": {"pool": "pool-1"}}, "sender.pool", "not a Sender Pool id"),
    (
        {"sender": {"pool": "comms_sender_01kdvdna000000000000000001"}},
        "sender.pool",
        "a sender id, not a Sender Pool id",
    ),
    ({"sender": {"pool": POOL.upper()}}, "sender.pool", "not a Sender Pool id"),
    ({"sender": DROP}, "sender", "no Sender Pool"),
    ({"pools": {"a": {"id": POOL}}}, "pools", "both [sender] and [pools.*]"),
    ({"sender": DROP, "pools": {"a": {"rate_per_s": 1}}}, "pools.a.id", "missing"),
    ({"sender": DROP, "pools": {"a": {"id": "comms_senderpool_x"}}}, "pools.a.id", "not a Sender"),
    ({"sender": DROP, "pools": {"a b": {"id": POOL}}}, 'pools."a b"', "cannot be a pool alias"),
    ({"sender": DROP, "pools": {"a": POOL}}, "pools.a", "must be a table"),
    (
        {"sender": DROP, "sending": DROP, "pools": {"a": {"id": POOL}}},
        "pools.a.rate_per_s",
        "missing",
    ),
    (
        {"sender": DROP, "pools": {"a": {"id": POOL}, "b": {"id": POOL}}},
        "recipients.pool_column",
        "missing: there are 2 pools",
    ),
    ({"sending": DROP}, "sending.rate_per_s", "missing"),
    ({"sending": {"rate_per_s": 0}}, "sending.rate_per_s", "must be more than 0"),
    ({"sending": {"rate_per_s": -1.5}}, "sending.rate_per_s", "must be more than 0"),
    ({"sending": {"rate_per_s": "fast"}}, "sending.rate_per_s", "must be a number, got a string"),
    ({"sending": {"rate_per_s": True}}, "sending.rate_per_s", "got a boolean"),
    ({"sending": {"batch_size": 0}}, "sending.batch_size", "use 1 to 10000"),
    ({"sending": {"batch_size": 10_001}}, "sending.batch_size", "out of range"),
    ({"sending": {"batch_size": 100.0}}, "sending.batch_size", "whole number, got a number"),
    ({"sending": {"concurrency": 0}}, "sending.concurrency", "out of range"),
    ({"message": DROP}, "message", "missing"),
    ({"message": {"text": DROP}}, "message.text", "missing"),
    ({"message": {"text": ""}}, "message.text", "is empty"),
    ({"message": {"text": "Hi {{ name "}}, "message.text", "Liquid"),
    ({"message": {"text": "Hi {% if x %}"}}, "message.text", "endif"),
    ({"message": {"text": "a\nb {{ x | shout }}"}}, "message.text", "unknown filter 'shout'"),
    ({"message": {"text": "{{ x | upcase: 1 }}"}}, "message.text", "line 1, column 8"),
    ({"ledger": {"path": "nowhere/x.jsonl"}}, "ledger.path", "folder"),
    ({"api": {"base_url": "ftp://example.com"}}, "api.base_url", "http"),
    ({"api": {"base_url": "https://user:pw@example.com"}}, "api.base_url", "user name"),
    ({"api": {"auth_token": "s3cr3t"}}, "api.auth_token", "TWILIO_AUTH_TOKEN"),
    ({"account_sid": "AC123"}, "account_sid", "credentials are never read"),
    ({"twilio": {"api-key": "SK1"}}, "twilio.api-key", "TWILIO_API_KEY"),
    (
        {"sender": DROP, "pools": {"a": {"id": POOL, "password": "x"}}},
        "pools.a.password",
        "environment",
    ),
    ({"sender": DROP, "pools": {"token": "x"}}, "pools.token", "credentials are never read"),
]


def test_a_pool_alias_may_look_like_a_secret(folder: Path) -> None:
    """[pools.token] is a name the user chose, not a credential."""
    spec = load(folder, {"sender": DROP, "pools": {"token": {"id": POOL}}})
    assert list(spec.pools) == ["token"]


@pytest.mark.parametrize(("override", "key", "words"), ERRORS)
def test_each_mistake_is_one_error_naming_file_and_key(
    folder: Path, override: dict[str, Any], key: str, words: str
) -> None:
    """The message starts with `<file>: <key>: ` and says what is wrong and what to do."""
    path = write(folder, override)
    with pytest.raises(CampaignFileError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message
    assert caught.value.key == key
    assert "; " in message  # every message says what to do


def test_a_secret_value_never_appears_in_the_message(folder: Path) -> None:
    """The credentials refusal does not echo what was written."""
    with pytest.raises(CampaignFileError) as caught:
        load(folder, {"api": {"auth_token": "hunter2-secret"}})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('name = "a"\n[recipients]\npath = people.csv\n', 3, 8),
        ('name = "a"\nname = "b"\n', 2, 11),
        ('name = "a\n', 1, 10),
    ],
)
def test_a_toml_syntax_error_names_line_and_column(
    folder: Path, text: str, line: int, column: int
) -> None:
    """tomllib's position becomes `<file>: line L, column C: invalid TOML: ...`."""
    path = write(folder, text=text)
    with pytest.raises(CampaignFileError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: line {line}, column {column}: invalid TOML")
    assert (caught.value.line, caught.value.column) == (line, column)


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read the campaign file"), (b"name = '\xff'", "not UTF-8")],
)
def test_an_unreadable_file_names_itself(folder: Path, content: bytes | None, words: str) -> None:
    """A missing or non-UTF-8 file is one CampaignFileError without a key."""
    path = folder / "campaign.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CampaignFileError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: {words}")
    assert caught.value.key is None


def test_campaign_file_errors_are_campaign_errors() -> None:
    """The CLI catches every campaign-file problem as a CampaignError."""
    assert CampaignFileError.__bases__ == (CampaignError,)


COSMETIC = [
    "# a comment\n" + toml_of(BASE),
    toml_of(BASE).replace(" = ", "=").replace("\n", "\n\n"),
    toml_of(BASE).replace("rate_per_s = 50", "rate_per_s = 50.0"),
    toml_of(merged(BASE, {"sending": {"batch_size": 100, "concurrency": 8}})),
    toml_of(merged(BASE, {"recipients": {"channel": "phone", "address": "address"}})),
    toml_of(merged(BASE, {"ledger": {"path": "./spring-sale.ledger.jsonl"}})),
    toml_of(dict(reversed(list(BASE.items())))),
    toml_of(BASE).replace('path = "people.csv"', 'path = "a-folder/../people.csv"'),
    toml_of(BASE).replace('"spring-sale"', "'spring-sale'"),
]


@pytest.mark.parametrize("text", COSMETIC)
def test_cosmetic_edits_keep_the_spec_hash(folder: Path, text: str) -> None:
    """Comments, layout, key order, quoting, 50 vs 50.0 and spelled-out defaults don't count."""
    reference = load(folder).spec_hash
    assert load_spec(write(folder, text=text)).spec_hash == reference


@pytest.mark.parametrize(
    "override",
    [
        {"name": "summer-sale"},
        {"message": {"text": "Hello {{ first_name | default: 'there' }}"}},
        {"sending": {"rate_per_s": 51}},
        {"sending": {"batch_size": 99}},
        {"recipients": {"path": "people.jsonl"}},
        {"recipients": {"address": "phone"}},
        {"recipients": {"default_region": "US"}},
        {"sender": {"pool": OTHER_POOL}},
        {"api": {"base_url": "http://127.0.0.1:8765/preview"}},
    ],
)
def test_a_value_change_changes_the_spec_hash(folder: Path, override: dict[str, Any]) -> None:
    """Anything that changes what the campaign means gives a new hash."""
    assert load(folder, override).spec_hash != load(folder).spec_hash


def test_the_spec_hash_follows_the_resolved_recipients_path(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same relative path in another folder is another list, so another hash."""
    other = tmp_path_factory.mktemp("other")
    (other / "people.csv").write_text("address\n")
    assert load(other).spec_hash != load(folder).spec_hash
