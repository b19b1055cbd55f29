"""The account the emulator starts with: fixed sample senders and pools, or a `--data` file.

Ids and timestamps never change between runs, so sample campaigns and the README can name
them. `SAMPLE_POOL_ID` mixes RCS, SMS and WhatsApp senders, like the seed guides' pool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from campaign.emulator.ids import ID_PATTERN, make_id
from campaign.emulator.model import DEFAULT_RATE_PER_S, SENDER_CHANNELS, Sender, SenderPool

__all__ = ["SAMPLE_POOL_ID", "AccountData", "DataFileError", "load_account_data", "sample_account"]

_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: when the sample account was "created"
_EPOCH_MS = int(_EPOCH_S * 1000)

SAMPLE_POOL_ID = make_id("senderpool", _EPOCH_MS, 1)

_DEFAULT_KIND = {
    "SMS": "long_code",
    "RCS": "rcs",
    "WHATSAPP": "whatsapp",
    "EMAIL": "email",
    "PUSH": "push",
}

# (display name, channel, address, status, kind)
_SAMPLE_SENDERS = (
    ("Acme Long Code 1", "SMS", "+12065550101", "ACTIVATED", "long_code"),
    ("Acme Long Code 2", "SMS", "+12065550102", "ACTIVATED", "long_code"),
    ("Acme Long Code 3", "SMS", "+12065550103", "ACTIVATED", "long_code"),
    ("Acme Toll-Free", "SMS", "+18885550100", "ACTIVATED", "toll_free"),
    ("Acme Short Code", "SMS", "89242", "ACTIVATED", "short_code"),
    ("Acme RCS Agent", "RCS", "acme_rcs_agent", "ACTIVATED", "rcs"),
    ("Acme WhatsApp", "WHATSAPP", "+14155550123", "ACTIVATED", "whatsapp"),
    ("Acme Support", "EMAIL", "support@acme.example", "ACTIVATED", "email"),
    ("Acme Old Long Code", "SMS", "+12065550199", "DEACTIVATED", "long_code"),
)
# The sample pool: RCS first for capable handsets, SMS for the rest, WhatsApp for WHATSAPP.
_SAMPLE_POOL_MEMBERS = (0, 1, 3, 4, 5, 6)


class DataFileError(Exception):
    """A `--data` file that cannot be used; the message says where and what to change."""


@dataclass(frozen=True, slots=True)
class AccountData:
    """The starting senders and pools; `fresh_*` hand out copies so a reset starts clean."""

    senders: tuple[Sender, ...]
    pools: tuple[SenderPool, ...]

    def fresh_senders(self) -> list[Sender]:
        return [replace(s, tags=dict(s.tags), next_free_s=0.0, reserved=[]) for s in self.senders]

    def fresh_pools(self) -> list[SenderPool]:
        return [
            replace(p, tags=dict(p.tags), sender_ids=list(p.sender_ids), operation_ids=[])
            for p in self.pools
        ]


def sample_account() -> AccountData:
    senders = tuple(
        Sender(
            id=make_id("sender", _EPOCH_MS, number),
            display_name=name,
            channel=channel,
            address=address,
            status=status,
            tags={},
            created_at=_EPOCH_S,
            updated_at=_EPOCH_S,
            kind=kind,
            rate_per_s=DEFAULT_RATE_PER_S[kind],
        )
        for number, (name, channel, address, status, kind) in enumerate(_SAMPLE_SENDERS, start=1)
    )
    pool = SenderPool(
        id=SAMPLE_POOL_ID,
        name="Sample Pool",
        tags={"purpose": "sample"},
        created_at=_EPOCH_S,
        updated_at=_EPOCH_S,
        sender_ids=[senders[i].id for i in _SAMPLE_POOL_MEMBERS],
    )
    return AccountData(senders, (pool,))


def load_account_data(path: Path) -> AccountData:
    """Senders and pools from a JSON file shaped like `{"senders": [...], "senderPools": [...]}`.

    A sender: `{"displayName", "channel", "address", "status"?, "kind"?, "ratePerS"?, "id"?, "tags"?}`.
    A pool: `{"name", "senders": [sender id or index into senders], "id"?, "tags"?}`.
    """
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read the file ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("senders"), list):
        raise DataFileError(f'{path}: expected an object with a "senders" list')
    senders = tuple(_sender(path, i, item) for i, item in enumerate(raw["senders"], start=1))
    ids = [s.id for s in senders]
    if len(set(ids)) != len(ids):
        raise DataFileError(f"{path}: sender ids must be unique")
    pools = tuple(
        _pool(path, i, item, ids) for i, item in enumerate(raw.get("senderPools") or [], start=1)
    )
    return AccountData(senders, pools)


def _text(
    path: Path, where: str, item: dict[str, Any], key: str, default: str | None = None
) -> str:
    value = item.get(key, default)
    if not isinstance(value, str) or not value:
        raise DataFileError(f"{path}: {where}.{key} must be a non-empty string")
    return value


def _sender(path: Path, number: int, item: Any) -> Sender:
    where = f"senders[{number - 1}]"
    if not isinstance(item, dict):
        raise DataFileError(f"{path}: {where} must be an object")
    channel = _text(path, where, item, "channel").upper()
    if channel not in SENDER_CHANNELS:
        raise DataFileError(f"{path}: {where}.channel must be one of {', '.join(SENDER_CHANNELS)}")
    kind = _text(path, where, item, "kind", _DEFAULT_KIND[channel])
    if kind not in DEFAULT_RATE_PER_S:
        raise DataFileError(f"{path}: {where}.kind must be one of {', '.join(DEFAULT_RATE_PER_S)}")
    status = _text(path, where, item, "status", "ACTIVATED").upper()
    if status not in ("ACTIVATED", "DEACTIVATED"):
        raise DataFileError(f"{path}: {where}.status must be ACTIVATED or DEACTIVATED")
    rate = item.get("ratePerS", DEFAULT_RATE_PER_S[kind])
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
        raise DataFileError(f"{path}: {where}.ratePerS must be a positive number")
    sender_id = item.get("id") or make_id("sender", _EPOCH_MS, 1000 + number)
    if (
        not isinstance(sender_id, str)
        or not ID_PATTERN.match(sender_id)
        or "_sender_" not in sender_id
    ):
        raise DataFileError(f"{path}: {where}.id must look like comms_sender_<26 base32 chars>")
    return Sender(
        id=sender_id,
        display_name=_text(path, where, item, "displayName", item.get("address")),
        channel=channel,
        address=_text(path, where, item, "address"),
        status=status,
        tags=_tags(path, where, item),
        created_at=_EPOCH_S,
        updated_at=_EPOCH_S,
        kind=kind,
        rate_per_s=float(rate),
    )


def _tags(path: Path, where: str, item: dict[str, Any]) -> dict[str, str]:
    tags = item.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise DataFileError(f"{path}: {where}.tags must be an object of strings")
    return dict(tags)


def _pool(path: Path, number: int, item: Any, sender_ids: list[str]) -> SenderPool:
    where = f"senderPools[{number - 1}]"
    if not isinstance(item, dict):
        raise DataFileError(f"{path}: {where} must be an object")
    members = []
    for ref in item.get("senders", []):
        if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(sender_ids):
            members.append(sender_ids[ref])
        elif isinstance(ref, str) and ref in sender_ids:
            members.append(ref)
        else:
            raise DataFileError(
                f"{path}: {where}.senders names {ref!r}, which is no sender in the file"
            )
    pool_id = item.get("id") or make_id("senderpool", _EPOCH_MS, number)
    if (
        not isinstance(pool_id, str)
        or not ID_PATTERN.match(pool_id)
        or "_senderpool_" not in pool_id
    ):
        raise DataFileError(f"{path}: {where}.id must look like comms_senderpool_<26 base32 chars>")
    return SenderPool(
        id=pool_id,
        name=_text(path, where, item, "name"),
        tags=_tags(path, where, item),
        created_at=_EPOCH_S,
        updated_at=_EPOCH_S,
        sender_ids=members,
    )
