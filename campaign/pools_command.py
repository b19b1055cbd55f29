"""`campaign pools ...`: create, inspect, change and delete Sender Pools."""

from __future__ import annotations

import click

from campaign.client import CommsClient
from campaign.console import (
    ExitCode,
    base_url_option,
    counted,
    emit_json,
    emit_table,
    fail,
    id_argument,
    json_option,
    run_api,
    say,
    tags_text,
    warn,
)
from campaign.exceptions import NotFoundError
from campaign.resources import Sender, SenderPool
from campaign.senders_command import SENDER_COLUMNS, sender_rows

__all__ = ["pools_group"]

_POOL_HINT = "List the pools with `campaign pools list`."
_SENDER_HINT = (
    "List the pools with `campaign pools list` and the senders with `campaign senders list`."
)


def _tags(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


@click.group("pools")
def pools_group() -> None:
    """Sender Pools: the groups of senders that campaigns send from."""


@pools_group.command("list")
@base_url_option
@json_option
def list_pools(base_url: str | None, as_json: bool) -> None:
    """List the account's pools."""

    async def work(client: CommsClient) -> list[SenderPool]:
        return [pool async for pool in client.list_pools(page_size=1000)]

    pools = run_api(work, base_url=base_url)
    if as_json:
        emit_json({"senderPools": [p.to_json() for p in pools]})
    elif pools:
        rows = [(p.id, p.name, tags_text(p.tags), p.created_at or "") for p in pools]
        emit_table(("ID", "NAME", "TAGS", "CREATED"), rows)
    else:
        say("No sender pools yet: make one with `campaign pools create NAME --sender ID`.")


@pools_group.command("create")
@click.argument("name")
@click.option(
    "--sender",
    "sender_ids",
    multiple=True,
    metavar="SENDER_ID",
    help="A sender to put in the pool; repeat for more.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_tags,
    help="A tag for the pool; repeat for more.",
)
@base_url_option
def create_pool(
    name: str, sender_ids: tuple[str, ...], tags: dict[str, str], base_url: str | None
) -> None:
    """Create a pool and print its id.

    Each sender that could not be added (unknown, deactivated) is named on stderr, and the
    exit code is then 1; the pool exists all the same.
    """
    wanted = list(dict.fromkeys(s.strip() for s in sender_ids if s.strip()))

    async def work(client: CommsClient) -> tuple[str, list[str]]:
        created = await client.create_pool(name, tags=tags, sender_ids=wanted)
        return created.pool.id, await _refusals(client, created.pool.id, wanted)

    pool_id, refusals = run_api(work, base_url=base_url, not_found_hint=_SENDER_HINT)
    say(pool_id)
    _report(refusals)


@pools_group.command("show")
@id_argument("pool_id")
@base_url_option
@json_option
def show_pool(pool_id: str, base_url: str | None, as_json: bool) -> None:
    """Show a pool and its senders."""

    async def work(client: CommsClient) -> tuple[SenderPool, list[Sender]]:
        pool = await client.fetch_pool(pool_id)
        senders = [s async for s in client.list_pool_senders(pool_id, page_size=1000)]
        return pool, senders

    pool, senders = run_api(work, base_url=base_url, not_found_hint=_POOL_HINT)
    if as_json:
        emit_json({"senderPool": pool.to_json(), "senders": [s.to_json() for s in senders]})
        return
    say(f"{pool.id}  {pool.name}")
    if pool.tags:
        say(f"tags: {tags_text(pool.tags)}")
    say(f"created: {pool.created_at or '-'}  updated: {pool.updated_at or '-'}")
    if senders:
        emit_table(SENDER_COLUMNS, sender_rows(senders), title=counted(len(senders), "sender"))
    else:
        say("No senders: add some with `campaign pools add-sender POOL_ID SENDER_ID`.")


@pools_group.command("add-sender")
@id_argument("pool_id")
@id_argument("sender_ids", nargs=-1, required=True)
@base_url_option
def add_senders(pool_id: str, sender_ids: tuple[str, ...], base_url: str | None) -> None:
    """Add one or more senders to a pool."""
    wanted = list(dict.fromkeys(sender_ids))

    async def work(client: CommsClient) -> list[str]:
        await client.add_pool_senders(pool_id, wanted)
        return await _refusals(client, pool_id, wanted)

    refusals = run_api(work, base_url=base_url, not_found_hint=_POOL_HINT)
    added = len(wanted) - len(refusals)
    if added:
        say(f"Added {counted(added, 'sender')} to {pool_id}.")
    _report(refusals)


@pools_group.command("remove-sender")
@id_argument("pool_id")
@id_argument("sender_id")
@base_url_option
def remove_sender(pool_id: str, sender_id: str, base_url: str | None) -> None:
    """Take a sender out of a pool.

    The sender itself stays in the account and in any other pool.
    """

    async def work(client: CommsClient) -> None:
        await client.remove_pool_sender(pool_id, sender_id)

    run_api(
        work,
        base_url=base_url,
        not_found_hint=f"See the pool's senders with `campaign pools show {pool_id}`.",
    )
    say(f"Removed {sender_id} from {pool_id}.")


@pools_group.command("rename")
@id_argument("pool_id")
@click.argument("name")
@base_url_option
def rename_pool(pool_id: str, name: str, base_url: str | None) -> None:
    """Give a pool a new name."""

    async def work(client: CommsClient) -> SenderPool:
        return await client.update_pool(pool_id, name=name)

    pool = run_api(work, base_url=base_url, not_found_hint=_POOL_HINT)
    say(f"Renamed {pool.id} to {pool.name!r}.")


@pools_group.command("delete")
@id_argument("pool_id")
@base_url_option
def delete_pool(pool_id: str, base_url: str | None) -> None:
    """Delete a pool.

    Its senders stay in the account and in any other pool.
    """

    async def work(client: CommsClient) -> None:
        await client.delete_pool(pool_id)

    run_api(work, base_url=base_url, not_found_hint=_POOL_HINT)
    say(f"Deleted {pool_id}.")


async def _refusals(client: CommsClient, pool_id: str, wanted: list[str]) -> list[str]:
    """One line for each wanted sender that is not in the pool now, saying why."""
    if not wanted:
        return []
    present = {s.id async for s in client.list_pool_senders(pool_id, page_size=1000)}
    lines = []
    for sender_id in wanted:
        if sender_id in present:
            continue
        try:
            sender = await client.fetch_sender(sender_id)
        except NotFoundError:
            why = "there is no such sender. List them with `campaign senders list`"
        else:
            why = (
                f"it is {sender.status}. Choose an ACTIVATED one: "
                "`campaign senders list --status ACTIVATED`"
                if not sender.activated
                else "the API refused it; try adding it again"
            )
        lines.append(f"sender {sender_id} was not added to {pool_id}: {why}.")
    return lines


def _report(refusals: list[str]) -> None:
    if not refusals:
        return
    for line in refusals[:-1]:
        warn(line)
    fail(refusals[-1], ExitCode.FAILED)
