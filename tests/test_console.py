"""What the API commands share: exit codes, error lines, JSON and tables."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from api_fakes import LEAK, SID

from campaign import cli
from campaign.client import CommsClient
from campaign.console import (
    ExitCode,
    counted,
    describe_error,
    emit_json,
    emit_table,
    run_api,
    tags_text,
)
from campaign.exceptions import (
    AuthenticationError,
    CampaignError,
    ConfigurationError,
    ConnectionLostError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnexpectedResponseError,
    UnreachableError,
)

URL = "http://127.0.0.1:8765/preview/SenderPools/p"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TWILIO_API_KEY", "TWILIO_API_SECRET", "CAMPAIGN_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", LEAK)
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("code", "value"), [(ExitCode.OK, 0), (ExitCode.FAILED, 1), (ExitCode.USAGE, 2)]
)
def test_exit_codes_are_documented_in_the_cli(code: ExitCode, value: int) -> None:
    """Each exit code has its value and is explained in the docstring of campaign.cli."""
    assert int(code) == value
    assert f"- {value} " in (cli.__doc__ or "")


@pytest.mark.parametrize(
    ("error", "phrases"),
    [
        (ConfigurationError("no Twilio credentials: set X"), ["no Twilio credentials: set X."]),
        (
            UnreachableError("connection refused", method="GET", url=URL),
            ["cannot connect", URL, "--base-url", "campaign emulator"],
        ),
        (
            AuthenticationError("Authentication failed", status=401, method="GET", url=URL),
            [
                "refused the credentials",
                URL,
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                "are wrong",
            ],
        ),
        (AuthenticationError("Forbidden", status=403, url=URL), ["lack access to this API"]),
        (
            NotFoundError("SenderPool p was not found", status=404, url=URL),
            ["not found: SenderPool p", "Check the id"],
        ),
        (
            RateLimitedError("Too many", status=429, retry_after_s=5, url=URL),
            ["still rate limited", "Try again in 5 s."],
        ),
        (RateLimitedError("Too many", status=429, url=URL), ["Try again later."]),
        (
            ServerError("Unavailable", status=503, method="GET", url=URL),
            ["did not answer properly", "Try again later."],
        ),
        (ConnectionLostError("lost", method="DELETE", url=URL), ["may have been made anyway"]),
        (
            RequestRejectedError("name is too long", status=400, url=URL),
            ["rejected the request: name is too long"],
        ),
    ],
    ids=[
        "config",
        "unreachable",
        "401",
        "403",
        "404",
        "429",
        "429-no-wait",
        "5xx-get",
        "lost-delete",
        "400",
    ],
)
def test_each_error_becomes_one_line_with_what_where_and_what_to_do(
    error: CampaignError, phrases: list[str]
) -> None:
    """The line names the failure, the URL it came from, and the next step."""
    line = describe_error(error)
    assert "\n" not in line
    for phrase in phrases:
        assert phrase in line


def test_a_not_found_line_carries_the_commands_hint() -> None:
    """A command's own hint replaces the generic one."""
    line = describe_error(
        NotFoundError("gone", status=404), not_found_hint="Try `campaign pools list`."
    )
    assert line.endswith("Try `campaign pools list`.")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RequestRejectedError("bad", status=400), ExitCode.USAGE),
        (NotFoundError("gone", status=404), ExitCode.FAILED),
        (AuthenticationError("no", status=401), ExitCode.FAILED),
        (UnreachableError("refused", method="GET", url=URL), ExitCode.FAILED),
        (UnexpectedResponseError("odd"), ExitCode.FAILED),
        (ConfigurationError("missing"), ExitCode.FAILED),
    ],
)
def test_run_api_turns_errors_into_an_exit_code_and_one_line(
    error: CampaignError, code: ExitCode, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CampaignError from the work ends the command with its exit code and one stderr line."""

    async def work(client: CommsClient) -> None:
        raise error

    with pytest.raises(SystemExit) as exited:
        run_api(work, base_url="http://127.0.0.1:1/preview")
    captured = capsys.readouterr()
    assert exited.value.code == code
    assert captured.out == ""
    assert captured.err.startswith("campaign: ")
    assert captured.err.count("\n") == 1


def test_run_api_reports_missing_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without credentials the command stops before any request, naming the variables."""
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")

    async def work(client: CommsClient) -> None:
        raise AssertionError("never reached")

    with pytest.raises(SystemExit) as exited:
        run_api(work, base_url=None)
    assert exited.value.code == ExitCode.FAILED
    assert "TWILIO_AUTH_TOKEN is not set" in capsys.readouterr().err


def test_run_api_returns_what_the_work_returns() -> None:
    """On success the work's result comes back to the command."""

    async def work(client: CommsClient) -> str:
        return client.base_url

    assert run_api(work, base_url="http://127.0.0.1:1/v1") == "http://127.0.0.1:1/v1"


def test_json_output_is_one_document_with_sorted_keys(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints a single document whose keys come in a stable order."""
    emit_json({"b": 1, "a": {"d": 2, "c": 3}})
    out = capsys.readouterr().out
    assert json.loads(out) == {"a": {"c": 3, "d": 2}, "b": 1}
    assert out.index('"a"') < out.index('"b"')
    assert out.index('"c"') < out.index('"d"')


def test_a_piped_table_never_wraps_long_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a terminal, every row is printed on one line, ids whole."""
    long_id = "comms_senderpool_" + "x" * 200
    emit_table(("ID", "NAME"), [(long_id, "A name with words")], title="Pools")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == "Pools"
    assert lines[1].split() == ["ID", "NAME"]
    assert lines[2].split() == [long_id, "A", "name", "with", "words"]
    assert "\x1b[" not in "".join(lines)


@pytest.mark.parametrize(("count", "text"), [(0, "0 senders"), (1, "1 sender"), (2, "2 senders")])
def test_counted_agrees_in_number(count: int, text: str) -> None:
    """Nouns take a plural s except for one."""
    assert counted(count, "sender") == text


def test_tags_are_shown_sorted_as_key_value_pairs() -> None:
    """Tags read as `key=value` pairs in key order."""
    assert tags_text({"region": "EU", "purpose": "sample"}) == "purpose=sample region=EU"
