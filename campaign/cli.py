"""The `campaign` command: parse arguments, call one function, map errors to exit codes.

Exit codes: 0 success; 1 the command could not go on (server unreachable, port in use);
2 bad input (options, files).
"""

from __future__ import annotations

import click

from campaign import __version__
from campaign.emulator_command import emulator_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Send bulk SMS, RCS and WhatsApp campaigns through Twilio Sender Pools."""


cli.add_command(emulator_command)


def main() -> None:
    cli(prog_name="campaign")
