"""Picking up a campaign's ledger: check it belongs to this campaign and input, then open it.

A new ledger gets its header (campaign, spec hash, the input's fingerprint). An existing
one must name the same campaign, and its input must be the same file, or the same file
with rows appended (its first `size` bytes hash the same): an edited or reordered file
would give old row numbers to other people, so it is refused unless forced. A changed spec
(rate, batch size, text...) is allowed with a warning: rows already sent stay sent.

Each run then appends a `run` line, and rows of requests an earlier run left open (the
process died between the intent and the answer) are marked `in_doubt` so that the
ledger says so and the summary counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from campaign.exceptions import CampaignError
from campaign.ledger import (
    VERSION,
    InputFingerprint,
    LedgerError,
    LedgerState,
    LedgerWriter,
    fingerprint,
    now_text,
    read_ledger,
)
from campaign.spec import CampaignSpec

__all__ = ["InputChangedError", "LedgerCheck", "OpenedLedger", "check_ledger", "open_ledger"]

ORPHAN_ERROR = "no answer was recorded: the run that sent it stopped first"


class InputChangedError(CampaignError):
    """The recipients file is not the one the ledger's rows refer to."""


@dataclass(slots=True)
class OpenedLedger:
    writer: LedgerWriter
    run_number: int
    notes: list[str] = field(default_factory=list)  # warnings for the person running it


class LedgerCheck(NamedTuple):
    """What `check_ledger` found: the input now, warnings, and the input as the ledger last
    recorded it when today's file is that same file or it with rows appended (else None)."""

    current: InputFingerprint
    notes: list[str]
    extends: InputFingerprint | None = None


def check_ledger(spec: CampaignSpec, state: LedgerState, path: Path, *, force: bool) -> LedgerCheck:
    """The input's fingerprint and warnings; raises when the ledger is not this campaign's.

    The input is compared with the latest run's record of it (the header's for ledgers
    written before runs recorded it), so rows appended and sent in one run cannot be edited
    unnoticed before the next."""
    header = state.header
    notes: list[str] = []
    if header is None:
        current, _ = fingerprint(spec.recipients.path)
        return LedgerCheck(current, notes)
    if header.get("campaign") != spec.name:
        raise LedgerError(
            f"{path}: this ledger belongs to campaign {header.get('campaign')!r}, not "
            f"{spec.name!r}; give this campaign its own ledger ([ledger] path or --ledger)"
        )
    recorded = state.input or {}
    size = int(recorded.get("size", -1))
    current, prefix_hash = fingerprint(spec.recipients.path, prefix_size=max(size, 0))
    same_start = size >= 0 and prefix_hash == recorded.get("sha256")
    grown = same_start and current.size > size
    # Bytes added to a last line that had no line break change that row: an edit.
    appended = grown and _ends_a_line(spec.recipients.path, size)
    extends: InputFingerprint | None = None
    if same_start and (current.size == size or appended):
        extends = InputFingerprint(current.path, size, prefix_hash)
    if current.sha256 != recorded.get("sha256"):
        if appended:
            notes.append(
                f"{spec.recipients.path} has grown by {current.size - size:,} bytes since the "
                "last run; the new rows will be sent"
            )
        elif force:
            notes.append(
                f"{spec.recipients.path} changed since the last run; going on (--force): "
                "rows are matched by number, so an edited row is not sent again"
            )
        elif grown:
            raise InputChangedError(
                f"{spec.recipients.path}: text was appended to the last line the ledger {path} "
                "already knows (the file did not end with a line break), which changes that "
                "row; put the new rows on lines of their own (restore the file, add a line "
                "break, then the rows), or pass --force to go on anyway"
            )
        else:
            raise InputChangedError(
                f"{spec.recipients.path}: the recipients file changed since the last run on "
                f"the ledger {path} (rows edited, removed or reordered, not just appended), so "
                "its row numbers may now mean other people; restore the file, start a new "
                "ledger (--ledger), or pass --force to go on anyway"
            )
    if state.spec_hash is not None and state.spec_hash != spec.spec_hash:
        notes.append(
            "the campaign file changed since the last run (rate, batch, text, ...); rows "
            "already settled keep their state"
        )
    return LedgerCheck(current, notes, extends)


def _ends_a_line(path: Path, size: int) -> bool:
    """Whether the file's first `size` bytes end with a line break: bytes appended after
    them are new rows, not more of the last old row."""
    if size == 0:
        return True
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def open_ledger(
    spec: CampaignSpec,
    path: Path,
    *,
    force: bool = False,
    state: LedgerState | None = None,
    checked: LedgerCheck | None = None,
) -> OpenedLedger:
    """Read, check and open the ledger at `path` for a new run of `spec`.

    `checked` is what `check_ledger` already said of this `state`, so that the input file
    is not hashed a second time.
    """
    state = state if state is not None else read_ledger(path)
    current, notes, _ = checked or check_ledger(spec, state, path, force=force)
    notes = list(notes)
    writer = LedgerWriter(path, state)
    writer.open()
    try:
        if state.header is None:
            writer.write(
                {
                    "type": "header",
                    "version": VERSION,
                    "campaign": spec.name,
                    "spec_hash": spec.spec_hash,
                    "input": current.to_json(),
                    "at": now_text(),
                }
            )
        run_number = state.runs + 1
        writer.write(
            {
                "type": "run",
                "run": run_number,
                "spec_hash": spec.spec_hash,
                "input": {"size": current.size, "sha256": current.sha256},
                "at": now_text(),
            }
        )
        orphans = list(state.orphaned_rows())
        for batch, intent, row in orphans:
            writer.write(
                {
                    "type": "recipient",
                    "row": row,
                    "pool": intent.pool,
                    "status": "in_doubt",
                    "batch": batch,
                    "error": ORPHAN_ERROR,
                    "at": now_text(),
                }
            )
        if orphans:
            notes.append(
                f"{len(orphans):,} recipients were in requests a previous run sent without "
                "recording the answer: they are in_doubt, not sent again"
            )
    except BaseException:
        writer.close()
        raise
    return OpenedLedger(writer, run_number, notes)
