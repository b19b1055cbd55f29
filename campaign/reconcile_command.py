"""`campaign reconcile FILE`: settle a campaign's in-doubt recipients from the API, send nothing.

Rows the API holds a message for become `accepted`; rows it provably does not are marked
absent, for the next `campaign run` to send; the rest stay `in_doubt`, each with the reason.
Exit 0 when nothing is left in doubt, 4 when some is, 1/2/5 as for `run`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click

from campaign.console import (
    ExitCode,
    base_url_option,
    describe_error,
    emit_json,
    fail,
    json_option,
    request_timeout_option,
    say,
    warn,
)
from campaign.exceptions import CampaignError
from campaign.ledger import LedgerError, read_ledger
from campaign.reconcile import Reconciliation, reconcile
from campaign.resume import InputChangedError, open_ledger
from campaign.runtime import (
    SETTLE_MARGIN_S,
    api_client,
    configure_logging,
    force_option,
    ledger_option,
    load_campaign,
    lock_ledger,
)

__all__ = ["reconcile_command"]


@click.command("reconcile")
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--emulator", is_flag=True, help="Ask a built-in emulator (for rehearsals).")
@base_url_option
@ledger_option
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Mark what the API cannot vouch for as absent, so the next run sends it (logged).",
)
@force_option
@request_timeout_option
@json_option
def reconcile_command(
    campaign_file: Path,
    emulator: bool,
    base_url: str | None,
    ledger_path: Path | None,
    resend_in_doubt: bool,
    force: bool,
    request_timeout_s: float,
    as_json: bool,
) -> None:
    """Ask the API what became of the campaign's in-doubt recipients; sends nothing."""
    spec, ledger = load_campaign(campaign_file, ledger_path)
    if not ledger.exists():
        fail(
            f"{ledger}: no ledger yet, so nothing is in doubt; `campaign run` starts one",
            ExitCode.USAGE,
        )
    lock = lock_ledger(ledger)
    configure_logging()

    async def main() -> Reconciliation:
        async with api_client(
            spec, emulator=emulator, base_url=base_url, timeout_s=request_timeout_s
        ) as client:
            opened = open_ledger(spec, ledger, force=force, state=read_ledger(ledger))
            try:
                for note in opened.notes:
                    warn(note)
                return await reconcile(
                    client,
                    opened.writer,
                    spec.name,
                    settle_s=request_timeout_s + SETTLE_MARGIN_S,
                    resend=resend_in_doubt,
                )
            finally:
                opened.writer.close()

    try:
        found = anyio.run(main)
    except InputChangedError as exc:
        fail(str(exc), ExitCode.USAGE)
    except (LedgerError, CampaignError) as exc:
        fail(describe_error(exc), ExitCode.FAILED)
    finally:
        lock.release()
    left = found.left_in_doubt
    if as_json:
        emit_json(
            {
                "checked": found.checked,
                "found": found.found,
                "absent": found.absent,
                "resent_blindly": found.resent_blindly,
                "left_in_doubt": dict(found.unresolved),
            }
        )
    else:
        say(
            f"Campaign {spec.name}: {found.checked:,} recipients were in doubt; "
            f"{found.found:,} found (accepted), {found.absent:,} absent (the next run sends "
            f"them), {found.resent_blindly:,} marked to resend (--resend-in-doubt)"
        )
        for why, count in found.unresolved.items():
            say(f"  {count:,} left in doubt: {why}")
    sys.exit(int(ExitCode.IN_DOUBT if left else ExitCode.OK))
