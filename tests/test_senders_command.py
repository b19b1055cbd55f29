"""`campaign senders list` against the emulator, served from a background thread."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from api_fakes import CLI_ENV as ENV
from api_fakes import emulator_in_thread
from click.testing import CliRunner, Result

from campaign.cli import cli
from campaign.emulator import RunningEmulator

DEACTIVATED = "comms_sender_01kdvdna000000000000000009"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with emulator_in_thread() as running:
        yield running
    structlog.reset_defaults()


def senders(emu: RunningEmulator, *args: str, **env: str | None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["senders", "list", *args, "--base-url", emu.base_url],
        env={**ENV, **env},
        catch_exceptions=False,
    )


def ids_in(result: Result) -> list[str]:
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_list_prints_a_table_of_every_sender(emu: RunningEmulator) -> None:
    """Without filters, all nine sample senders are listed with a header row."""
    result = senders(emu)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split() == ["ID", "NAME", "CHANNEL", "ADDRESS", "STATUS"]
    assert len(ids_in(result)) == 9
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (["--status", "deactivated"], 1),
        (["--status", "ACTIVATED"], 8),
        (["--channel", "rcs"], 1),
        (["--channel", "SMS", "--status", "ACTIVATED"], 5),
    ],
)
def test_list_filters_by_status_and_channel(
    emu: RunningEmulator, args: list[str], count: int
) -> None:
    """--status and --channel (any case) narrow the list."""
    result = senders(emu, *args)
    assert result.exit_code == 0
    assert len(ids_in(result)) == count


def test_list_json_is_one_document_with_stable_keys(emu: RunningEmulator) -> None:
    """--json prints {"senders": [...]} with the API's field names."""
    result = senders(emu, "--json", "--status", "DEACTIVATED")
    document = json.loads(result.stdout)
    assert list(document) == ["senders"]
    (sender,) = document["senders"]
    assert sender["id"] == DEACTIVATED
    assert sorted(sender) == [
        "address",
        "channel",
        "createdAt",
        "displayName",
        "id",
        "status",
        "tags",
        "updatedAt",
    ]


def test_list_says_when_nothing_matches(emu: RunningEmulator) -> None:
    """An empty result is a sentence, not an empty table; --json gives an empty list."""
    assert senders(emu, "--channel", "PUSH").stdout == "No senders match.\n"
    assert json.loads(senders(emu, "--channel", "PUSH", "--json").stdout) == {"senders": []}


def test_list_reads_the_base_url_from_the_environment(emu: RunningEmulator) -> None:
    """Without --base-url, $CAMPAIGN_API_BASE_URL is used."""
    result = CliRunner().invoke(
        cli, ["senders", "list"], env={**ENV, "CAMPAIGN_API_BASE_URL": emu.base_url}
    )
    assert result.exit_code == 0
    assert len(ids_in(result)) == 9


@pytest.mark.parametrize(
    ("env", "phrase"),
    [
        ({"TWILIO_AUTH_TOKEN": "wrong"}, "refused the credentials"),
        ({"TWILIO_AUTH_TOKEN": None}, "TWILIO_AUTH_TOKEN is not set"),
        ({"TWILIO_ACCOUNT_SID": None, "TWILIO_AUTH_TOKEN": None}, "no Twilio credentials"),
    ],
)
def test_credential_problems_are_one_line_and_exit_1(
    emu: RunningEmulator, env: dict[str, str | None], phrase: str
) -> None:
    """Wrong or missing credentials end with one stderr line and exit code 1."""
    result = senders(emu, **env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert phrase in result.stderr


def test_an_unreachable_server_is_one_line_and_exit_1() -> None:
    """A base URL nobody answers on ends with one line naming it, and exit code 1."""
    with emulator_in_thread() as emu:
        url = emu.base_url
    result = CliRunner().invoke(cli, ["senders", "list", "--base-url", url], env=ENV)
    assert result.exit_code == 1
    assert result.stderr.startswith("campaign: cannot connect: connection refused")
    assert url in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["--base-url", "ftp://x"], ["--status", "ASLEEP"], ["--channel", "FAX"]],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    """A malformed option is a usage error with exit code 2, before any request."""
    result = CliRunner().invoke(cli, ["senders", "list", *args], env=ENV)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
