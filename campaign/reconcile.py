"""Reconciliation: ask the API what became of recipients whose request's fate is unknown.

The API has no idempotency key, so after a timeout, a 5xx, a dropped connection or a crash
between a request and its recorded answer, only the API knows whether the batch went out.
Every recipient is sent with the tags `campaign` (the campaign name) and `row` (its row
number, rendered per recipient), so the messages created around the time of the request
tell: `GET /Messages` over a window around each in-doubt intent, paginated, matched on
those tags.

- A row with a message is `accepted` (with the message and operation ids).
- A row without one is *absent*: provably never sent, so it is sent again.
- Rows the API cannot answer for stay `in_doubt`, with the reason: the listing failed
  (server trouble, unreachable), or the request is older than the API's 7-day retention.
  `resend=True` (`--resend-in-doubt`) marks those absent too: the explicit, logged way to
  accept the risk of a duplicate.

A request whose answer never came may still be in the API's hands for up to the client's
timeout, so intents younger than `settle_s` are waited for before their window is listed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import anyio
import structlog

from campaign.client import CommsClient
from campaign.exceptions import ApiError, UnreachableError
from campaign.ledger import LedgerWriter, now_text
from campaign.resources import Message

__all__ = ["RETENTION_S", "Reconciliation", "reconcile"]

log = structlog.get_logger("campaign")

RETENTION_S: Final = 7 * 24 * 3600  # how long the API keeps message records
SKEW_S: Final = 300.0  # this machine's clock and the API's may disagree by this much
PAGE_SIZE: Final = 1000


@dataclass(slots=True)
class Reconciliation:
    """What one reconciliation found."""

    checked: int = 0
    found: int = 0  # in doubt, but the API has the message: now accepted
    absent: int = 0  # the API has no message: to be sent again
    resent_blindly: int = 0  # left in doubt by the API, marked absent on --resend-in-doubt
    unresolved: Counter[str] = field(default_factory=Counter)  # why rows stay in doubt

    @property
    def left_in_doubt(self) -> int:
        return self.unresolved.total()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


async def reconcile(
    client: CommsClient,
    writer: LedgerWriter,
    campaign: str,
    *,
    settle_s: float,
    resend: bool = False,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> Reconciliation:
    """Settle the ledger's in-doubt rows from the API's own records, as far as it can tell."""
    state = writer.state
    result = Reconciliation()
    doubt = dict(state.in_doubt)
    if not doubt:
        return result
    result.checked = len(doubt)
    now = wall()
    windows: list[tuple[float, float]] = []
    checkable: dict[int, str] = {}
    unknown: dict[int, str] = {}  # row -> why the API cannot tell
    youngest = -float("inf")
    for row, batch in doubt.items():
        info = state.doubt_batches.get(batch)
        if info is None:
            unknown[row] = "no record of when its request was made"
            continue
        at = _epoch(info[1])
        if now - at > RETENTION_S - SKEW_S:
            unknown[row] = "its request is older than the API's 7-day retention of messages"
            continue
        checkable[row] = batch
        youngest = max(youngest, at)
        windows.append((at - SKEW_S, at + settle_s + SKEW_S))
    wait_s = youngest + settle_s - now
    if checkable and wait_s > 0:
        log.info("campaign.reconcile_waiting", seconds=round(wait_s, 1), rows=len(checkable))
        await sleep(wait_s)
    try:
        found = await _find(client, campaign, checkable, _merge(windows))
    except (ApiError, UnreachableError) as err:
        reason = f"the API could not list its messages ({err})"
        unknown.update(dict.fromkeys(checkable, reason))
        found, checkable = {}, {}
    for row, batch in checkable.items():
        message = found.get(row)
        if message is None:
            writer.write({"type": "absent", "row": row, "batch": batch, "at": now_text()})
            result.absent += 1
            continue
        writer.write(_accepted_line(row, batch, message, state.doubt_batches[batch][0]))
        result.found += 1
    for row, why in unknown.items():
        if resend:
            writer.write(
                {"type": "absent", "row": row, "batch": doubt[row], "forced": why, "at": now_text()}
            )
            result.resent_blindly += 1
        else:
            result.unresolved[why] += 1
    if resend and result.resent_blindly:
        log.warning(
            "campaign.in_doubt_resent",
            rows=result.resent_blindly,
            note="--resend-in-doubt: these may reach someone twice",
        )
    log.info(
        "campaign.reconciled",
        checked=result.checked,
        found=result.found,
        absent=result.absent,
        left_in_doubt=result.left_in_doubt,
    )
    return result


async def _find(
    client: CommsClient,
    campaign: str,
    rows: dict[int, str],
    windows: list[tuple[float, float]],
) -> dict[int, Message]:
    """The messages of this campaign for `rows`, from listings over `windows`."""
    found: dict[int, Message] = {}
    for start, end in windows:
        async for message in client.list_messages(
            start_date=_rfc3339(start), end_date=_rfc3339(end + 1), page_size=PAGE_SIZE
        ):
            tags = message.tags
            if tags.get("campaign") != campaign:
                continue
            try:
                row = int(tags.get("row", ""))
            except ValueError:
                continue
            if row in rows:
                if row in found:
                    log.error("campaign.duplicate_found", row=row, message=message.id)
                found.setdefault(row, message)
    return found


def _accepted_line(row: int, batch: str, message: Message, pool: str) -> dict[str, object]:
    return {
        "type": "recipient",
        "row": row,
        "address": message.to_address,
        "channel": message.to_channel,
        "pool": message.sender_pool_id or pool,
        "status": "accepted",
        "operation": message.operation_id,
        "message": message.id,
        "batch": batch,
        "reconciled": True,
        "at": now_text(),
    }
