"""`campaign run FILE`: send a campaign (or, with --dry-run, preview it) and resume it later.

Exit codes: 0 every row settled; 1 the run could not go on (credentials, unknown pool,
ledger unwritable, server unreachable); 2 bad campaign file, input or options; 3 stopped
early with work left (--max-recipients, --max-duration, a signal): run again to go on;
4 the input was read to the end but some recipients are `in_doubt`; 5 another run of the
campaign holds its ledger (nothing was done).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import click
import structlog
import yarl
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

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
from campaign.engine import CampaignRun, RunLimits, RunOutcome
from campaign.exceptions import (
    CampaignError,
    RecipientsFileError,
    RequestRejectedError,
)
from campaign.ledger import (
    KEYS_SUFFIX,
    SETTLED_STATES,
    LedgerError,
    LedgerState,
    read_ledger,
)
from campaign.preview import preview_campaign
from campaign.preview_command import show_campaign_preview, show_preview
from campaign.recipients import KeptKeys
from campaign.resume import InputChangedError, LedgerCheck, check_ledger, open_ledger
from campaign.runtime import (
    SETTLE_MARGIN_S,
    api_client,
    check_pool,
    configure_logging,
    force_option,
    ledger_option,
    load_campaign,
    lock_ledger,
)
from campaign.spec import CampaignSpec

__all__ = ["run_command"]

log = structlog.get_logger("campaign")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@click.command("run")
@click.argument("campaign_file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Preview only (the same as `campaign preview`).")
@click.option("--emulator", is_flag=True, help="Send to a built-in emulator started for this run.")
@base_url_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask before sending.")
@click.option(
    "--max-recipients",
    type=click.IntRange(min=1),
    help="Send at most this many recipients, then stop (the next run goes on).",
)
@click.option(
    "--max-duration",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Start no new request after this long (the next run goes on).",
)
@ledger_option
@force_option
@click.option(
    "--grace-s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="After SIGINT/SIGTERM, how long in-flight requests may take before being cancelled.",
)
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Send again recipients the API cannot say it took (risks a duplicate; logged).",
)
@request_timeout_option
@click.option("--samples", default=3, show_default=True, type=click.IntRange(0, 1000), hidden=True)
@json_option
def run_command(
    campaign_file: Path,
    dry_run: bool,
    emulator: bool,
    base_url: str | None,
    yes: bool,
    max_recipients: int | None,
    max_duration: float | None,
    ledger_path: Path | None,
    force: bool,
    grace_s: float,
    resend_in_doubt: bool,
    request_timeout_s: float,
    samples: int,
    as_json: bool,
) -> None:
    """Send every recipient of a campaign not yet settled in its ledger, at each pool's pace."""
    spec, ledger = load_campaign(campaign_file, ledger_path)
    if dry_run:
        show_campaign_preview(spec, ledger, samples=samples, as_json=as_json)
        return
    options = _Options(
        limits=RunLimits(max_recipients=max_recipients, max_duration_s=max_duration),
        emulator=emulator,
        base_url=base_url,
        yes=yes,
        force=force,
        grace_s=grace_s,
        resend_in_doubt=resend_in_doubt,
        timeout_s=request_timeout_s,
        as_json=as_json,
    )
    lock = lock_ledger(ledger)  # before reading: no other run may write between our read and ours
    try:
        code = _Sending(spec, ledger, options).start()
    finally:
        lock.release()
    sys.exit(int(code))


@dataclass(frozen=True, slots=True)
class _Options:
    limits: RunLimits
    emulator: bool
    base_url: str | None
    yes: bool
    force: bool
    grace_s: float
    resend_in_doubt: bool
    timeout_s: float
    as_json: bool


class _Sending:
    """The asynchronous half of `run`: the API, the ledger opened for writing, the engine."""

    def __init__(self, spec: CampaignSpec, ledger: Path, options: _Options) -> None:
        self.spec, self.ledger, self.options = spec, ledger, options
        self.state = LedgerState()
        self.run: CampaignRun | None = None
        self.checked: LedgerCheck | None = None
        self.expected: int | None = None  # recipients to send, when a preview counted them

    def start(self) -> ExitCode:
        """Check the ledger, ask when a person should, send; the exit code (or exit now)."""
        spec, ledger, options = self.spec, self.ledger, self.options
        as_json = options.as_json
        try:
            self.state = read_ledger(ledger)
            # Refuse before asking anything; kept, so the input is hashed once.
            self.checked = check_ledger(spec, self.state, ledger, force=options.force)
        except (RecipientsFileError, InputChangedError) as exc:
            fail(str(exc), ExitCode.USAGE)
        except LedgerError as exc:
            fail(str(exc), ExitCode.FAILED)
        url = options.base_url or spec.api_base_url
        if not (options.yes or options.emulator or _is_loopback(url)) and _interactive():
            self._confirm(url)
        configure_logging()
        try:
            anyio.run(self.main)
        except (InputChangedError, RecipientsFileError) as exc:
            fail(str(exc), ExitCode.USAGE)
        except CampaignError as exc:
            if self.run is not None:
                _summarise(spec, ledger, self.run.outcome, self.state, as_json=as_json, error=exc)
            code = ExitCode.USAGE if isinstance(exc, RequestRejectedError) else ExitCode.FAILED
            hint = "Check the pool ids in the campaign file."
            fail(describe_error(exc, not_found_hint=hint), code)
        if self.run is None:
            fail("the run did not start", ExitCode.FAILED)
        return _summarise(spec, ledger, self.run.outcome, self.state, as_json=as_json)

    def _confirm(self, url: str | None) -> None:
        """On a terminal, before real sending: the preview, then a question."""
        try:
            report = preview_campaign(self.spec, samples=1, is_settled=self.state.is_settled)
        except RecipientsFileError as exc:
            fail(str(exc), ExitCode.USAGE)
        show_preview(report)
        self.expected = report.to_send
        if not click.confirm(f"Send campaign {self.spec.name} to {url or 'the API'}?"):
            fail("nothing sent", ExitCode.STOPPED)

    def _kept_keys(self) -> KeptKeys | None:
        """Where the reader keeps its dedupe keys between runs: beside the ledger."""
        if self.checked is None:
            return None
        current, _, extends = self.checked
        return KeptKeys(
            path=self.ledger.with_name(self.ledger.name + KEYS_SUFFIX),
            input_was=None if extends is None else f"{extends.size}:{extends.sha256}",
            input_now=f"{current.size}:{current.sha256}",
        )

    async def main(self) -> None:
        spec, options = self.spec, self.options
        async with api_client(
            spec, emulator=options.emulator, base_url=options.base_url, timeout_s=options.timeout_s
        ) as client:
            for pool in sorted({pool.id for pool in spec.pools.values()}):
                await check_pool(client, pool)
            opened = open_ledger(
                spec, self.ledger, force=options.force, state=self.state, checked=self.checked
            )
            for note in opened.notes:
                warn(note)
            run = self.run = CampaignRun(
                spec,
                client,
                opened.writer,
                run_number=opened.run_number,
                limits=options.limits,
                settle_s=options.timeout_s + SETTLE_MARGIN_S,
                resend_in_doubt=options.resend_in_doubt,
                kept_keys=self._kept_keys(),
            )
            log.info(
                "campaign.run_started",
                campaign=spec.name,
                run=opened.run_number,
                ledger=str(self.ledger),
            )
            error: CampaignError | None = None
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(_stop_on_signals, run, options.grace_s, group.cancel_scope)
                    if sys.stderr.isatty():
                        group.start_soon(_show_progress, run, self.expected)
                    try:
                        await run.run()
                    except CampaignError as exc:
                        error = exc
                    group.cancel_scope.cancel()
            finally:
                # Synchronous, so the last lines reach the file even when cancelled.
                opened.writer.close()
            if error is not None:
                raise error


def _is_loopback(url: str | None) -> bool:
    return url is not None and yarl.URL(url).host in _LOOPBACK


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


async def _show_progress(run: CampaignRun, expected: int | None) -> None:
    """A progress bar on a terminal: sent, failed, in doubt, rate and (when known) ETA."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[states]}"),
        TextColumn("{task.fields[rate]}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(run.spec.name, total=expected, states="", rate="0")
        started = time.monotonic()
        while True:
            counts = run.outcome.counts
            sent = counts["accepted"] + counts["failed"] + counts["in_doubt"]
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(
                task,
                completed=sent,
                states=f"sent {counts['accepted']:,}  failed {counts['failed']:,}  "
                f"in doubt {counts['in_doubt']:,}",
                rate=f"{counts['accepted'] / elapsed:,.0f}",
            )
            await anyio.sleep(0.25)


async def _stop_on_signals(run: CampaignRun, grace_s: float, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: take no new work; a second, or the grace running out: cancel."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            warn(
                f"{signal.Signals(signum).name}: finishing requests in flight (up to {grace_s:g} s); "
                "send the signal again to stop at once"
            )
            run.stop("signal")
            break
        with anyio.move_on_after(grace_s):
            async for signum in signals:
                warn(f"{signal.Signals(signum).name} again: cancelling requests in flight")
                break
        scope.cancel()


def _summarise(
    spec: CampaignSpec,
    ledger: Path,
    outcome: RunOutcome,
    state: LedgerState,
    *,
    as_json: bool,
    error: CampaignError | None = None,
) -> ExitCode:
    in_doubt = len(state.in_doubt)
    if error is not None:
        code = ExitCode.FAILED
    elif outcome.work_left or (outcome.stopped == "signal" and in_doubt):
        code = ExitCode.STOPPED  # a signal may have cut reconciliation short: run again
    elif in_doubt:
        code = ExitCode.IN_DOUBT
    else:
        code = ExitCode.OK
    accepted = outcome.counts["accepted"]
    rate = accepted / outcome.duration_s if outcome.duration_s > 0 else 0.0
    this_run = {status: outcome.counts[status] for status in SETTLED_STATES}
    overall = {status: state.counts[status] for status in SETTLED_STATES}
    log.info(
        "campaign.run_finished",
        campaign=spec.name,
        stopped=outcome.stopped,
        requests=outcome.requests,
        duration_s=round(outcome.duration_s, 3),
        **this_run,
    )
    reconciled = _reconciled(outcome)
    if as_json:
        emit_json(
            {
                "reconciled": reconciled,
                "campaign": spec.name,
                "exit_code": int(code),
                "stopped": outcome.stopped,
                "work_left": outcome.work_left,
                "duration_s": round(outcome.duration_s, 3),
                "requests": outcome.requests,
                "accepted_per_s": round(rate, 1),
                "this_run": this_run,
                "ledger": {"path": str(ledger), "settled": state.settled, "by_state": overall},
            }
        )
        return code
    how = {
        None: "read to the end",
        "max_recipients": "stopped at --max-recipients",
        "max_duration": "stopped at --max-duration",
        "signal": "stopped by a signal",
        "fatal": "stopped by an error",
    }.get(outcome.stopped, outcome.stopped)
    say(f"Campaign {spec.name}: {how} in {outcome.duration_s:.1f} s")
    say(
        "  this run: "
        + ", ".join(f"{status} {count:,}" for status, count in this_run.items() if count)
        + f" ({outcome.requests:,} requests, {rate:,.1f} accepted/s)"
        if outcome.counts
        else "  this run: nothing to send"
    )
    say(
        f"  ledger {ledger}: {state.settled:,} rows settled ("
        + ", ".join(f"{status} {count:,}" for status, count in overall.items() if count)
        + ")"
    )
    if reconciled["checked"]:
        say(
            f"  reconciled {reconciled['checked']:,} in-doubt recipients with the API: "
            f"{reconciled['found']:,} found (accepted), {reconciled['absent']:,} absent (sent "
            f"again), {reconciled['resent_blindly']:,} resent blindly (--resend-in-doubt)"
        )
        for why, count in reconciled["left_in_doubt"].items():
            say(f"  {count:,} left in doubt: {why}")
    if code is ExitCode.STOPPED:
        say("  work is left: run the same command again to go on")
    if in_doubt:
        say(
            f"  {in_doubt:,} recipients are in_doubt (the API may or may not have taken them); "
            "they are not sent again blindly: `campaign reconcile` asks the API again, "
            "`--resend-in-doubt` accepts the risk"
        )
    return code


def _reconciled(outcome: RunOutcome) -> dict[str, Any]:
    """This run's reconciliations, added up; reasons from the last (they are what is left)."""
    rounds = outcome.reconciled
    return {
        "checked": sum(r.checked for r in rounds),
        "found": sum(r.found for r in rounds),
        "absent": sum(r.absent for r in rounds),
        "resent_blindly": sum(r.resent_blindly for r in rounds),
        "left_in_doubt": dict(rounds[-1].unresolved) if rounds else {},
    }
