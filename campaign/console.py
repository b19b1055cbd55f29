"""What the API commands share: exit codes, `--base-url`/`--json`, output, and error lines.

Output goes to stdout as a rich table (plain text when piped) or, with `--json`, as one
JSON document with sorted keys. Every failure becomes one line on stderr, saying what
went wrong, where, and what to do, and the exit code from `ExitCode`.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import anyio
import click
import orjson
import structlog
from rich.console import Console
from rich.table import Table

from campaign.client import CommsClient
from campaign.credentials import (
    BASE_URL_VARIABLE,
    DEFAULT_BASE_URL,
    Credentials,
    resolve_base_url,
)
from campaign.exceptions import (
    AmbiguousError,
    AuthenticationError,
    CampaignError,
    ConfigurationError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    UnreachableError,
)

__all__ = [
    "ExitCode",
    "base_url_option",
    "counted",
    "describe_error",
    "emit_json",
    "emit_table",
    "fail",
    "id_argument",
    "json_option",
    "request_timeout_option",
    "run_api",
    "say",
    "tags_text",
    "warn",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(enum.IntEnum):
    """The exit statuses of every `campaign` command (also listed in `campaign.cli`)."""

    OK = 0
    FAILED = 1  # could not go on: credentials, unreachable server, unknown id, server trouble
    USAGE = 2  # bad input: options, arguments, files, or a request the API rejected as invalid
    STOPPED = 3  # `run` stopped early (limits, a signal) with work left: run it again
    IN_DOUBT = 4  # `run` read everything, but some recipients are in_doubt
    BUSY = 5  # `run`: another run holds the campaign's ledger; nothing was done


def _check_base_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return resolve_base_url(value, {})
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc).replace("the base URL ", "", 1)) from None


def base_url_option(command: F) -> F:
    return click.option(
        "--base-url",
        metavar="URL",
        callback=_check_base_url,
        help=f"API base URL [default: ${BASE_URL_VARIABLE}, else {DEFAULT_BASE_URL}].",
    )(command)


def request_timeout_option(command: F) -> F:
    return click.option(
        "--request-timeout-s",
        default=30.0,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="How long to wait for the API to answer a request.",
    )(command)


def json_option(command: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of a table."
    )(command)


def _not_blank(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    values = value if isinstance(value, tuple) else (value,)
    if any(not v.strip() for v in values):
        raise click.BadParameter("must not be empty")
    return value


def id_argument(name: str, **kwargs: Any) -> Callable[[F], F]:
    """An id argument that refuses empty strings (an empty id would address another route)."""
    return click.argument(name, callback=_not_blank, **kwargs)


def run_api(
    work: Callable[[CommsClient], Awaitable[T]],
    *,
    base_url: str | None,
    not_found_hint: str = "",
) -> T:
    """Run `work` with an open client; turn any CampaignError into one stderr line and an exit."""
    _send_logs_to_stderr()

    async def main() -> T:
        async with CommsClient(base_url=base_url) as client:
            return await work(client)

    try:
        return anyio.run(main)
    except CampaignError as exc:
        code = ExitCode.USAGE if isinstance(exc, RequestRejectedError) else ExitCode.FAILED
        fail(describe_error(exc, not_found_hint=not_found_hint), code)


def describe_error(exc: CampaignError, *, not_found_hint: str = "") -> str:
    """One line: what went wrong, where (in the exception's own text), and what to do."""
    if isinstance(exc, ConfigurationError):
        return f"{exc}."
    if isinstance(exc, UnreachableError):
        return (
            f"{exc}. Check that the API is running there and the URL is right "
            f"(--base-url or ${BASE_URL_VARIABLE}); `campaign emulator` runs a local one."
        )
    if isinstance(exc, AuthenticationError):
        try:
            source = Credentials.from_environment().source.replace("/", " and ")
        except ConfigurationError:
            source = "the TWILIO_* variables"
        scope = "lack access to this API" if exc.status == 403 else "are wrong"
        return f"the API refused the credentials: {exc}. Check {source}: they {scope}."
    if isinstance(exc, NotFoundError):
        return f"not found: {exc}. {not_found_hint or 'Check the id and --base-url.'}".strip()
    if isinstance(exc, RateLimitedError):
        when = f"in {exc.retry_after_s:g} s" if exc.retry_after_s is not None else "later"
        return f"still rate limited after retrying: {exc}. Try again {when}."
    if isinstance(exc, AmbiguousError):
        if exc.method == "GET":
            return f"the API did not answer properly: {exc}. Try again later."
        return (
            f"the API did not answer properly: {exc}. The change may have been made anyway: "
            "check before trying again."
        )
    if isinstance(exc, RequestRejectedError):
        return f"the API rejected the request: {exc}."
    return f"{exc}."


def say(line: str) -> None:
    """A line of ordinary output."""
    click.echo(line)


def warn(line: str) -> None:
    """A line on stderr, prefixed like every error line."""
    click.echo(f"campaign: {line}", err=True)


def fail(line: str, code: ExitCode) -> NoReturn:
    warn(line)
    sys.exit(int(code))


def emit_json(document: dict[str, Any]) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def emit_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None
) -> None:
    """A table on stdout; ids never wrap, and piped output is as wide as it needs to be."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=1000, no_color=True)
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for name in columns:
        table.add_column(name, no_wrap=name == "ID", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def counted(count: int, noun: str) -> str:
    """`1 sender`, `2 senders`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def tags_text(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _send_logs_to_stderr() -> None:
    """Keep log events off stdout, which belongs to the table or the JSON document."""
    if not structlog.is_configured():
        structlog.configure(
            # Resolved per event, so a replaced sys.stderr (tests, redirections) is honoured.
            logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        )
