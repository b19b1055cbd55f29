"""The `campaign` command: parse arguments, call one function, map errors to exit codes.

Exit codes (`campaign.console.ExitCode`), the same for every command:
- 0 success.
- 1 the command could not go on: missing or wrong credentials, server unreachable, unknown
  pool or sender id, a sender that could not be added (e.g. deactivated), server trouble,
  port in use.
- 2 bad input: options, arguments, files, or a request the API rejected as invalid (400).
- 3 (`run`) stopped early with work left (--max-recipients, --max-duration, a signal).
- 4 (`run`, `reconcile`) everything was read, but some recipients are `in_doubt`.
- 5 (`run`, `reconcile`) another run of the campaign holds its ledger; nothing was done.
"""

from __future__ import annotations

import click

from campaign import __version__
from campaign.emulator_command import emulator_command
from campaign.pools_command import pools_group
from campaign.preview_command import preview_command
from campaign.reconcile_command import reconcile_command
from campaign.run_command import run_command
from campaign.senders_command import senders_group

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Send bulk SMS, RCS and WhatsApp campaigns through Twilio Sender Pools."""


cli.add_command(emulator_command)
cli.add_command(senders_group)
cli.add_command(pools_group)
cli.add_command(preview_command)
cli.add_command(run_command)
cli.add_command(reconcile_command)


def main() -> None:
    cli(prog_name="campaign")
