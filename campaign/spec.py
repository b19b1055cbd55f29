"""Campaign files: read one TOML file, check every key, fill in the defaults.

A campaign file (paths are relative to the file's folder; ``~`` is expanded)::

    name = "spring-sale"             # required; ^[a-zA-Z0-9._~-]{1,64}$ (a tag value, the ledger's name)
    [recipients]
    path = "spring-sale.csv"         # required; must exist
    format = "csv"                   # "csv" or "jsonl"; default from the extension
                                     #   (.csv, .tsv -> csv with a tab delimiter, .jsonl, .ndjson)
    address = "phone"                # column/field holding the address; default "address"
    channel = "PHONE"                # "PHONE" or "WHATSAPP" (any case); default "PHONE"
    channel_column = "channel"       # instead of `channel`: the column naming each row's channel
    default_region = "US"            # how to read national numbers; default none (E.164 only)
    suppression = "optouts.csv"      # addresses never to message; must exist; default none
    pool_column = "pool"             # the column naming each row's [pools] alias
    delimiter = ","                  # CSV only; one character; default "," ("\\t" for .tsv)
    encoding = "utf-8"               # a text codec; default "utf-8" (the reader skips a BOM)
    [sender]
    pool = "comms_senderpool_..."    # the one Sender Pool; it becomes the alias "default"
    [pools.east]                     # instead of [sender]: one table per pool alias
    id = "comms_senderpool_..."      #   required
    rate_per_s = 20                  #   default sending.rate_per_s
    [message]
    text = "Hi {{ first_name | default: 'there' }}!"   # required; Liquid the API can render
    [sending]
    rate_per_s = 50                  # recipients/s per pool; > 0; required unless every
                                     #   [pools.*] table sets its own
    batch_size = 100                 # recipients per request, 1..10000; default 100
    concurrency = 8                  # requests in flight, 1..1000; default 8
    [ledger]
    path = "spring-sale.ledger.jsonl"  # default "<name>.ledger.jsonl" beside the campaign file
    [api]
    base_url = "https://comms.twilio.com/preview"  # default: $CAMPAIGN_API_BASE_URL or the public API

Rules: ``[sender]`` or ``[pools.*]``, never both; several pools need
``recipients.pool_column``, and ``pool_column`` needs ``[pools.*]``; ``channel`` or
``channel_column``, never both. Unknown keys and wrong types are errors. Credentials are
never read from a campaign file: a key such as ``auth_token`` gets a message pointing to
the ``TWILIO_*`` environment variables. Every problem raises one ``CampaignFileError``
reading ``<file>: <key>: <what is wrong>; <what to do>``.

``spec_hash`` is the SHA-256 of the *normalised* spec (defaults filled in, paths
resolved, keys sorted), so comments, layout, key order, ``50`` vs ``50.0`` or spelling out
a default do not change it, and any change to what the campaign means does.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import math
import re
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import phonenumbers

from campaign.credentials import resolve_base_url
from campaign.exceptions import CampaignFileError, ConfigurationError, TemplateError
from campaign.templating import MessageTemplate

__all__ = [
    "DEFAULT_POOL_ALIAS",
    "MAX_BATCH_SIZE",
    "CampaignSpec",
    "Channel",
    "MessageSpec",
    "PoolSpec",
    "RecipientsFormat",
    "RecipientsSpec",
    "SendingSpec",
    "load_spec",
]

Channel = Literal["PHONE", "WHATSAPP"]
RecipientsFormat = Literal["csv", "jsonl"]

DEFAULT_POOL_ALIAS: Final = "default"
MAX_BATCH_SIZE: Final = 10_000  # the API's limit of recipients per POST /Messages
MAX_CONCURRENCY: Final = 1_000

_NAME: Final = re.compile(r"[a-zA-Z0-9._~-]{1,64}")
_POOL_ID: Final = re.compile(r"comms_senderpool_[0-7][0-9a-hjkmnp-tv-z]{25}")
_ANY_ID: Final = re.compile(r"comms_([a-z]+)_\w+")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
# Whole words of a snake_case key, so that e.g. "inside" is not taken for "sid".
_SECRET_KEY: Final = re.compile(
    r"(?:^|_)(?:auth_?token|token|secret|password|passwd|sid|credentials?)(?:_|$)|api_?key"
)
_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_EXTENSIONS: Final[dict[str, tuple[RecipientsFormat, str]]] = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".jsonl": ("jsonl", ","),
    ".ndjson": ("jsonl", ","),
}
_CREDENTIALS_HINT: Final = (
    "delete it and set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and "
    "TWILIO_API_SECRET) in the environment"
)


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One Sender Pool and the pace (recipients per second) it is sent at."""

    id: str
    rate_per_s: float


@dataclass(frozen=True, slots=True)
class RecipientsSpec:
    """Where the recipients are and how to read them; exactly one of channel/channel_column is set."""

    path: Path
    format: RecipientsFormat
    address: str = "address"
    channel: Channel | None = "PHONE"
    channel_column: str | None = None
    default_region: str | None = None
    suppression: Path | None = None
    pool_column: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """The Liquid text the API renders per recipient (already checked to compile)."""

    text: str


@dataclass(frozen=True, slots=True)
class SendingSpec:
    """How fast to send; `rate_per_s` is None only when every [pools.*] table sets its own."""

    rate_per_s: float | None
    batch_size: int = 100
    concurrency: int = 8


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A whole campaign file, validated, with defaults filled in and paths absolute."""

    name: str
    source_path: Path
    recipients: RecipientsSpec
    pools: dict[str, PoolSpec]
    message: MessageSpec
    sending: SendingSpec
    ledger_path: Path
    api_base_url: str | None
    spec_hash: str


def load_spec(path: Path) -> CampaignSpec:
    """Read and check a campaign file; CampaignFileError names the file, the key and the fix."""
    shown = str(path)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except OSError as err:
        problem = f"cannot read the campaign file: {err.strerror or err}"
        raise CampaignFileError(shown, problem, hint="check the path") from None
    except UnicodeDecodeError as err:
        problem = f"not UTF-8 text (byte {err.start})"
        raise CampaignFileError(shown, problem, hint="save the file as UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _syntax_error(shown, str(err)) from None
    _refuse_credentials(shown, document, "")
    return _Loader(shown, path.expanduser().resolve()).campaign(_Table(shown, "", document, _TOP))


def _syntax_error(shown: str, message: str) -> CampaignFileError:
    hint = "fix the TOML syntax there (strings need double quotes; see https://toml.io)"
    # tomllib (3.11) only puts the position in the message text.
    found = _TOML_POSITION.search(message)
    if found is None:
        return CampaignFileError(shown, f"invalid TOML: {message}", hint=hint)
    problem = f"invalid TOML: {message[: found.start()]}"
    return CampaignFileError(shown, problem, hint=hint, line=int(found[1]), column=int(found[2]))


def _refuse_credentials(shown: str, table: dict[str, Any], prefix: str) -> None:
    """Reject secret-looking keys anywhere, before any other check could echo their value."""
    for key, value in table.items():
        dotted = _dotted(prefix, key)
        # Pool aliases (tables under [pools]) are names the user picks, not settings.
        alias = prefix == "pools" and isinstance(value, dict)
        if not alias and _SECRET_KEY.search(key.lower().replace("-", "_")):
            problem = "credentials are never read from a campaign file"
            raise CampaignFileError(shown, problem, key=dotted, hint=_CREDENTIALS_HINT)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _refuse_credentials(shown, item, dotted)


def _dotted(prefix: str, key: str) -> str:
    shown = key if _BARE_KEY.fullmatch(key) else orjson.dumps(key).decode()
    return f"{prefix}.{shown}" if prefix else shown


def _kind(value: object) -> str:
    """How TOML names the type of a value, and the value itself, for messages."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds |= {dict: "a table", list: "an array"}
    kind = next((name for cls, name in kinds.items() if isinstance(value, cls)), "a date/time")
    text = orjson.dumps(value, default=str).decode()  # TOML-like: true, "text", 1.0
    return f"{kind} ({text if len(text) <= 60 else text[:57] + '...'})"


class _Table:
    """One TOML table being read: typed getters that know the file and the dotted key."""

    def __init__(self, shown: str, prefix: str, data: dict[str, Any], allowed: tuple[str, ...]):
        self.shown, self.prefix, self.data = shown, prefix, data
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "remove it"
                raise self.error(key, "unknown key", f"{hint} (known here: {', '.join(allowed)})")

    def key(self, name: str) -> str:
        return _dotted(self.prefix, name)

    def error(self, name: str, problem: str, hint: str = "") -> CampaignFileError:
        return CampaignFileError(self.shown, problem, key=self.key(name), hint=hint)

    def has(self, name: str) -> bool:
        return name in self.data

    def optional(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_kind(value)}", 'quote it: "..."')
        if not value.strip():
            raise self.error(name, "is empty", "give it a value or remove the key")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.optional(name) or default
        if value is None:
            raise self.error(name, "missing", f'add {self.key(name)} = "..."')
        return value

    def number(self, name: str, default: float | None) -> float | None:
        value = self.data.get(name, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.error(name, f"must be a number, got {_kind(value)}", "e.g. 50 or 0.5")
        if value is not None and not (math.isfinite(value) and value > 0):
            raise self.error(name, f"must be more than 0, got {value}", "use e.g. 10 or 0.5")
        return None if value is None else float(value)

    def integer(self, name: str, default: int, high: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            hint = f"use a whole number from 1 to {high}, without quotes"
            raise self.error(name, f"must be a whole number, got {_kind(value)}", hint)
        if not 1 <= value <= high:
            raise self.error(name, f"{value} is out of range", f"use 1 to {high}")
        return value

    def table(self, name: str, allowed: tuple[str, ...], *, required: bool = False) -> _Table:
        value = self.data.get(name)
        if value is None and required:
            raise self.error(name, "missing", f"add a [{self.key(name)}] table")
        if value is not None and not isinstance(value, dict):
            hint = f"write it as a [{self.key(name)}] table"
            raise self.error(name, f"must be a table, got {_kind(value)}", hint)
        return _Table(self.shown, self.key(name), value or {}, allowed)


_TOP: Final = ("name", "recipients", "sender", "pools", "message", "sending", "ledger", "api")
_RECIPIENTS: Final = (
    *("path", "format", "address", "channel", "channel_column", "default_region"),
    *("suppression", "pool_column", "delimiter", "encoding"),
)
_SENDING: Final = ("rate_per_s", "batch_size", "concurrency")


class _Loader:
    """Builds a CampaignSpec from a parsed document, section by section."""

    def __init__(self, shown: str, source: Path) -> None:
        self.shown, self.source, self.base = shown, source, source.parent

    def campaign(self, top: _Table) -> CampaignSpec:
        name = top.string("name")
        if not _NAME.fullmatch(name):
            hint = "use 1 to 64 letters, digits and . _ ~ - (it becomes a message tag)"
            raise top.error("name", f"{name!r} cannot be a campaign name", hint)
        sending = self.sending(top.table("sending", _SENDING))
        pools = self.pools(top, sending)
        recipients = self.recipients(top, pools)
        message = self.message(top.table("message", ("text",), required=True))
        ledger_path = self.path(top.table("ledger", ("path",)), "path", must_exist=False)
        spec = CampaignSpec(
            name=name,
            source_path=self.source,
            recipients=recipients,
            pools=pools,
            message=message,
            sending=sending,
            ledger_path=ledger_path or self.base / f"{name}.ledger.jsonl",
            api_base_url=self.base_url(top.table("api", ("base_url",))),
            spec_hash="",
        )
        return _with_hash(spec)

    def path(self, table: _Table, name: str, *, must_exist: bool = True) -> Path | None:
        raw = table.optional(name)
        if raw is None:
            return None
        resolved = (self.base / Path(raw).expanduser()).resolve()
        # A ledger is created by the run, so only its folder has to exist already.
        target = resolved if must_exist else resolved.parent
        if not target.exists():
            what = "file" if must_exist else "folder"
            hint = "paths are relative to the campaign file's folder"
            raise table.error(name, f"{what} {target} does not exist", hint)
        if must_exist and not resolved.is_file():
            raise table.error(name, f"{resolved} is not a file", "name a file, not a folder")
        return resolved

    def sending(self, table: _Table) -> SendingSpec:
        return SendingSpec(
            rate_per_s=table.number("rate_per_s", None),
            batch_size=table.integer("batch_size", 100, MAX_BATCH_SIZE),
            concurrency=table.integer("concurrency", 8, MAX_CONCURRENCY),
        )

    def pools(self, top: _Table, sending: SendingSpec) -> dict[str, PoolSpec]:
        if top.has("sender") and top.has("pools"):
            raise top.error("pools", "both [sender] and [pools.*] are given", "keep one of them")
        if top.has("sender"):
            pool_id = self.pool_id(top.table("sender", ("pool",)), "pool")
            if sending.rate_per_s is None:
                hint = "add [sending] rate_per_s = <recipients per second the pool can deliver>"
                raise CampaignFileError(self.shown, "missing", key="sending.rate_per_s", hint=hint)
            return {DEFAULT_POOL_ALIAS: PoolSpec(pool_id, sending.rate_per_s)}
        pools = top.table("pools", tuple(top.data.get("pools") or ()))
        if not pools.data:
            hint = 'add [sender] with pool = "comms_senderpool_..." (or [pools.<alias>] tables)'
            raise top.error("sender", "no Sender Pool is given", hint)
        result: dict[str, PoolSpec] = {}
        for alias in pools.data:
            if not _NAME.fullmatch(alias):
                hint = "use 1 to 64 letters, digits and . _ ~ -"
                raise pools.error(alias, "cannot be a pool alias", hint)
            table = pools.table(alias, ("id", "rate_per_s"))
            rate = table.number("rate_per_s", sending.rate_per_s)
            if rate is None:
                hint = "set it here, or sending.rate_per_s for every pool"
                raise table.error("rate_per_s", "missing", hint)
            result[alias] = PoolSpec(self.pool_id(table, "id"), rate)
        return result

    def pool_id(self, table: _Table, name: str) -> str:
        value = table.string(name)
        if _POOL_ID.fullmatch(value):
            return value
        other = _ANY_ID.fullmatch(value)
        kind = f"a {other[1]} id, not" if other and other[1] != "senderpool" else "not"
        hint = "copy the id from `campaign pools list` (comms_senderpool_...)"
        raise table.error(name, f"{value!r} is {kind} a Sender Pool id", hint)

    def recipients(self, top: _Table, pools: dict[str, PoolSpec]) -> RecipientsSpec:
        table = top.table("recipients", _RECIPIENTS, required=True)
        path = self.path(table, "path")
        if path is None:
            raise table.error("path", "missing", 'add recipients.path = "<file>.csv" (or .jsonl)')
        file_format, delimiter = self.format(table, path)
        address = table.string("address", "address")
        channel_column = table.optional("channel_column")
        pool_column = table.optional("pool_column")
        if channel_column is not None and table.has("channel"):
            raise table.error("channel_column", "channel is given too", "keep one of the two")
        if pool_column is not None and not top.has("pools"):
            hint = "add them instead of [sender], or remove pool_column"
            raise table.error("pool_column", "needs [pools.<alias>] tables to choose from", hint)
        if pool_column is None and len(pools) > 1:
            hint = f"name the column that holds each row's pool ({', '.join(pools)})"
            raise table.error("pool_column", f"missing: there are {len(pools)} pools", hint)
        named: list[tuple[str, str | None]] = [("address", address)]
        for key, column in [("channel_column", channel_column), ("pool_column", pool_column)]:
            same = [other for other, value in named if value == column]
            if column is not None and same:
                hint = "each needs its own column"
                raise table.error(key, f"{column!r} is already recipients.{same[0]}", hint)
            named.append((key, column))
        return RecipientsSpec(
            path=path,
            format=file_format,
            address=address,
            channel=None if channel_column else self.channel(table),
            channel_column=channel_column,
            default_region=self.region(table),
            suppression=self.path(table, "suppression"),
            pool_column=pool_column,
            delimiter=delimiter,
            encoding=self.encoding(table),
        )

    def format(self, table: _Table, path: Path) -> tuple[RecipientsFormat, str]:
        given = table.optional("format")
        by_extension = _EXTENSIONS.get(path.suffix.lower())
        if given is None and by_extension is None:
            hint = 'set recipients.format = "csv" or "jsonl"'
            raise table.error("path", f"cannot tell the format of {path.name}", hint)
        file_format, delimiter = by_extension or ("csv", ",")
        if given is not None and given.lower() not in ("csv", "jsonl"):
            raise table.error("format", f"{given!r} is not a format", 'use "csv" or "jsonl"')
        if given is not None:
            file_format = "csv" if given.lower() == "csv" else "jsonl"
        if table.has("delimiter") and file_format != "csv":
            raise table.error("delimiter", "only applies to CSV files", "remove it")
        if table.has("delimiter"):
            delimiter = table.string("delimiter")
            if len(delimiter) != 1 or delimiter in '"\r\n':
                hint = 'use one character such as ";" or "\\t"'
                raise table.error("delimiter", f"{delimiter!r} cannot be a delimiter", hint)
        return file_format, delimiter

    def channel(self, table: _Table) -> Channel:
        value = table.string("channel", "PHONE").upper()
        if value in ("PHONE", "WHATSAPP"):
            return "PHONE" if value == "PHONE" else "WHATSAPP"
        hint = 'use "PHONE" or "WHATSAPP", or name a column with recipients.channel_column'
        if value in ("SMS", "MMS", "RCS"):
            hint = 'use "PHONE": it covers SMS, MMS and RCS, and the pool picks which'
        raise table.error("channel", f"{value!r} is not a recipient channel", hint)

    def region(self, table: _Table) -> str | None:
        value = table.optional("default_region")
        if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            hint = "use a two-letter code such as US, GB or DE"
            raise table.error("default_region", f"{value!r} is not a known region", hint)
        return None if value is None else value.upper()

    def encoding(self, table: _Table) -> str:
        value = table.string("encoding", "utf-8")
        try:
            info = codecs.lookup(value)
        except LookupError:
            info = None
        # Codecs such as base64 exist but turn bytes into bytes, not text.
        if info is None or not getattr(info, "_is_text_encoding", True):
            hint = 'use e.g. "utf-8" or "cp1252"'
            raise table.error("encoding", f"{value!r} is not a text encoding", hint)
        return info.name

    def message(self, table: _Table) -> MessageSpec:
        text = table.string("text")
        try:
            MessageTemplate(text)
        except TemplateError as err:
            where = f" (line {err.line}, column {err.column} of the text)" if err.line else ""
            raise table.error("text", f"{err.problem}{where}", "fix the Liquid template") from None
        return MessageSpec(text)

    def base_url(self, table: _Table) -> str | None:
        raw = table.optional("base_url")
        try:
            # The same rules as --base-url and $CAMPAIGN_API_BASE_URL.
            return None if raw is None else resolve_base_url(raw, environ={})
        except ConfigurationError as err:
            problem = str(err).removeprefix("the base URL ")
            raise table.error(
                "base_url", problem, "fix it, or delete it to use the default"
            ) from None


def _with_hash(spec: CampaignSpec) -> CampaignSpec:
    """The spec with its spec_hash: SHA-256 of its normalised content, keys sorted."""
    content = asdict(spec)
    # The file's own location is not content: its effect is already in the resolved paths.
    del content["spec_hash"], content["source_path"]
    content["version"] = 1  # bump if the canonical form ever changes meaning
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=str)
    return replace(spec, spec_hash=hashlib.sha256(canonical).hexdigest())
