"""`campaign pools ...` against the emulator, served from a background thread."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog
from api_fakes import CLI_ENV as ENV
from api_fakes import LEAK, SID, TOKEN, emulator_in_thread
from click.testing import CliRunner, Result

from campaign.cli import cli
from campaign.emulator import SAMPLE_POOL_ID, Faults, RunningEmulator

SENDER_1 = "comms_sender_01kdvdna000000000000000001"
SENDER_2 = "comms_sender_01kdvdna000000000000000002"
DEACTIVATED = "comms_sender_01kdvdna000000000000000009"
UNKNOWN_SENDER = "comms_sender_01kdvdna0000000000000000zz"
UNKNOWN_POOL = "comms_senderpool_01kdvdna0000000000000000zz"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with emulator_in_thread() as running:
        yield running
    structlog.reset_defaults()


def pools(emu: RunningEmulator, *args: str, token: str = TOKEN) -> Result:
    return CliRunner().invoke(
        cli,
        ["pools", *args, "--base-url", emu.base_url],
        env={**ENV, "TWILIO_AUTH_TOKEN": token},
        catch_exceptions=False,
    )


def members(emu: RunningEmulator, pool_id: str) -> list[str]:
    return list(emu.store.pools[pool_id].sender_ids)


def assert_one_error_line(result: Result, code: int, *phrases: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("campaign: ")
    for phrase in phrases:
        assert phrase in result.stderr


# list


def test_list_prints_the_pools(emu: RunningEmulator) -> None:
    """The table shows each pool's id, name and tags."""
    result = pools(emu, "list")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TAGS", "CREATED"]
    assert row.split()[:4] == [SAMPLE_POOL_ID, "Sample", "Pool", "purpose=sample"]


def test_list_json_is_one_document(emu: RunningEmulator) -> None:
    """--json prints {"senderPools": [...]}."""
    document = json.loads(pools(emu, "list", "--json").stdout)
    assert [p["id"] for p in document["senderPools"]] == [SAMPLE_POOL_ID]


def test_list_says_when_there_are_no_pools(emu: RunningEmulator) -> None:
    """With no pools, the output says how to make one."""
    pools(emu, "delete", SAMPLE_POOL_ID)
    assert "No sender pools yet" in pools(emu, "list").stdout


# create


def test_create_prints_only_the_new_pool_id(emu: RunningEmulator) -> None:
    """A clean create prints the id alone, so scripts can capture it; tags and senders are set."""
    result = pools(
        emu,
        "create",
        "Spring",
        "--sender",
        SENDER_1,
        "--sender",
        SENDER_2,
        "--tag",
        "region=EU",
        "--tag",
        "tier=1",
    )
    assert result.exit_code == 0
    pool_id = result.stdout.strip()
    assert result.stdout == f"{pool_id}\n"
    pool = emu.store.pools[pool_id]
    assert (pool.name, pool.tags) == ("Spring", {"region": "EU", "tier": "1"})
    assert members(emu, pool_id) == [SENDER_1, SENDER_2]


def test_create_reports_each_sender_it_could_not_add(emu: RunningEmulator) -> None:
    """A deactivated and an unknown sender are named with the reason; the id is still printed; exit 1."""
    result = pools(
        emu,
        "create",
        "Mixed",
        "--sender",
        SENDER_1,
        "--sender",
        DEACTIVATED,
        "--sender",
        UNKNOWN_SENDER,
    )
    assert result.exit_code == 1
    pool_id = result.stdout.strip()
    assert members(emu, pool_id) == [SENDER_1]
    deactivated, unknown = result.stderr.splitlines()
    assert deactivated.startswith(
        f"campaign: sender {DEACTIVATED} was not added to {pool_id}: it is DEACTIVATED"
    )
    assert "--status ACTIVATED" in deactivated
    assert unknown.startswith(
        f"campaign: sender {UNKNOWN_SENDER} was not added to {pool_id}: there is no such sender"
    )


def test_create_without_senders_makes_an_empty_pool(emu: RunningEmulator) -> None:
    """A pool can start empty."""
    result = pools(emu, "create", "Empty")
    assert result.exit_code == 0
    assert members(emu, result.stdout.strip()) == []


@pytest.mark.parametrize("tag", ["novalue", "=x", " =x"])
def test_create_refuses_a_malformed_tag(emu: RunningEmulator, tag: str) -> None:
    """--tag must be KEY=VALUE; otherwise exit 2 and nothing is created."""
    result = pools(emu, "create", "X", "--tag", tag)
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr
    assert list(emu.store.pools) == [SAMPLE_POOL_ID]


# show


def test_show_prints_the_pool_and_its_senders(emu: RunningEmulator) -> None:
    """The pool's id, name and tags come first, then a table of its six senders."""
    result = pools(emu, "show", SAMPLE_POOL_ID)
    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert lines[0] == f"{SAMPLE_POOL_ID}  Sample Pool"
    assert lines[1] == "tags: purpose=sample"
    assert lines[3].strip() == "6 senders"
    assert lines[4].split() == ["ID", "NAME", "CHANNEL", "ADDRESS", "STATUS"]
    assert [line.split()[0] for line in lines[5:]] == members(emu, SAMPLE_POOL_ID)


def test_show_json_holds_the_pool_and_its_senders(emu: RunningEmulator) -> None:
    """--json prints {"senderPool": {...}, "senders": [...]}."""
    document = json.loads(pools(emu, "show", SAMPLE_POOL_ID, "--json").stdout)
    assert sorted(document) == ["senderPool", "senders"]
    assert document["senderPool"]["name"] == "Sample Pool"
    assert [s["id"] for s in document["senders"]] == members(emu, SAMPLE_POOL_ID)


def test_show_an_empty_pool_says_how_to_fill_it(emu: RunningEmulator) -> None:
    """A pool without senders says so instead of printing an empty table."""
    pool_id = pools(emu, "create", "Empty").stdout.strip()
    assert "No senders: add some with" in pools(emu, "show", pool_id).stdout


def test_show_an_unknown_pool_exits_1_with_a_hint(emu: RunningEmulator) -> None:
    """An unknown id is one line naming it, the URL and `campaign pools list`."""
    result = pools(emu, "show", UNKNOWN_POOL)
    assert_one_error_line(result, 1, "not found", UNKNOWN_POOL, emu.base_url, "campaign pools list")
    assert result.stdout == ""


# add-sender / remove-sender


def test_add_sender_adds_several_senders(emu: RunningEmulator) -> None:
    """Several senders are added in one command and counted."""
    pool_id = pools(emu, "create", "Empty").stdout.strip()
    result = pools(emu, "add-sender", pool_id, SENDER_1, SENDER_2)
    assert result.exit_code == 0
    assert result.stdout == f"Added 2 senders to {pool_id}.\n"
    assert members(emu, pool_id) == [SENDER_1, SENDER_2]


def test_add_sender_reports_a_deactivated_sender(emu: RunningEmulator) -> None:
    """A deactivated sender is not added: one line saying so, exit 1."""
    result = pools(emu, "add-sender", SAMPLE_POOL_ID, DEACTIVATED)
    assert_one_error_line(result, 1, DEACTIVATED, "it is DEACTIVATED")
    assert result.stdout == ""
    assert DEACTIVATED not in members(emu, SAMPLE_POOL_ID)


def test_add_sender_to_an_unknown_pool_exits_1(emu: RunningEmulator) -> None:
    """Adding to a pool that does not exist is a one-line not-found error."""
    assert_one_error_line(
        pools(emu, "add-sender", UNKNOWN_POOL, SENDER_1), 1, "not found", UNKNOWN_POOL
    )


def test_add_sender_needs_a_sender(emu: RunningEmulator) -> None:
    """Without a sender id it is a usage error."""
    assert pools(emu, "add-sender", SAMPLE_POOL_ID).exit_code == 2


def test_remove_sender_takes_it_out(emu: RunningEmulator) -> None:
    """The sender leaves the pool; removing it again is a not-found error with exit 1."""
    result = pools(emu, "remove-sender", SAMPLE_POOL_ID, SENDER_1)
    assert result.exit_code == 0
    assert result.stdout == f"Removed {SENDER_1} from {SAMPLE_POOL_ID}.\n"
    assert SENDER_1 not in members(emu, SAMPLE_POOL_ID)
    again = pools(emu, "remove-sender", SAMPLE_POOL_ID, SENDER_1)
    assert_one_error_line(again, 1, "not found", f"campaign pools show {SAMPLE_POOL_ID}")


# rename / delete


def test_rename_changes_the_name(emu: RunningEmulator) -> None:
    """The pool takes the new name."""
    result = pools(emu, "rename", SAMPLE_POOL_ID, "Autumn")
    assert result.exit_code == 0
    assert result.stdout == f"Renamed {SAMPLE_POOL_ID} to 'Autumn'.\n"
    assert emu.store.pools[SAMPLE_POOL_ID].name == "Autumn"


def test_delete_removes_the_pool(emu: RunningEmulator) -> None:
    """The pool is gone; deleting it again exits 1 with one line."""
    assert pools(emu, "delete", SAMPLE_POOL_ID).stdout == f"Deleted {SAMPLE_POOL_ID}.\n"
    assert SAMPLE_POOL_ID not in emu.store.pools
    assert_one_error_line(pools(emu, "delete", SAMPLE_POOL_ID), 1, "not found")


@pytest.mark.parametrize(
    "command", [["show", " "], ["delete", ""], ["remove-sender", SAMPLE_POOL_ID, ""]]
)
def test_an_empty_id_is_a_usage_error(emu: RunningEmulator, command: list[str]) -> None:
    """An empty id never reaches the API (it would address another route)."""
    result = pools(emu, *command)
    assert result.exit_code == 2
    assert "must not be empty" in result.stderr
    assert emu.stats.total() == 0


def test_server_trouble_on_a_change_warns_it_may_have_happened(emu: RunningEmulator) -> None:
    """A 5xx on delete is not retried; the line says the change may have been made."""
    emu.faults.configure(Faults(error_rate=1.0))
    result = pools(emu, "delete", SAMPLE_POOL_ID)
    assert_one_error_line(result, 1, "may have been made anyway")
    assert sum(emu.stats.snapshot()["DELETE /SenderPools/{pool_id}"].values()) == 1


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", SAMPLE_POOL_ID],
        ["rename", SAMPLE_POOL_ID, "X"],
        ["delete", SAMPLE_POOL_ID],
        ["create", "X"],
    ],
)
def test_wrong_credentials_exit_1_with_one_line(emu: RunningEmulator, command: list[str]) -> None:
    """Every pools command reports refused credentials the same way."""
    result = pools(emu, *command, token="wrong-token")
    assert_one_error_line(
        result, 1, "refused the credentials", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )
    assert "Traceback" not in result.output


# secrets


def test_the_token_never_appears_in_any_output() -> None:
    """Across every command, succeeding or refused, the auth token is never printed."""
    wrong = LEAK + "-wrong"
    with emulator_in_thread(token=LEAK) as emu:
        pool_id = pools(
            emu, "create", "Leak", "--sender", SENDER_1, "--sender", DEACTIVATED, token=LEAK
        ).stdout.strip()
        commands = [
            ["list"],
            ["list", "--json"],
            ["show", pool_id],
            ["show", pool_id, "--json"],
            ["add-sender", pool_id, SENDER_2, DEACTIVATED],
            ["remove-sender", pool_id, SENDER_2],
            ["rename", pool_id, "Renamed"],
            ["create", "Other", "--sender", UNKNOWN_SENDER],
            ["show", UNKNOWN_POOL],
            ["delete", pool_id],
        ]
        outputs = [
            pools(emu, *command, token=token).output
            for command in commands
            for token in (LEAK, wrong)
        ]
        outputs += [
            CliRunner()
            .invoke(
                cli,
                ["senders", "list", "--base-url", emu.base_url],
                env={**ENV, "TWILIO_AUTH_TOKEN": token},
            )
            .output
            for token in (LEAK, wrong)
        ]
    structlog.reset_defaults()
    assert any("Renamed" in output for output in outputs)
    assert not [output for output in outputs if LEAK in output]


# end to end, through real processes


def test_a_pool_round_trip_through_the_installed_command() -> None:
    """`python -m campaign` creates and shows a pool on a `campaign emulator` process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "CAMPAIGN_"))}
    command = [sys.executable, "-m", "campaign"]
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module, our own arguments
        [*command, "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True, env=base
    ) as emulator:
        try:
            assert emulator.stdout is not None
            ready, _, _ = select.select([emulator.stdout], [], [], 20)
            assert ready, "the emulator printed no banner"
            banner = re.search(r"listening on (\S+/preview)", emulator.stdout.readline())
            assert banner is not None
            env = {**base, "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
            pools_cmd = [*command, "pools"]
            url = ["--base-url", banner.group(1)]
            created = subprocess.run(  # noqa: S603 - as above
                [*pools_cmd, "create", "E2E", "--sender", SENDER_1, "--tag", "run=e2e", *url],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            shown = subprocess.run(  # noqa: S603 - as above
                [*pools_cmd, "show", created.stdout.strip(), "--json", *url],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
    assert (created.returncode, created.stderr) == (0, "")
    assert shown.returncode == 0
    document = json.loads(shown.stdout)
    assert document["senderPool"]["tags"] == {"run": "e2e"}
    assert [s["id"] for s in document["senders"]] == [SENDER_1]
