"""`campaign run` end to end: the CLI, the engine and the ledger against the real emulator.

The emulator runs on a loopback port in a background thread (`emulator_in_thread`); the
command runs its own event loop through click's CliRunner, as a user's terminal would.
What was sent is checked from the emulator's side (`/_emulator/stats`, `/_emulator/messages`)
and from the ledger.
"""

from __future__ import annotations

import bisect
import errno
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import structlog
from api_fakes import CLI_ENV, FakeSleep, emulator_in_thread
from click.testing import CliRunner, Result

from campaign import engine as engine_module
from campaign import ledger as ledger_module
from campaign import recipients as recipients_module
from campaign import reconcile_command as reconcile_command_module
from campaign import run_command as run_command_module
from campaign import runtime as runtime_module
from campaign.cli import cli
from campaign.emulator import SAMPLE_POOL_ID, Clock, Faults, RunningEmulator
from campaign.engine import CampaignRun, _Batch, _Entry
from campaign.ledger import LedgerLock
from campaign.reconcile import reconcile
from campaign.resources import MessageBatch, Recipient
from campaign.retries import RetryPolicy
from campaign.spec import load_spec
from campaign.templating import ROW_TAG_TEMPLATE

SAMPLES = Path(__file__).parent.parent / "sample_campaigns"
UNKNOWN_POOL = "comms_senderpool_01kdvdna0000000000000000zz"


@pytest.fixture(autouse=True)
def no_real_waits(monkeypatch: pytest.MonkeyPatch) -> FakeSleep:
    """Retries of GETs and reconciliation's settle wait happen at once (recorded)."""
    sleep = FakeSleep()
    monkeypatch.setattr(runtime_module, "RETRY_POLICY", RetryPolicy(sleep=sleep))
    monkeypatch.setattr(
        run_command_module, "CampaignRun", functools.partial(CampaignRun, sleep=sleep)
    )
    return sleep


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with emulator_in_thread() as running:
        yield running
    structlog.reset_defaults()


def inspect(emu: RunningEmulator, what: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{emu.root_url}/_emulator/{what}", timeout=10) as answer:  # noqa: S310 - loopback
        document: dict[str, Any] = json.loads(answer.read())
    return document


def sent_rows(emu: RunningEmulator) -> Counter[int]:
    """How many messages the emulator holds for each row tag."""
    messages = inspect(emu, "messages")["messages"]
    return Counter(int(message["tags"]["row"]) for message in messages)


def ledger_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_states(path: Path) -> dict[int, str]:
    states: dict[int, str] = {}
    for line in ledger_lines(path):
        if line["type"] == "recipient":
            states[line["row"]] = line["status"]
    return states


def write_campaign(
    folder: Path,
    rows: list[str],
    *,
    header: str = "phone,first_name",
    pool: str = SAMPLE_POOL_ID,
    rate: float = 1_000_000,
    batch_size: int = 10,
    concurrency: int = 4,
    text: str = "Hi {{ first_name | default: 'there' }}",
    extra: str = "",
) -> Path:
    (folder / "people.csv").write_text("\n".join([header, *rows]) + "\n")
    campaign = folder / "campaign.toml"
    campaign.write_text(
        f"""
name = "test-run"
[recipients]
path = "people.csv"
address = "phone"
{extra}
[sender]
pool = "{pool}"
[message]
text = "{text}"
[sending]
rate_per_s = {rate}
batch_size = {batch_size}
concurrency = {concurrency}
"""
    )
    return campaign


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+1206555{1000 + start + i:04d},Person{start + i}" for i in range(count)]


def run(emu: RunningEmulator, campaign: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["run", str(campaign), "--base-url", emu.base_url, "--yes", *args],
        env=CLI_ENV,
        catch_exceptions=False,
    )


def summary(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# The whole campaign


def test_sample_campaign_sends_every_valid_recipient_exactly_once(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    for name in ("spring-sale.toml", "spring-sale.csv", "optouts.csv"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    result = run(emu, tmp_path / "spring-sale.toml", "--json")
    assert result.exit_code == 0, result.output
    ledger = tmp_path / "spring-sale.ledger.jsonl"
    states = final_states(ledger)
    assert sorted(states) == list(range(1, 21))  # every row of the file has its line
    accepted = {row for row, state in states.items() if state == "accepted"}
    stats = inspect(emu, "stats")
    assert stats["recipients_accepted"] == len(accepted) == 13
    assert stats["duplicates"] == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(accepted, 1))
    document = summary(result)
    assert document["this_run"]["accepted"] == 13
    assert document["ledger"]["settled"] == 20
    assert stat.S_IMODE(os.stat(ledger).st_mode) == 0o600

    again = run(emu, tmp_path / "spring-sale.toml", "--json")
    assert again.exit_code == 0, again.output
    assert inspect(emu, "stats")["recipients_accepted"] == 13  # nothing sent twice
    assert summary(again)["requests"] == 0


def test_recipients_carry_the_campaign_and_row_tags(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(
        tmp_path, ["+12065551000,Ada,secret-note"], header="phone,first_name,note"
    )
    result = run(emu, campaign)
    assert result.exit_code == 0, result.output
    (message,) = inspect(emu, "messages")["messages"]
    assert message["tags"] == {"campaign": "test-run", "row": "1"}
    line = next(x for x in ledger_lines(tmp_path / "test-run.ledger.jsonl") if x.get("row") == 1)
    assert line["status"] == "accepted"
    assert line["operation"] == message["operationId"]
    assert line["address"] == "+12065551000"
    assert line["pool"] == SAMPLE_POOL_ID


def test_max_recipients_stops_and_the_next_run_goes_on(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    rows = numbers(25)
    rows.insert(10, "not-a-number,Nobody")
    campaign = write_campaign(tmp_path, rows, batch_size=4)
    first = run(emu, campaign, "--max-recipients", "7", "--json")
    assert first.exit_code == 3, first.output
    assert summary(first)["work_left"] is True
    assert inspect(emu, "stats")["recipients_accepted"] == 7
    runs = 1
    while True:
        result = run(emu, campaign, "--max-recipients", "7", "--json")
        runs += 1
        if result.exit_code == 0:
            break
        assert result.exit_code == 3, result.output
        assert runs < 10
    assert runs == 4  # 25 recipients, 7 at a time
    states = final_states(tmp_path / "test-run.ledger.jsonl")
    assert sorted(states) == list(range(1, 27))
    assert Counter(states.values()) == {"accepted": 25, "invalid": 1}
    assert sent_rows(emu) == Counter({row: 1 for row, s in states.items() if s == "accepted"})


def test_a_stopped_run_resumes_to_the_same_ledger_as_an_unbroken_one(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    rows = [*numbers(30), "+12065551003,Again", "bad,Row"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    assert run(emu, write_campaign(whole, rows)).exit_code == 0
    campaign = write_campaign(parts, rows)
    assert run(emu, campaign, "--max-recipients", "11").exit_code == 3
    assert run(emu, campaign).exit_code == 0
    assert final_states(whole / "test-run.ledger.jsonl") == final_states(
        parts / "test-run.ledger.jsonl"
    )


def test_a_resumed_run_reads_only_past_the_settled_rows_and_still_finds_their_repeats(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<ledger>.keys: rows every earlier run settled are not checked again, yet a later row
    repeating one of them is still a duplicate; without the file, everything is read again."""
    rows = [*numbers(12), numbers(1, start=1)[0], *numbers(3, start=12)]  # row 13 = row 2
    campaign = write_campaign(tmp_path, rows, batch_size=5)
    ledger = tmp_path / "test-run.ledger.jsonl"
    keys = tmp_path / "test-run.ledger.jsonl.keys"
    checked: list[str] = []
    real_normalise = recipients_module.normalise

    def counting_normalise(raw: str, region: str | None) -> str | None:
        checked.append(raw)
        return real_normalise(raw, region)

    monkeypatch.setattr(recipients_module, "normalise", counting_normalise)
    assert run(emu, campaign, "--max-recipients", "5").exit_code == 3
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    checked.clear()
    assert run(emu, campaign).exit_code == 0
    assert len(checked) == len(rows) - 5  # rows 1-5, settled, were not checked again
    states = final_states(ledger)
    assert states[13] == "duplicate"
    assert [x["error"] for x in ledger_lines(ledger) if x.get("row") == 13] == [
        "same address and channel as row 2"
    ]
    assert sent_rows(emu) == Counter(dict.fromkeys([*range(1, 13), *range(14, 17)], 1))

    keys.unlink()  # safe to delete: the next run reads every row again
    with (tmp_path / "people.csv").open("a") as people:
        people.write(numbers(1)[0].split(",")[0] + ",Again\n")  # row 17 = row 1
    checked.clear()
    assert run(emu, campaign).exit_code == 0
    assert len(checked) == len(rows) + 1
    assert final_states(ledger)[17] == "duplicate"
    assert sent_rows(emu) == Counter(dict.fromkeys([*range(1, 13), *range(14, 17)], 1))


# What the API answers


def test_a_refused_batch_is_split_until_only_the_bad_rows_fail(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Let two numbers the API will refuse through the local check, as a newer phonenumbers
    # release on either side could.
    real = recipients_module.normalise
    slipped = {"+15550000001", "+15550000002"}
    monkeypatch.setattr(
        recipients_module,
        "normalise",
        lambda raw, region=None: raw if raw in slipped else real(raw, region),
    )
    rows = numbers(20)
    rows[5] = "+15550000001,Bad1"
    rows[17] = "+15550000002,Bad2"
    campaign = write_campaign(tmp_path, rows, batch_size=10)
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    lines = ledger_lines(tmp_path / "test-run.ledger.jsonl")
    failed = [x for x in lines if x.get("status") == "failed"]
    assert sorted(x["row"] for x in failed) == [6, 18]
    assert {x["code"] for x in failed} == {21614}
    assert all(x["http"] == 400 and x["error"] for x in failed)
    assert inspect(emu, "stats")["recipients_accepted"] == 18
    assert sent_rows(emu) == Counter({row: 1 for row in range(1, 21) if row not in (6, 18)})
    released = [x for x in lines if x["type"] == "released"]
    assert released  # every refused request's intent is released, not left in doubt
    assert summary(result)["ledger"]["by_state"]["in_doubt"] == 0


def test_a_429_storm_slows_the_run_but_loses_nothing(emu: RunningEmulator, tmp_path: Path) -> None:
    emu.faults.configure(
        Faults(max_concurrent_requests=2, retry_after_s=0, latency_ms=(5, 10), seed=7)
    )
    campaign = write_campaign(tmp_path, numbers(60), batch_size=3, concurrency=8)
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    stats = inspect(emu, "stats")
    assert stats["requests"]["POST /Messages"].get("429", 0) > 0  # the storm happened
    assert stats["recipients_accepted"] == 60
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 61), 1))
    assert Counter(final_states(tmp_path / "test-run.ledger.jsonl").values()) == {"accepted": 60}


def test_a_429_voids_the_intents_written_ahead_for_the_paused_pool(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    """At batch 1, intents written ahead when a 429 pauses the pool are released, sent later."""
    emu.faults.configure(
        Faults(max_concurrent_requests=2, retry_after_s=0, latency_ms=(5, 10), seed=7)
    )
    campaign = write_campaign(tmp_path, numbers(60), batch_size=1, concurrency=8)
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    lines = ledger_lines(tmp_path / "test-run.ledger.jsonl")
    whys = Counter(x["why"] for x in lines if x["type"] == "released")
    assert whys["paused"] > 0
    # (`late`: a slot taken ahead that passed while the workers were busy, none free then.)
    assert set(whys) <= {"429", "paused", "late"}
    intents = {x["batch"] for x in lines if x["type"] == "intent"}
    answered = {x["batch"] for x in lines if x["type"] in ("recipient", "released")}
    assert intents == answered
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 61), 1))


def test_an_account_that_takes_fewer_requests_at_once_is_sent_at_its_limit(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    """The API allows 2 requests in flight, the campaign asks for 8: the first 429s lower
    the run's cap, and from then on requests go at the account's limit, not into 429s
    (before: 885 429s and 150 s for 300 recipients)."""
    emu.faults.configure(Faults(max_concurrent_requests=2, latency_ms=(2, 4), seed=3))
    campaign = write_campaign(tmp_path, numbers(120), batch_size=1, concurrency=8)
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    posts = inspect(emu, "stats")["requests"]["POST /Messages"]
    assert posts["202"] == 120
    assert 0 < posts.get("429", 0) <= 12  # about one for each worker above the limit
    assert "campaign.concurrency_lowered" in result.stderr
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 121), 1))


def test_server_errors_are_reconciled_as_absent_and_sent_once(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.faults.configure(Faults(error_rate=1.0, seed=1))  # every request: 500, not processed
    campaign = write_campaign(tmp_path, numbers(8), batch_size=4)
    result = run(emu, campaign, "--json")
    # The API cannot be asked either, so the rows stay in doubt: never resent blindly.
    assert result.exit_code == 4, result.output
    document = summary(result)
    assert document["ledger"]["by_state"]["in_doubt"] == 8
    (why,) = document["reconciled"]["left_in_doubt"]
    assert "could not list its messages" in why
    assert inspect(emu, "stats")["recipients_accepted"] == 0
    emu.faults.configure(Faults())
    again = run(emu, campaign, "--json")
    assert again.exit_code == 0, again.output
    assert summary(again)["reconciled"]["absent"] == 8  # proven absent, then sent
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 9), 1))


def test_accepted_then_failed_batches_are_found_not_resent(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    # Every POST is processed and then answered 500 or dropped; GETs answer normally.
    emu.faults.configure(Faults(accept_then_fail_rate=1.0, seed=1))
    campaign = write_campaign(tmp_path, numbers(8), batch_size=4)
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    document = summary(result)
    assert document["this_run"]["in_doubt"] == 8  # what the answers said...
    assert document["reconciled"]["found"] == 8  # ...and what the API's records showed
    assert document["ledger"]["by_state"] == {
        **dict.fromkeys(document["ledger"]["by_state"], 0),
        "accepted": 8,
    }
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 9), 1))
    assert inspect(emu, "stats")["duplicates"] == 0
    lines = ledger_lines(tmp_path / "test-run.ledger.jsonl")
    reconciled = [x for x in lines if x.get("reconciled")]
    assert len(reconciled) == 8
    assert all(x["message"].startswith("comms_message_") for x in reconciled)


def test_dropped_connections_are_reconciled_and_resent_within_the_run(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    # Half the requests are dropped before processing (seeded): absent, so sent again.
    emu.faults.configure(Faults(drop_rate=0.3, seed=3))
    campaign = write_campaign(tmp_path, numbers(40), batch_size=4)
    result = run(emu, campaign, "--json")
    assert result.exit_code in (0, 4), result.output
    states = final_states(tmp_path / "test-run.ledger.jsonl")
    accepted = {row for row, state in states.items() if state == "accepted"}
    assert summary(result)["reconciled"]["absent"] > 0
    assert sent_rows(emu) == Counter(dict.fromkeys(accepted, 1))  # never twice
    emu.faults.configure(Faults())
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 41), 1))


def test_resend_in_doubt_sends_what_the_api_cannot_vouch_for(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path, numbers(4), batch_size=2)
    ledger = tmp_path / "test-run.ledger.jsonl"
    assert run(emu, campaign, "--max-recipients", "2").exit_code == 3
    with ledger.open("a") as handle:  # a request 8 days old whose answer was never recorded
        handle.write(
            json.dumps(
                {
                    "type": "intent",
                    "batch": "9.1",
                    "pool": SAMPLE_POOL_ID,
                    "rows": [3],
                    "at": "2026-01-01T00:00:00.000Z",
                }
            )
            + "\n"
        )
    kept = run(emu, campaign, "--json")
    assert kept.exit_code == 4, kept.output
    (why,) = summary(kept)["reconciled"]["left_in_doubt"]
    assert "7-day retention" in why
    forced = run(emu, campaign, "--resend-in-doubt", "--json")
    assert forced.exit_code == 0, forced.output
    assert summary(forced)["reconciled"]["resent_blindly"] == 1
    assert "campaign.in_doubt_resent" in forced.stderr
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 5), 1))


def test_an_unknown_pool_stops_before_anything_is_written(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path, numbers(3), pool=UNKNOWN_POOL)
    result = run(emu, campaign)
    assert result.exit_code == 1
    assert "not found" in result.stderr
    assert UNKNOWN_POOL in result.stderr
    assert not (tmp_path / "test-run.ledger.jsonl").exists()
    assert inspect(emu, "stats")["recipients_accepted"] == 0


def test_bad_credentials_stop_the_run_and_mark_nobody(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(3))
    result = CliRunner().invoke(
        cli,
        ["run", str(campaign), "--base-url", emu.base_url, "--yes"],
        env={**CLI_ENV, "TWILIO_AUTH_TOKEN": "wrong-token"},
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "credentials" in result.stderr
    assert "wrong-token" not in result.output
    assert not (tmp_path / "test-run.ledger.jsonl").exists()


# Input and ledger checks


def test_an_edited_input_is_refused_unless_forced(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(5))
    assert run(emu, campaign, "--max-recipients", "2").exit_code == 3
    people = tmp_path / "people.csv"
    people.write_text(people.read_text().replace("Person3", "Someone"))
    refused = run(emu, campaign)
    assert refused.exit_code == 2
    assert "changed" in refused.stderr
    assert "--force" in refused.stderr
    assert inspect(emu, "stats")["recipients_accepted"] == 2
    forced = run(emu, campaign, "--force")
    assert forced.exit_code == 0, forced.output
    assert inspect(emu, "stats")["recipients_accepted"] == 5


def test_an_appended_input_sends_the_new_rows(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(5))
    assert run(emu, campaign).exit_code == 0
    with (tmp_path / "people.csv").open("a") as people:
        people.write("\n".join(numbers(3, start=5)) + "\n")
    result = run(emu, campaign)
    assert result.exit_code == 0, result.output
    assert "grown" in result.stderr
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 9), 1))


def test_dry_run_counts_rows_already_settled(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(10))
    assert run(emu, campaign, "--max-recipients", "4").exit_code == 3
    result = CliRunner().invoke(
        cli, ["run", str(campaign), "--dry-run", "--json"], env=CLI_ENV, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["already_settled"] == 4
    assert document["to_send"] == 6
    assert inspect(emu, "stats")["recipients_accepted"] == 4


def test_a_ledger_of_another_campaign_is_refused(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(2))
    ledger = tmp_path / "test-run.ledger.jsonl"
    ledger.write_text(
        json.dumps({"type": "header", "version": 1, "campaign": "other", "input": {}}) + "\n"
    )
    result = run(emu, campaign)
    assert result.exit_code == 1
    assert "belongs to campaign 'other'" in result.stderr


def test_a_torn_last_line_is_cut_and_the_run_goes_on(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(6))
    assert run(emu, campaign, "--max-recipients", "3").exit_code == 3
    ledger = tmp_path / "test-run.ledger.jsonl"
    with ledger.open("ab") as handle:
        handle.write(b'{"type": "recipient", "row": 4, "addr')  # a crash mid-write
    result = run(emu, campaign)
    assert result.exit_code == 0, result.output
    assert all(line.endswith("}") for line in ledger.read_text().splitlines())
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 7), 1))


def test_an_intent_without_an_answer_is_reconciled(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(4), batch_size=2)
    assert run(emu, campaign, "--max-recipients", "2").exit_code == 3
    ledger = tmp_path / "test-run.ledger.jsonl"
    with ledger.open("a") as handle:  # a crash between the intent and the answer
        handle.write(
            json.dumps(
                {
                    "type": "intent",
                    "batch": "9.1",
                    "pool": SAMPLE_POOL_ID,
                    "rows": [3],
                    "at": datetime.now(UTC).isoformat(),
                }
            )
            + "\n"
        )
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    assert "in_doubt" in result.stderr
    assert summary(result)["reconciled"]["absent"] == 1
    lines = ledger_lines(ledger)
    assert [x["type"] for x in lines if x.get("row") == 3][-3:] == [
        "recipient",
        "absent",
        "recipient",
    ]
    assert final_states(ledger)[3] == "accepted"
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 5), 1))


# Pacing, measured on the emulator's clock


SPEED = 10.0  # both clocks run ten times faster than real time


class FastTime:
    """A clock shared by the sender's pacer and the emulator, SPEED times real time."""

    def __init__(self) -> None:
        self.start_mono = time.monotonic()
        self.start_wall = time.time()

    def monotonic(self) -> float:
        return self.start_mono + (time.monotonic() - self.start_mono) * SPEED

    def wall(self) -> float:
        return self.start_wall + (time.monotonic() - self.start_mono) * SPEED

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / SPEED)


# Batch 1 at 10/s: its slots are 100 ms apart on the emulator's clock (10 ms real), well
# above the few real milliseconds of loopback jitter between sending and being stored.
@pytest.mark.parametrize(("rate", "batch", "count"), [(30, 5, 300), (10, 1, 100)])
def test_pacing_holds_the_pool_rate_on_the_emulator_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: int, batch: int, count: int
) -> None:
    """Batches sent at their slot and batches whose intents were written ahead alike."""
    fast = FastTime()
    monkeypatch.setattr(
        run_command_module,
        "CampaignRun",
        functools.partial(CampaignRun, clock=fast.monotonic, sleep=fast.sleep),
    )
    clock = Clock(monotonic=fast.monotonic, wall=fast.wall)
    with emulator_in_thread(clock=clock) as emu:
        campaign = write_campaign(
            tmp_path, numbers(count), rate=rate, batch_size=batch, concurrency=4
        )
        result = run(emu, campaign)
        assert result.exit_code == 0, result.output
        operations = sorted(
            (datetime.fromisoformat(op["createdAt"]).timestamp(), 1)
            for op in inspect(emu, "messages")["messages"]
        )
    structlog.reset_defaults()
    starts = [at for at, _ in operations]
    assert len(starts) == count
    # Over any one second the pool receives at most its rate plus one batch...
    for index, start in enumerate(starts):
        in_window = bisect.bisect_left(starts, start + 1.0) - index
        assert in_window <= rate + batch, (start, in_window)
    # ...and over the run, its rate: the recipients after the first batch.
    span = starts[-1] - starts[0]
    assert (count - batch) / span == pytest.approx(rate, rel=0.01)


def test_a_ledger_that_cannot_be_written_stops_the_run_before_its_next_request(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = write_campaign(tmp_path, numbers(40), batch_size=5, concurrency=1)
    syncs = 0
    real_fsync = os.fsync

    def fsync_until_the_disk_fills(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        if syncs > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(ledger_module.os, "fsync", fsync_until_the_disk_fills)
    # No intents written ahead of the worker: one fsync a request, so they can be counted.
    monkeypatch.setattr(engine_module, "_AHEAD_ROWS", 0)
    result = run(emu, campaign)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr
    assert "cannot sync the ledger" in result.stderr
    # Three intents reached the disk, so three requests went out; none after.
    assert inspect(emu, "stats")["recipients_accepted"] == 15
    monkeypatch.setattr(ledger_module.os, "fsync", real_fsync)
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 41), 1))


# Signals, in a real process


def test_sigterm_lets_requests_in_flight_finish_and_the_next_run_goes_on(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path, numbers(80), rate=40, batch_size=2, concurrency=2)
    ledger = tmp_path / "test-run.ledger.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "CAMPAIGN_"))}
    env.update({k: v for k, v in CLI_ENV.items() if v is not None})
    command = [sys.executable, "-m", "campaign", "run", str(campaign), "--base-url", emu.base_url]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603 - our own CLI
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until a few batches are through
            if ledger.exists() and ledger.read_text().count('"accepted"') >= 6:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, err
    assert b"SIGTERM" in err
    lines = ledger_lines(ledger)
    intents = {x["batch"] for x in lines if x["type"] == "intent"}
    answered = {x.get("batch") for x in lines if x["type"] in ("recipient", "released")}
    assert intents <= answered  # nothing left in flight: every request's answer is recorded
    sent_before = inspect(emu, "stats")["recipients_accepted"]
    assert 6 <= sent_before < 80
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 81), 1))


def test_sigterm_during_reconciliations_wait_stops_at_once(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    """Waiting for in-doubt requests to settle is not work in flight: a SIGTERM ends it
    long before --grace-s, writes nothing about the rows, and the next run reconciles them."""
    campaign = write_campaign(tmp_path, numbers(4), batch_size=2)
    assert run(emu, campaign, "--max-recipients", "2").exit_code == 3
    ledger = tmp_path / "test-run.ledger.jsonl"
    orphan = {
        "type": "intent",
        "batch": "9.1",
        "pool": SAMPLE_POOL_ID,
        "rows": [3],
        "at": datetime.now(UTC).isoformat(),
    }
    with ledger.open("a") as handle:  # a crash between the intent and the answer
        handle.write(json.dumps(orphan) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "CAMPAIGN_"))}
    env.update({k: v for k, v in CLI_ENV.items() if v is not None})
    # Reconciliation waits the request timeout + 5 s (65 s) before listing; grace is 60 s.
    command = [
        *(sys.executable, "-m", "campaign", "run", str(campaign), "--base-url", emu.base_url),
        *("--request-timeout-s", "60", "--grace-s", "60"),
    ]
    log_file = tmp_path / "run.err"
    with log_file.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)  # noqa: S603 - our own CLI
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"reconcile_waiting" not in log_file.read_bytes():
            time.sleep(0.02)
        assert b"reconcile_waiting" in log_file.read_bytes()
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        stopped_after_s = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, log_file.read_text()
    assert stopped_after_s < 10  # not the 60 s grace, nor the 65 s wait
    assert [x["type"] for x in ledger_lines(ledger) if x.get("row") == 3] == ["recipient"]
    assert final_states(ledger)[3] == "in_doubt"  # the orphan, still to be reconciled
    assert inspect(emu, "stats")["recipients_accepted"] == 2
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["reconciled"]["absent"] == 1
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 5), 1))


# One run per ledger


def test_a_second_run_on_a_ledger_in_use_exits_at_once_sending_nothing(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    campaign = write_campaign(tmp_path, numbers(5))
    holder = LedgerLock(tmp_path / "test-run.ledger.jsonl")
    holder.acquire()  # as a first run would, in this process
    try:
        result = run(emu, campaign)
    finally:
        holder.release()
    assert result.exit_code == 5
    assert "another run of this campaign" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert inspect(emu, "stats")["recipients_accepted"] == 0
    assert not (tmp_path / "test-run.ledger.jsonl").exists()
    # A lock file left behind by a run that ended (even by SIGKILL) holds nobody up.
    assert (tmp_path / "test-run.ledger.jsonl.lock").exists()
    assert run(emu, campaign).exit_code == 0
    assert inspect(emu, "stats")["recipients_accepted"] == 5


def test_two_runs_started_at_once_send_everyone_once(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(60), rate=200, batch_size=5, concurrency=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "CAMPAIGN_"))}
    env.update({k: v for k, v in CLI_ENV.items() if v is not None})
    command = [sys.executable, "-m", "campaign", "run", str(campaign), "--base-url", emu.base_url]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603 - our own CLI
        for _ in range(2)
    ]
    codes = sorted(process.wait(timeout=60) for process in processes)
    for process in processes:
        process.communicate()
    assert codes in ([0, 5], [0, 0])  # 0, 0 only if the first finished before the second began
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 61), 1))


# campaign reconcile


def reconcile_cli(emu: RunningEmulator, campaign: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["reconcile", str(campaign), "--base-url", emu.base_url, *args],
        env=CLI_ENV,
        catch_exceptions=False,
    )


def forget_answers(ledger: Path, rows: set[int]) -> None:
    """The ledger as a crash between the POST and its answer leaves it: intents, no results."""
    kept = [
        line
        for line in ledger.read_text().splitlines()
        if not (json.loads(line).get("type") == "recipient" and json.loads(line)["row"] in rows)
    ]
    ledger.write_text("\n".join(kept) + "\n")


def test_reconcile_finds_what_was_sent_before_a_crash_and_sends_nothing(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_real_waits: FakeSleep
) -> None:
    monkeypatch.setattr(
        reconcile_command_module, "reconcile", functools.partial(reconcile, sleep=no_real_waits)
    )
    campaign = write_campaign(tmp_path, numbers(6), batch_size=2)
    assert run(emu, campaign).exit_code == 0
    ledger = tmp_path / "test-run.ledger.jsonl"
    forget_answers(ledger, {3, 4})  # sent, but the process died before writing the answer
    result = reconcile_cli(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["found"] == 2
    assert document["absent"] == 0
    assert no_real_waits.delays  # it waited for the young request to settle first
    states = final_states(ledger)
    assert states == dict.fromkeys(range(1, 7), "accepted")
    assert inspect(emu, "stats")["recipients_accepted"] == 6  # nothing sent by reconcile
    again = run(emu, campaign, "--json")
    assert summary(again)["requests"] == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 7), 1))


def test_reconcile_marks_what_was_never_sent_for_the_next_run(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_real_waits: FakeSleep
) -> None:
    monkeypatch.setattr(
        reconcile_command_module, "reconcile", functools.partial(reconcile, sleep=no_real_waits)
    )
    campaign = write_campaign(tmp_path, numbers(4), batch_size=2)
    assert run(emu, campaign, "--max-recipients", "2").exit_code == 3
    ledger = tmp_path / "test-run.ledger.jsonl"
    with ledger.open("a") as handle:  # killed between the intent and the POST
        intent = {"type": "intent", "batch": "9.1", "pool": SAMPLE_POOL_ID, "rows": [3, 4]}
        handle.write(json.dumps({**intent, "at": datetime.now(UTC).isoformat()}) + "\n")
    result = reconcile_cli(emu, campaign)
    assert result.exit_code == 0, result.output
    assert "2 absent" in result.stdout
    assert inspect(emu, "stats")["recipients_accepted"] == 2
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 5), 1))


def test_reconcile_without_a_ledger_says_so(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(2))
    result = reconcile_cli(emu, campaign)
    assert result.exit_code == 2
    assert "no ledger yet" in result.stderr


def test_a_run_killed_during_reconciliation_reconciles_again(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.faults.configure(Faults(accept_then_fail_rate=1.0, seed=1))
    campaign = write_campaign(tmp_path, numbers(8), batch_size=4)
    assert run(emu, campaign).exit_code == 0
    emu.faults.configure(Faults())
    ledger = tmp_path / "test-run.ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    reconciled = [i for i, line in enumerate(lines) if '"reconciled":true' in line]
    assert len(reconciled) == 8
    # Killed after writing three of reconciliation's lines, halfway through the fourth.
    cut = reconciled[3]
    ledger.write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
    result = run(emu, campaign, "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["reconciled"]["found"] == 5
    assert summary(result)["requests"] == 0
    assert final_states(ledger) == dict.fromkeys(range(1, 9), "accepted")
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 9), 1))


def test_max_duration_starts_no_request_after_it_and_the_next_run_goes_on(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command_module, "CampaignRun", CampaignRun)  # real pacing
    campaign = write_campaign(tmp_path, numbers(30), rate=40, batch_size=2, concurrency=2)
    first = run(emu, campaign, "--max-duration", "0.2", "--json")
    assert first.exit_code == 3, first.output
    document = summary(first)
    assert document["stopped"] == "max_duration"
    sent = inspect(emu, "stats")["recipients_accepted"]
    assert 2 <= sent <= 14  # 0.2 s at 40/s in batches of 2, give or take one batch in flight
    assert document["this_run"]["accepted"] == sent
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 31), 1))


def test_the_request_body_is_what_a_message_batch_gives(tmp_path: Path) -> None:
    """The engine's one-step JSON body equals MessageBatch(...).to_json() for its batch."""
    campaign = write_campaign(tmp_path, numbers(2))
    spec = load_spec(campaign)
    run_ = CampaignRun(spec, cast(Any, None), cast(Any, None), run_number=1)
    entries = [
        _Entry(1, "+12065551000", "PHONE", {"first_name": "Ann", "_row": "1"}),
        _Entry(2, "+12065551001", "WHATSAPP", {"_row": "2"}),
    ]
    expected = MessageBatch(
        [Recipient(e.address, e.channel, e.variables) for e in entries],
        sender_pool_id=SAMPLE_POOL_ID,
        text=spec.message.text,
        tags={"campaign": "test-run", "row": ROW_TAG_TEMPLATE},
    ).to_json()
    assert json.loads(run_._body(_Batch(SAMPLE_POOL_ID, entries))) == expected


def test_intents_written_ahead_are_released_when_the_run_stops(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At batch 1 intents are written ahead of the workers; a stop releases the unsent ones."""
    monkeypatch.setattr(run_command_module, "CampaignRun", CampaignRun)  # real clock
    emu.faults.configure(Faults(latency_ms=(20, 30), seed=3))
    campaign = write_campaign(tmp_path, numbers(60), batch_size=1, concurrency=2)
    first = run(emu, campaign, "--max-duration", "0.15", "--json")
    assert first.exit_code == 3, first.output
    lines = ledger_lines(tmp_path / "test-run.ledger.jsonl")
    intents = {x["batch"] for x in lines if x["type"] == "intent"}
    answered = {x["batch"] for x in lines if x["type"] in ("recipient", "released")}
    assert intents == answered  # none left in doubt
    assert {x["why"] for x in lines if x["type"] == "released"} == {"stopped"}
    sent = inspect(emu, "stats")["recipients_accepted"]
    assert sent == summary(first)["this_run"]["accepted"] < 60
    assert run(emu, campaign).exit_code == 0
    assert sent_rows(emu) == Counter(dict.fromkeys(range(1, 61), 1))


@pytest.mark.parametrize(("answer", "code", "sent"), [("n\n", 3, 0), ("y\n", 0, 5)])
def test_on_a_terminal_real_sending_shows_the_preview_and_asks(
    emu: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    sent: int,
) -> None:
    monkeypatch.setattr(run_command_module, "_interactive", lambda: True)
    monkeypatch.setattr(run_command_module, "_is_loopback", lambda _url: False)
    campaign = write_campaign(tmp_path, numbers(5))
    result = CliRunner().invoke(
        cli,
        ["run", str(campaign), "--base-url", emu.base_url],
        env=CLI_ENV,
        input=answer,
        catch_exceptions=False,
    )
    assert result.exit_code == code, result.output
    assert "to send" in result.stdout  # the preview came first
    assert "Send campaign test-run to" in result.stdout
    assert inspect(emu, "stats")["recipients_accepted"] == sent


def test_yes_never_asks(
    emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command_module, "_interactive", lambda: True)
    monkeypatch.setattr(run_command_module, "_is_loopback", lambda _url: False)
    result = run(emu, write_campaign(tmp_path, numbers(3)))
    assert result.exit_code == 0, result.output
    assert "Send campaign" not in result.stdout


def test_preview_reads_the_ledger_like_dry_run(emu: RunningEmulator, tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, numbers(10))
    elsewhere = tmp_path / "elsewhere.ledger.jsonl"
    assert run(emu, campaign, "--max-recipients", "4", "--ledger", str(elsewhere)).exit_code == 3

    def preview(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(
            cli, ["preview", str(campaign), "--json", *args], env=CLI_ENV, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    assert preview()["already_settled"] == 0  # the campaign's own ledger does not exist
    with_ledger = preview("--ledger", str(elsewhere))
    assert with_ledger["already_settled"] == 4
    assert with_ledger["to_send"] == 6
