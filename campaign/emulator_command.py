"""`campaign emulator`: serve the local Communications API until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from campaign.emulator import (
    SAMPLE_POOL_ID,
    Clock,
    Credentials,
    DataFileError,
    DeliveryProfile,
    FaultError,
    Faults,
    RunningEmulator,
    serve,
)

__all__ = ["emulator_command"]

_DEFAULTS = DeliveryProfile()
_F = TypeVar("_F", bound=Callable[..., Any])


def _share_option(flag: str, default: float, help_text: str) -> Callable[[_F], _F]:
    return click.option(
        flag, default=default, show_default=True, type=click.FloatRange(0, 1), help=help_text
    )


def _latency(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    try:
        return (float(low), float(high or low))
    except ValueError:
        raise click.BadParameter("use milliseconds, e.g. 20 or 5-50") from None


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port; 0 picks a free one.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="JSON file of senders and pools to start with instead of the samples.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="How many times faster than real time delivery progresses.",
)
@click.option(
    "--max-concurrent-requests",
    type=click.IntRange(min=1),
    help="Answer 429 past this many requests in flight.",
)
@click.option(
    "--rate-limit-per-s",
    type=click.FloatRange(min=0, min_open=True),
    help="Answer 429 past this many recipients per second.",
)
@click.option(
    "--error-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests answered 500/503 before processing.",
)
@click.option(
    "--accept-then-fail-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of POSTs processed, then answered 500 or dropped.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests dropped before processing.",
)
@click.option("--latency-ms", default="0", help="Added latency in ms: a number or MIN-MAX.")
@click.option(
    "--retry-after-s",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retry-After sent with each 429.",
)
@click.option("--seed", type=int, help="Seed for a replayable sequence of faults.")
@_share_option(
    "--undelivered-share",
    _DEFAULTS.undelivered_share,
    "Share of sent messages that end UNDELIVERED.",
)
@_share_option("--failed-share", _DEFAULTS.failed_share, "Share of sent messages that end FAILED.")
@_share_option(
    "--rcs-capable-share",
    _DEFAULTS.rcs_capable_share,
    "Share of handsets that take RCS (decided from the number).",
)
@_share_option(
    "--rcs-failure-share",
    _DEFAULTS.rcs_failure_share,
    "Share of RCS attempts that fail and fall back to SMS.",
)
@click.option(
    "--pagination-tokens",
    is_flag=True,
    help="Answer pagination.next with a bare token instead of a URL.",
)
def emulator_command(
    host: str,
    port: int,
    data: Path | None,
    speed: float,
    max_concurrent_requests: int | None,
    rate_limit_per_s: float | None,
    error_rate: float,
    accept_then_fail_rate: float,
    drop_rate: float,
    latency_ms: str,
    retry_after_s: int,
    seed: int | None,
    undelivered_share: float,
    failed_share: float,
    rcs_capable_share: float,
    rcs_failure_share: float,
    pagination_tokens: bool,
) -> None:
    """Serve a local Communications API (senders, pools, messages) until Ctrl-C."""
    if undelivered_share + failed_share > 1:
        raise click.UsageError("--undelivered-share and --failed-share add up to more than 1")
    profile = DeliveryProfile(
        undelivered_share=undelivered_share,
        failed_share=failed_share,
        rcs_capable_share=rcs_capable_share,
        rcs_failure_share=rcs_failure_share,
    )
    try:
        faults = Faults(
            max_concurrent_requests=max_concurrent_requests,
            rate_limit_per_s=rate_limit_per_s,
            error_rate=error_rate,
            accept_then_fail_rate=accept_then_fail_rate,
            drop_rate=drop_rate,
            latency_ms=_latency(latency_ms),
            retry_after_s=retry_after_s,
            seed=seed,
        )
        faults.check()
    except FaultError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        anyio.run(
            _serve_until_signal,
            host,
            port,
            data,
            Clock(speed=speed),
            profile,
            faults,
            pagination_tokens,
        )
    except DataFileError as exc:
        click.echo(f"campaign emulator: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(
            f"campaign emulator: cannot listen on {host}:{port}: {exc.strerror or exc}. "
            "Choose another --port, or stop what uses this one.",
            err=True,
        )
        sys.exit(1)


async def _serve_until_signal(
    host: str,
    port: int,
    data: Path | None,
    clock: Clock,
    profile: DeliveryProfile,
    faults: Faults,
    pagination_tokens: bool,
) -> None:
    credentials = Credentials.from_environment()
    # Signals are caught before the banner, so a stop sent the moment it shows still counts.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve(
            host=host,
            port=port,
            data=data,
            faults=faults,
            credentials=credentials,
            clock=clock,
            profile=profile,
            next_as_token=pagination_tokens,
        ) as emu:
            _print_banner(emu, credentials, with_sample_pool=data is None)
            async for signum in signals:
                click.echo(f"Stopping on {signal.Signals(signum).name}.")
                return


def _print_banner(
    emu: RunningEmulator, credentials: Credentials, *, with_sample_pool: bool
) -> None:
    click.echo(f"Communications API emulator listening on {emu.base_url} (also {emu.root_url}/v1)")
    if credentials.from_env:
        click.echo("Credentials: the TWILIO_* variables of this environment (not shown)")
    else:
        user, secret = credentials.pairs[0]
        click.echo(f"Credentials: TWILIO_ACCOUNT_SID={user} TWILIO_AUTH_TOKEN={secret}")
    if with_sample_pool:
        click.echo(f"Sample pool: {SAMPLE_POOL_ID}")
    click.echo(f"Inspect: {emu.root_url}/_emulator/stats  Stop: Ctrl-C")
    sys.stdout.flush()
