"""`campaign preview FILE`: what a run would do, with nothing sent and no network touched."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.console import ExitCode, emit_json, emit_table, fail, json_option, say
from campaign.exceptions import RecipientsFileError
from campaign.ledger import LedgerError, read_ledger
from campaign.preview import Preview, preview_campaign
from campaign.runtime import ledger_option, load_campaign
from campaign.spec import CampaignSpec

__all__ = ["preview_command", "show_campaign_preview", "show_preview"]


@click.command("preview")
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option(
    "--samples",
    default=3,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many rendered messages to show.",
)
@ledger_option
@json_option
def preview_command(
    campaign_file: Path, samples: int, ledger_path: Path | None, as_json: bool
) -> None:
    """Check every row of a campaign and show what a run would send; sends nothing."""
    spec, ledger = load_campaign(campaign_file, ledger_path)
    show_campaign_preview(spec, ledger, samples=samples, as_json=as_json)


def show_campaign_preview(spec: CampaignSpec, ledger: Path, *, samples: int, as_json: bool) -> None:
    """The dry run of `preview` and `run --dry-run`: rows its ledger settled are not to send."""
    try:
        state = read_ledger(ledger)
        report = preview_campaign(spec, samples=samples, is_settled=state.is_settled)
    except RecipientsFileError as exc:
        fail(str(exc), ExitCode.USAGE)
    except LedgerError as exc:
        fail(str(exc), ExitCode.FAILED)
    if as_json:
        emit_json(report.to_json())
    else:
        show_preview(report)


def _eta(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def show_preview(report: Preview) -> None:
    """The readable summary."""
    say(f"Campaign {report.campaign}: {report.rows:,} rows")
    rows = [
        ("valid", f"{report.valid:,}", ""),
        *(
            (
                f"invalid: {reason}",
                f"{counted.count:,}",
                "rows "
                + ", ".join(map(str, counted.rows))
                + ("…" if counted.count > len(counted.rows) else ""),
            )
            for reason, counted in report.invalid_by_reason.items()
        ),
        ("duplicates", f"{report.duplicates:,}", ""),
        ("suppressed", f"{report.suppressed:,}", ""),
        ("already settled", f"{report.already_settled:,}", ""),
        ("to send", f"{report.to_send:,}", ""),
    ]
    emit_table(("", "COUNT", "WHERE"), rows)
    for name, counts in (("channel", report.by_channel), ("pool", report.by_pool)):
        if counts:
            say(
                f"by {name}: "
                + ", ".join(f"{key} {value:,}" for key, value in sorted(counts.items()))
            )
    say(
        f"{report.segments:,} SMS segments in {report.requests:,} requests; "
        f"about {_eta(report.eta_s)} at the pools' pace"
    )
    for sample in report.samples:
        say(
            f"\nrow {sample.row} → {sample.address} ({sample.channel}, {sample.segments} segment"
            f"{'' if sample.segments == 1 else 's'}):\n  {sample.text}"
        )
