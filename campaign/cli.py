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

import importlib

import click

from campaign import __version__

__all__ = ["main"]

# Each command's module is imported only when that command runs (or --help lists them):
# a cron `campaign run` then does not pay for the emulator's import, ~0.1 s of its start.
_COMMANDS = {
    "emulator": "campaign.emulator_command:emulator_command",
    "senders": "campaign.senders_command:senders_group",
    "pools": "campaign.pools_command:pools_group",
    "preview": "campaign.preview_command:preview_command",
    "run": "campaign.run_command:run_command",
    "reconcile": "campaign.reconcile_command:reconcile_command",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, name = _COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{_COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Send bulk SMS, RCS and WhatsApp campaigns through Twilio Sender Pools."""


def main() -> None:
    cli(prog_name="campaign")
