"""What `run` and `reconcile` share: the API (or a built-in emulator), the lock, the logs."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from campaign.client import CommsClient
from campaign.console import ExitCode, fail, warn
from campaign.credentials import Credentials
from campaign.exceptions import AmbiguousError, CampaignFileError, RateLimitedError, TemplateError
from campaign.ledger import LedgerBusyError, LedgerError, LedgerLock
from campaign.retries import RetryPolicy
from campaign.spec import CampaignSpec, load_spec

__all__ = [
    "RETRY_POLICY",
    "SETTLE_MARGIN_S",
    "api_client",
    "check_pool",
    "configure_logging",
    "lock_ledger",
]

log = structlog.get_logger("campaign")
F = TypeVar("F", bound=Callable[..., Any])

# GETs (the pool check, reconciliation's listings) retry transient failures; sends never
# retry in the client. Module-level so that tests can give it a sleep that does not.
RETRY_POLICY = RetryPolicy()
# Past its timeout and this margin, a request whose answer never came is surely out of the
# API's hands, so its messages, if any, can be listed.
SETTLE_MARGIN_S = 5.0


def ledger_option(command: F) -> F:
    return click.option(
        "--ledger",
        "ledger_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The ledger file (default: [ledger] path of the campaign file).",
    )(command)


def force_option(command: F) -> F:
    return click.option(
        "--force", is_flag=True, help="Go on although the recipients file was edited."
    )(command)


def load_campaign(campaign_file: Path, ledger_path: Path | None) -> tuple[CampaignSpec, Path]:
    """The campaign file, checked, and its ledger's path; exit 2 when the file is unusable."""
    try:
        spec = load_spec(campaign_file)
    except (CampaignFileError, TemplateError) as exc:
        fail(str(exc), ExitCode.USAGE)
    return spec, (ledger_path or spec.ledger_path).expanduser().resolve()


def lock_ledger(ledger: Path) -> LedgerLock:
    """The ledger's lock, held; exit 5 when another run has it, 1 when it cannot be made."""
    lock = LedgerLock(ledger)
    try:
        lock.acquire()
    except LedgerBusyError as exc:
        fail(str(exc), ExitCode.BUSY)
    except LedgerError as exc:
        fail(str(exc), ExitCode.FAILED)
    return lock


@asynccontextmanager
async def api_client(
    spec: CampaignSpec, *, emulator: bool, base_url: str | None, timeout_s: float = 30.0
) -> AsyncIterator[CommsClient]:
    """A client for the campaign's API, or for an emulator served in-process (`emulator`)."""
    retry = RETRY_POLICY
    concurrency = spec.sending.concurrency
    if not emulator:
        async with CommsClient(
            base_url=base_url or spec.api_base_url,
            retry=retry,
            max_connections=concurrency,
            timeout_s=timeout_s,
        ) as client:
            yield client
        return
    # Imported here: a run against the real API never loads the emulator.
    from campaign.emulator import Credentials as EmulatorCredentials  # noqa: PLC0415
    from campaign.emulator import serve  # noqa: PLC0415

    accepted = EmulatorCredentials.from_environment()
    user, secret = accepted.pairs[0]
    async with serve(port=0, credentials=accepted) as running:
        warn(f"sending to the built-in emulator at {running.base_url}")
        async with CommsClient(
            base_url=running.base_url,
            credentials=Credentials(user, secret, source="emulator"),
            retry=retry,
            max_connections=concurrency,
            timeout_s=timeout_s,
        ) as client:
            yield client


async def check_pool(client: CommsClient, pool_id: str) -> None:
    """Bad credentials or an unknown pool stop the run here, before the ledger is touched."""
    try:
        await client.fetch_pool(pool_id)
    except (AmbiguousError, RateLimitedError) as exc:
        # Server trouble now says nothing about the pool: the sends will find out.
        log.warning("campaign.pool_check_skipped", pool=pool_id, error=str(exc))


def configure_logging() -> None:
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
