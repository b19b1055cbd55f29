"""`campaign senders list`: the account's senders (phone numbers, RCS agents, WhatsApp...)."""

from __future__ import annotations

import click

from campaign.client import CommsClient
from campaign.console import base_url_option, emit_json, emit_table, json_option, run_api, say
from campaign.resources import Sender

__all__ = ["SENDER_CHANNELS", "SENDER_STATUSES", "sender_rows", "senders_group"]

SENDER_STATUSES = ("ACTIVATED", "DEACTIVATED")
SENDER_CHANNELS = ("SMS", "RCS", "EMAIL", "WHATSAPP", "PUSH")
SENDER_COLUMNS = ("ID", "NAME", "CHANNEL", "ADDRESS", "STATUS")


def sender_rows(senders: list[Sender]) -> list[tuple[str, ...]]:
    return [(s.id, s.display_name, s.channel, s.address, s.status) for s in senders]


@click.group("senders")
def senders_group() -> None:
    """The account's senders: what a pool can be made of."""


@senders_group.command("list")
@click.option(
    "--status",
    type=click.Choice(SENDER_STATUSES, case_sensitive=False),
    help="Only senders with this status.",
)
@click.option(
    "--channel",
    type=click.Choice(SENDER_CHANNELS, case_sensitive=False),
    help="Only senders on this channel.",
)
@base_url_option
@json_option
def list_senders(
    status: str | None, channel: str | None, base_url: str | None, as_json: bool
) -> None:
    """List senders, with their ids for `campaign pools create --sender`."""

    async def work(client: CommsClient) -> list[Sender]:
        return [
            sender
            async for sender in client.list_senders(status=status, channel=channel, page_size=1000)
        ]

    senders = run_api(work, base_url=base_url)
    if as_json:
        emit_json({"senders": [s.to_json() for s in senders]})
    elif senders:
        emit_table(SENDER_COLUMNS, sender_rows(senders))
    else:
        say("No senders match.")
