"""`campaign run FILE`: send a campaign (or, with --dry-run, preview it) and resume it later.

Exit codes: 0 every row settled; 1 the run could not go on (credentials, unknown pool,
ledger unwritable, server unreachable); 2 bad campaign file, input or options; 3 stopped
early with work left (--max-recipients, --max-duration, a signal): run again to go on;
4 the input was read to the end but some recipients are `in_doubt`.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import click
import structlog
import yarl
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from campaign.client import CommsClient
from campaign.console import (
    ExitCode,
    base_url_option,
    describe_error,
    emit_json,
    fail,
    json_option,
    say,
    warn,
)
from campaign.credentials import Credentials
from campaign.emulator import Credentials as EmulatorCredentials
from campaign.emulator import serve
from campaign.engine import CampaignRun, RunLimits, RunOutcome
from campaign.exceptions import (
    AmbiguousError,
    CampaignError,
    CampaignFileError,
    RateLimitedError,
    RecipientsFileError,
    RequestRejectedError,
    TemplateError,
)
from campaign.ledger import (
    SETTLED_STATES,
    LedgerBusyError,
    LedgerError,
    LedgerLock,
    LedgerState,
    read_ledger,
)
from campaign.preview import preview_campaign
from campaign.preview_command import show_preview
from campaign.resume import InputChangedError, check_ledger, open_ledger
from campaign.retries import RetryPolicy
from campaign.spec import CampaignSpec, load_spec

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
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The ledger file (default: [ledger] path of the campaign file).",
)
@click.option("--force", is_flag=True, help="Go on although the recipients file was edited.")
@click.option(
    "--grace-s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="After SIGINT/SIGTERM, how long in-flight requests may take before being cancelled.",
)
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
    samples: int,
    as_json: bool,
) -> None:
    """Send every recipient of a campaign not yet settled in its ledger, at each pool's pace."""
    try:
        spec = load_spec(campaign_file)
    except (CampaignFileError, TemplateError) as exc:
        fail(str(exc), ExitCode.USAGE)
    ledger = (ledger_path or spec.ledger_path).expanduser().resolve()
    if dry_run:
        try:
            state = read_ledger(ledger)
            report = preview_campaign(spec, samples=samples, is_settled=state.is_settled)
        except RecipientsFileError as exc:
            fail(str(exc), ExitCode.USAGE)
        except LedgerError as exc:
            fail(str(exc), ExitCode.FAILED)
        emit_json(report.to_json()) if as_json else show_preview(report)
        return
    lock = LedgerLock(ledger)
    try:
        lock.acquire()  # before reading: no other run may write between our read and ours
    except LedgerBusyError as exc:
        fail(str(exc), ExitCode.BUSY)
    except LedgerError as exc:
        fail(str(exc), ExitCode.FAILED)
    try:
        limits = RunLimits(max_recipients=max_recipients, max_duration_s=max_duration)
        sending = _Sending(spec, ledger, limits, force=force, grace_s=grace_s)
        code = sending.start(emulator=emulator, base_url=base_url, yes=yes, as_json=as_json)
    finally:
        lock.release()
    sys.exit(int(code))


class _Sending:
    """The asynchronous half of `run`: the API, the ledger opened for writing, the engine."""

    def __init__(
        self, spec: CampaignSpec, ledger: Path, limits: RunLimits, *, force: bool, grace_s: float
    ) -> None:
        self.spec, self.ledger, self.limits = spec, ledger, limits
        self.state = LedgerState()
        self.force, self.grace_s = force, grace_s
        self.run: CampaignRun | None = None
        self.expected: int | None = None  # recipients to send, when a preview counted them

    def start(self, *, emulator: bool, base_url: str | None, yes: bool, as_json: bool) -> ExitCode:
        """Check the ledger, ask when a person should, send; the exit code (or exit now)."""
        spec, ledger = self.spec, self.ledger
        try:
            self.state = read_ledger(ledger)
            check_ledger(spec, self.state, ledger, force=self.force)  # refuse before asking
        except (RecipientsFileError, InputChangedError) as exc:
            fail(str(exc), ExitCode.USAGE)
        except LedgerError as exc:
            fail(str(exc), ExitCode.FAILED)
        url = base_url or spec.api_base_url
        if not (yes or emulator or _is_loopback(url)) and _interactive():
            self._confirm(url)
        _configure_logging()
        try:
            anyio.run(self.main, emulator, base_url)
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

    async def main(self, emulator: bool, base_url: str | None) -> None:
        spec = self.spec
        async with _api(spec, emulator=emulator, base_url=base_url) as client:
            for pool in sorted({pool.id for pool in spec.pools.values()}):
                await _check_pool(client, pool)
            opened = open_ledger(spec, self.ledger, force=self.force, state=self.state)
            for note in opened.notes:
                warn(note)
            run = self.run = CampaignRun(
                spec, client, opened.writer, run_number=opened.run_number, limits=self.limits
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
                    group.start_soon(_stop_on_signals, run, self.grace_s, group.cancel_scope)
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


async def _check_pool(client: CommsClient, pool_id: str) -> None:
    """Bad credentials or an unknown pool stop the run here, before the ledger is touched."""
    try:
        await client.fetch_pool(pool_id)
    except (AmbiguousError, RateLimitedError) as exc:
        # Server trouble now says nothing about the pool: the sends will find out.
        log.warning("campaign.pool_check_skipped", pool=pool_id, error=str(exc))


def _is_loopback(url: str | None) -> bool:
    return url is not None and yarl.URL(url).host in _LOOPBACK


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@asynccontextmanager
async def _api(
    spec: CampaignSpec, *, emulator: bool, base_url: str | None
) -> AsyncIterator[CommsClient]:
    # The engine pauses a whole pool on a 429 itself, so the client does not retry sends.
    retry = RetryPolicy(max_attempts=1)
    concurrency = spec.sending.concurrency
    if not emulator:
        async with CommsClient(
            base_url=base_url or spec.api_base_url, retry=retry, max_connections=concurrency
        ) as client:
            yield client
        return
    accepted = EmulatorCredentials.from_environment()
    user, secret = accepted.pairs[0]
    async with serve(port=0, credentials=accepted) as running:
        warn(f"sending to the built-in emulator at {running.base_url}")
        async with CommsClient(
            base_url=running.base_url,
            credentials=Credentials(user, secret, source="emulator"),
            retry=retry,
            max_connections=concurrency,
        ) as client:
            yield client


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


def _configure_logging() -> None:
    """Log events on stderr: readable on a terminal, JSON lines otherwise (cron, pipes)."""
    renderer: Callable[..., Any]
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


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
    elif outcome.work_left:
        code = ExitCode.STOPPED
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
    if as_json:
        emit_json(
            {
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
    if code is ExitCode.STOPPED:
        say("  work is left: run the same command again to go on")
    if in_doubt:
        say(
            f"  {in_doubt:,} recipients are in_doubt (the API may or may not have taken them); "
            "they are not sent again blindly"
        )
    return code
