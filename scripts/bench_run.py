#!/usr/bin/env python3
"""Measure `campaign run` end to end against an emulator subprocess: speed, memory, resume.

Starts `campaign emulator --port 0` on 127.0.0.1 (its port read from its banner), writes
campaigns and CSVs of distinct valid US numbers into a temporary directory, runs
`campaign run FILE --yes --base-url <emulator>/preview --json` as a child process with the
emulator's credentials, and checks every result against the ledger (one `accepted` line
for every row, none twice) and `/_emulator/stats` (exactly that many recipients accepted,
no duplicates). Modes, any combination:

  --batch1 N   batch_size 1, --concurrency (8) in flight, no pacing: the campaign's
               messages/s against `scripts/bare_send.py` (a bare aiohttp loop, same count
               and concurrency, same emulator, reset between). Target: >= 80% of the loop.
  --rows N...  batch_size 1000: wall time, recipients/s and the peak RSS of the campaign
               process (its own ru_maxrss from os.wait4) for each N.
  --resume N   batch_size 1000: a first run stopped by --max-recipients at 90% of N, then
               a second run, timed from its start until its first POST /Messages reaches
               the emulator. Target: < 3 s.

How "first request" is timed: while the second run goes, this process polls
`GET /_emulator/messages?limit=0` (its `total` is the count of stored recipients, read in
O(1); `/_emulator/stats` walks every stored message, so polling it would itself take
seconds and hold up the emulator) on one keep-alive connection every few milliseconds, and
takes the moment the total grows: the first batch's arrival plus its few milliseconds of
processing. The ledger's first `intent` line after the run's `run` line (written just
before the request goes out, millisecond time stamps) is reported beside it, and the `run`
line itself shows how much of the wait comes before the ledger is open.

    .venv/bin/python scripts/bench_run.py --batch1 5000
    .venv/bin/python scripts/bench_run.py --rows 1000000 5000000
    .venv/bin/python scripts/bench_run.py --resume 1000000

Exit code: 0 every check passed and every target was met; 3 every check passed but a
target was missed; 1 the emulator or a campaign run failed, or a check did not hold
(what was seen is printed). Every wait is bounded (--timeout per campaign run); the
emulator and any campaign still running are stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from bare_send import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID, bare_send

REPO = Path(__file__).resolve().parents[1]
_VENV_CAMPAIGN = REPO / ".venv" / "bin" / "campaign"
CAMPAIGN = [str(_VENV_CAMPAIGN)] if _VENV_CAMPAIGN.exists() else [sys.executable, "-m", "campaign"]
NO_PACING = 1_000_000_000  # rate_per_s: a 1,000-recipient batch waits 1 µs for its slot
BATCH1_TARGET = 0.80  # campaign messages/s over the bare loop's
RESUME_TARGET_S = 3.0
TEXT = "Hi {{ first_name | default: 'there' }}, 20% off today. Reply STOP to opt out."
# As scripts/bench_preview.py: area code index mod 7, exchange+line a bijection on 8e6
# (SPREAD is odd and prime to 5), so every index below 56e6 gets its own valid number.
US_AREAS = ("212", "305", "312", "415", "617", "702", "914")
SPREAD = 7_368_787
NAMES = ("Ann", "Bob", "Chloé", "Dmitri", "Eve", "Femi", "Grace", "Hiro", "Zoë", "")
_SCALE = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The emulator or a campaign run failed, or a check did not hold."""


def number(index: int) -> str:
    """The index-th distinct valid US number, E.164."""
    return f"+1{US_AREAS[index % 7]}{2_000_000 + (index * SPREAD) % 8_000_000}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


# The emulator


class Emulator:
    """`campaign emulator --port 0` as a child; stopped by its PID."""

    def __init__(self, folder: Path, credentials: tuple[str, str]) -> None:
        self.folder = folder
        self.credentials = credentials
        self.process: subprocess.Popen[bytes] | None = None
        self.root = ""
        self._poll: http.client.HTTPConnection | None = None

    @property
    def base_url(self) -> str:
        return f"{self.root}/preview"

    def start(self, timeout_s: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
        env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"] = self.credentials
        env["PYTHONUNBUFFERED"] = "1"
        out = self.folder / "emulator.out"
        with out.open("wb") as stdout, (self.folder / "emulator.err").open("wb") as stderr:
            self.process = subprocess.Popen(
                [*CAMPAIGN, "emulator", "--host", "127.0.0.1", "--port", "0"],
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)/preview", out.read_text())
            if found:
                self.root = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.check_alive()
        raise BenchError(f"the emulator printed no base URL within {timeout_s:g} s")

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            err = (self.folder / "emulator.err").read_text(errors="replace")[-2000:]
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"the emulator is not running (exit code {code}):\n{err}")

    def call(self, method: str, path: str, timeout_s: float = 60.0) -> Any:
        self.check_alive()
        connection = http.client.HTTPConnection(*self._address(), timeout=timeout_s)
        try:
            connection.request(method, path, body=b"" if method != "GET" else None)
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        if answer.status != 200:
            raise BenchError(f"{method} {path}: {answer.status} {body[:300]!r}")
        return json.loads(body)

    def _address(self) -> tuple[str, int]:
        host, port = self.root.removeprefix("http://").split(":")
        return host, int(port)

    def reset(self) -> None:
        self.call("POST", "/_emulator/reset")

    def stats(self) -> dict[str, Any]:
        return self.call("GET", "/_emulator/stats", timeout_s=600.0)

    def stored(self) -> int:
        """Recipients stored so far, in O(1), on one keep-alive connection (for tight polling)."""
        for _ in range(2):
            if self._poll is None:
                self._poll = http.client.HTTPConnection(*self._address(), timeout=10)
            try:
                self._poll.request("GET", "/_emulator/messages?limit=0&offset=999999999999")
                return int(json.loads(self._poll.getresponse().read())["total"])
            except (OSError, http.client.HTTPException):
                self._poll.close()
                self._poll = None
        self.check_alive()
        raise BenchError("the emulator did not answer GET /_emulator/messages")

    def stop(self) -> None:
        if self._poll is not None:
            self._poll.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


# Campaign files and runs


def write_campaign(
    folder: Path,
    name: str,
    rows: int,
    *,
    batch_size: int,
    concurrency: int,
    text: str,
    base_url: str,
) -> Path:
    """A CSV of `rows` distinct valid US numbers (+ first_name) and its campaign file."""
    csv = folder / f"{name}.csv"
    with csv.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,first_name\r\n")
        for start in range(0, rows, 10_000):
            out.writelines(
                f"{number(i)},{NAMES[i % len(NAMES)]}\r\n"
                for i in range(start, min(rows, start + 10_000))
            )
    campaign = folder / f"{name}.toml"
    campaign.write_text(
        f'name = "{name}"\n'
        f'[recipients]\npath = "{csv.name}"\naddress = "phone"\nchannel = "PHONE"\n'
        f'[sender]\npool = "{SAMPLE_POOL_ID}"\n'
        f"[message]\ntext = {json.dumps(text, ensure_ascii=False)}\n"
        f"[sending]\nrate_per_s = {NO_PACING}\nbatch_size = {batch_size}\n"
        f"concurrency = {concurrency}\n"
        f'[ledger]\npath = "{name}.ledger.jsonl"\n'
        f'[api]\nbase_url = "{base_url}"\n',
        encoding="utf-8",
    )
    return campaign


@dataclass
class RunResult:
    exit_code: int
    seconds: float  # the process's wall time
    cpu_s: float  # its user + system CPU time
    peak_mb: float
    started_at: float  # time.time() just before it started
    document: dict[str, Any] | None  # its --json output
    stderr: str
    first_store_s: float | None = None  # start -> the emulator's stored count first grew
    emulator_cpu_s: float = 0.0


_children: list[subprocess.Popen[bytes]] = []


def run_campaign(
    campaign: Path,
    emulator: Emulator,
    *,
    extra: Sequence[str] = (),
    timeout_s: float,
    watch_store: bool = False,
) -> RunResult:
    """`campaign run FILE --yes --base-url ... --json` in a child; wall, CPU, peak RSS, JSON."""
    folder = campaign.parent
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TWILIO_") and k != "CAMPAIGN_API_BASE_URL"
    }
    env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"] = emulator.credentials
    env["TMPDIR"] = str(folder)  # the dedupe store is removed with the rest
    command = [
        *CAMPAIGN,
        "run",
        str(campaign),
        "--yes",
        "--base-url",
        emulator.base_url,
        "--json",
        *extra,
    ]
    tag = f"{campaign.stem}-{len(list(folder.glob('run-*.stdout')))}"
    stored_before = emulator.stored() if watch_store else 0
    assert emulator.process is not None  # noqa: S101 - started above
    emulator_pid = emulator.process.pid
    emulator_cpu = cpu_s(emulator_pid)
    with (
        (folder / f"run-{tag}.stdout").open("w+b") as stdout,
        (folder / f"run-{tag}.stderr").open("w+b") as stderr,
    ):
        started_at = time.time()
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=folder)
        _children.append(child)
        killer = threading.Timer(timeout_s, child.kill)
        killer.start()
        first_store_s = None
        waited: tuple[int, int, Any] | None = None
        try:
            while watch_store and time.perf_counter() - began < timeout_s:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    waited = (pid, status, usage)
                    break
                if emulator.stored() > stored_before:
                    first_store_s = time.perf_counter() - began
                    break
                time.sleep(0.003)
            if waited is None:
                waited = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - began
        _, status, usage = waited
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read().decode(errors="replace")
    document = None
    if output.strip():
        try:
            document = json.loads(output)
        except ValueError:
            errors += f"\n(stdout was not JSON: {output[:500]!r})"
    return RunResult(
        exit_code=child.returncode,
        seconds=seconds,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss * _SCALE / 2**20,
        started_at=started_at,
        document=document,
        stderr=errors,
        first_store_s=first_store_s,
        emulator_cpu_s=cpu_s(emulator_pid) - emulator_cpu,
    )


def expect_exit(result: RunResult, wanted: int, what: str) -> None:
    if result.exit_code != wanted:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BenchError(
            f"{what}: `campaign run` exited with {result.exit_code}, expected {wanted} "
            f"(after {result.seconds:.1f} s); stdout: {json.dumps(result.document)}\n"
            f"stderr (last lines):\n{tail}"
        )


def warnings_in(result: RunResult) -> Counter[str]:
    """The campaign's log events on stderr above info level (JSON lines), by event."""
    seen: Counter[str] = Counter()
    for line in result.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            seen[line[:80]] += 1
            continue
        if isinstance(event, dict) and event.get("level") not in (None, "info", "debug"):
            seen[f"{event.get('level')}: {event.get('event')}"] += 1
    return seen


# Checks


@dataclass
class LedgerCheck:
    rows: int
    lines: Counter[str] = field(default_factory=Counter)  # by type
    statuses: Counter[str] = field(default_factory=Counter)  # recipient lines by status
    missing: int = 0  # rows with no recipient line
    repeated: int = 0  # rows with more than one
    out_of_range: int = 0
    run_at: dict[int, str] = field(default_factory=dict)
    first_intent_at: dict[int, str] = field(default_factory=dict)  # after each run's line

    def problems(self, accepted: int) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{self.missing:,} rows have no recipient line")
        if self.repeated:
            found.append(f"{self.repeated:,} rows have more than one recipient line")
        if self.out_of_range:
            found.append(
                f"{self.out_of_range:,} recipient lines name rows outside 1..{self.rows:,}"
            )
        if self.statuses["accepted"] != accepted or self.statuses.total() != accepted:
            found.append(
                f"recipient lines by status {dict(self.statuses)}, expected {accepted:,} accepted"
            )
        return found


def check_ledger(path: Path, rows: int) -> LedgerCheck:
    """Fold the ledger: recipient lines per row (1..rows), statuses, runs and first intents."""
    check = LedgerCheck(rows)
    per_row = bytearray(rows + 1)
    run = 0
    with path.open("rb") as handle:
        for line in handle:
            document = orjson.loads(line)
            kind = document["type"]
            check.lines[kind] += 1
            if kind == "recipient":
                row = document["row"]
                check.statuses[document["status"]] += 1
                if 1 <= row <= rows:
                    per_row[row] = min(255, per_row[row] + 1)
                else:
                    check.out_of_range += 1
            elif kind == "run":
                run = int(document["run"])
                check.run_at[run] = document["at"]
            elif kind == "intent" and run not in check.first_intent_at:
                check.first_intent_at[run] = document["at"]
    check.missing = per_row.count(0) - 1  # index 0 is no row
    check.repeated = rows - check.missing - per_row.count(1)
    return check


def check_emulator(emulator: Emulator, recipients: int, requests: int | None) -> dict[str, Any]:
    stats = emulator.stats()
    problems = []
    if stats["recipients_accepted"] != recipients:
        problems.append(
            f"recipients_accepted {stats['recipients_accepted']:,}, expected {recipients:,}"
        )
    if stats["duplicates"]:
        problems.append(f"duplicates {stats['duplicates']:,}")
    posts = stats["requests"].get("POST /Messages", {})
    if requests is not None and posts != {"202": requests}:
        problems.append(f"POST /Messages answers {posts}, expected {{'202': {requests}}}")
    if problems:
        raise BenchError("/_emulator/stats: " + "; ".join(problems))
    return stats


def seconds_between(started_at: float, stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() - started_at


# Modes


@dataclass
class Figure:
    what: str
    value: str
    target: str = ""
    met: bool | None = None


def describe(result: RunResult, recipients: int) -> str:
    document = result.document or {}
    return (
        f"wall {result.seconds:.2f} s ({recipients / result.seconds:,.0f} recipients/s), "
        f"engine {document.get('duration_s', float('nan')):.2f} s, "
        f"{document.get('requests', '?')} requests; campaign CPU {result.cpu_s:.1f} s "
        f"({100 * result.cpu_s / result.seconds:.0f}% of a core), emulator CPU "
        f"{result.emulator_cpu_s:.1f} s; peak RSS {result.peak_mb:.0f} MB"
    )


def mode_batch1(
    root: Path, emulator: Emulator, count: int, concurrency: int, timeout_s: float
) -> list[Figure]:
    folder = root / "batch1"
    folder.mkdir()
    # Text "Hi", as the bare loop sends; the campaign adds its tags and a _row variable.
    campaign = write_campaign(
        folder,
        f"bench-batch1-{count}",
        count,
        batch_size=1,
        concurrency=concurrency,
        text="Hi",
        base_url=emulator.base_url,
    )
    emulator.reset()
    result = run_campaign(campaign, emulator, timeout_s=timeout_s)
    expect_exit(result, 0, "batch1")
    ledger = check_ledger(campaign.with_suffix(".ledger.jsonl"), count)
    if problems := ledger.problems(count):
        raise BenchError("batch1 ledger: " + "; ".join(problems))
    check_emulator(emulator, count, count)
    engine_s = float((result.document or {}).get("duration_s") or 0.0)
    print(
        f"campaign run, {count:,} x 1 recipient, concurrency {concurrency}: {describe(result, count)}"
    )

    emulator.reset()
    emulator_cpu = cpu_s(emulator.process.pid)  # type: ignore[union-attr]
    bare = asyncio.run(
        bare_send(
            emulator.base_url,
            count,
            concurrency,
            account_sid=emulator.credentials[0],
            auth_token=emulator.credentials[1],
            timeout_s=timeout_s,
        )
    )
    bare_emulator_cpu = cpu_s(emulator.process.pid) - emulator_cpu  # type: ignore[union-attr]
    if bare.accepted != count:
        raise BenchError(
            f"bare loop: {bare.accepted:,} of {count:,} accepted; others {dict(bare.other)}"
        )
    check_emulator(emulator, count, count)
    print(
        f"bare aiohttp loop, same count and concurrency: {bare.seconds:.2f} s = "
        f"{bare.rate:,.0f} messages/s; emulator CPU {bare_emulator_cpu:.1f} s"
    )
    wall_rate = count / result.seconds
    engine_rate = count / engine_s if engine_s else 0.0
    return [
        Figure(
            "batch1: campaign run, whole process",
            f"{wall_rate:,.0f} msg/s ({result.seconds:.2f} s)",
        ),
        Figure("batch1: campaign run, engine only", f"{engine_rate:,.0f} msg/s ({engine_s:.2f} s)"),
        Figure("batch1: bare aiohttp loop", f"{bare.rate:,.0f} msg/s ({bare.seconds:.2f} s)"),
        Figure(
            "batch1: campaign / bare, whole process",
            f"{wall_rate / bare.rate:.0%}",
            f">= {BATCH1_TARGET:.0%}",
            wall_rate / bare.rate >= BATCH1_TARGET,
        ),
        Figure(
            "batch1: campaign / bare, engine only",
            f"{engine_rate / bare.rate:.0%}",
            f">= {BATCH1_TARGET:.0%}",
            engine_rate / bare.rate >= BATCH1_TARGET,
        ),
    ]


def mode_rows(
    root: Path, emulator: Emulator, rows: int, concurrency: int, timeout_s: float
) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix=f"rows-{rows}-", dir=root) as directory:
        folder = Path(directory)
        began = time.perf_counter()
        campaign = write_campaign(
            folder,
            f"bench-rows-{rows}",
            rows,
            batch_size=1000,
            concurrency=concurrency,
            text=TEXT,
            base_url=emulator.base_url,
        )
        size_mb = campaign.with_suffix(".csv").stat().st_size / 1e6
        print(
            f"{rows:,} rows: wrote {size_mb:.0f} MB of CSV in {time.perf_counter() - began:.1f} s"
        )
        emulator.reset()
        result = run_campaign(campaign, emulator, timeout_s=timeout_s)
        expect_exit(result, 0, f"rows {rows:,}")
        print(f"  campaign run: {describe(result, rows)}")
        if noted := warnings_in(result):
            print(f"  campaign warnings: {dict(noted)}")
        ledger_path = campaign.with_suffix(".ledger.jsonl")
        ledger = check_ledger(ledger_path, rows)
        print(
            f"  ledger: {ledger_path.stat().st_size / 1e6:.0f} MB, lines {dict(ledger.lines)}, "
            f"statuses {dict(ledger.statuses)}"
        )
        if problems := ledger.problems(rows):
            raise BenchError(f"rows {rows:,} ledger: " + "; ".join(problems))
        requests = -(-rows // 1000)
        stats = check_emulator(emulator, rows, requests)
        print(
            f"  emulator: {stats['recipients_accepted']:,} recipients accepted, "
            f"{stats['duplicates']} duplicates, POST /Messages {stats['requests'].get('POST /Messages')}"
        )
        emulator.reset()
    return [
        Figure(
            f"rows {rows:,}: campaign run wall time",
            f"{result.seconds:.1f} s = {rows / result.seconds:,.0f} recipients/s",
        ),
        Figure(f"rows {rows:,}: campaign peak RSS", f"{result.peak_mb:.0f} MB"),
        Figure(f"rows {rows:,}: ledger and emulator checks", "every row accepted once", "", True),
    ]


def mode_resume(
    root: Path, emulator: Emulator, rows: int, concurrency: int, timeout_s: float
) -> list[Figure]:
    first_part = rows * 9 // 10
    with tempfile.TemporaryDirectory(prefix=f"resume-{rows}-", dir=root) as directory:
        folder = Path(directory)
        campaign = write_campaign(
            folder,
            f"bench-resume-{rows}",
            rows,
            batch_size=1000,
            concurrency=concurrency,
            text=TEXT,
            base_url=emulator.base_url,
        )
        ledger_path = campaign.with_suffix(".ledger.jsonl")
        emulator.reset()
        first = run_campaign(
            campaign, emulator, extra=["--max-recipients", str(first_part)], timeout_s=timeout_s
        )
        expect_exit(first, 3, f"resume {rows:,}, first run (--max-recipients {first_part})")
        print(f"resume {rows:,}: first run to {first_part:,}: {describe(first, first_part)}")
        stored = emulator.stored()
        if stored != first_part:
            raise BenchError(
                f"after the first run the emulator holds {stored:,}, not {first_part:,}"
            )
        second = run_campaign(campaign, emulator, timeout_s=timeout_s, watch_store=True)
        expect_exit(second, 0, f"resume {rows:,}, second run")
        print(f"  second run, {rows - first_part:,} left: {describe(second, rows - first_part)}")
        if noted := warnings_in(first) + warnings_in(second):
            print(f"  campaign warnings: {dict(noted)}")
        ledger = check_ledger(ledger_path, rows)
        print(f"  ledger: lines {dict(ledger.lines)}, statuses {dict(ledger.statuses)}")
        if problems := ledger.problems(rows):
            raise BenchError(f"resume {rows:,} ledger: " + "; ".join(problems))
        stats = check_emulator(
            emulator, rows, -(-first_part // 1000) + -(-(rows - first_part) // 1000)
        )
        print(
            f"  emulator: {stats['recipients_accepted']:,} accepted, {stats['duplicates']} duplicates"
        )
        emulator.reset()
    if second.first_store_s is None:
        raise BenchError("the second run's first request was never seen at the emulator")
    run_line_s = seconds_between(second.started_at, ledger.run_at[2])
    intent_s = seconds_between(second.started_at, ledger.first_intent_at[2])
    print(
        f"  second run: ledger opened (its `run` line) at {run_line_s:.2f} s, first intent "
        f"line at {intent_s:.2f} s, first recipients stored by the emulator at "
        f"{second.first_store_s:.2f} s after the process started"
    )
    return [
        Figure(
            f"resume {rows:,}: start -> first request at the emulator",
            f"{second.first_store_s:.2f} s",
            f"< {RESUME_TARGET_S:g} s",
            second.first_store_s < RESUME_TARGET_S,
        ),
        Figure(f"resume {rows:,}: start -> first intent in ledger", f"{intent_s:.2f} s"),
        Figure(f"resume {rows:,}: start -> `run` line in ledger", f"{run_line_s:.2f} s"),
        Figure(f"resume {rows:,}: second run wall time", f"{second.seconds:.1f} s"),
        Figure(
            f"resume {rows:,}: peak RSS first / second run",
            f"{first.peak_mb:.0f} / {second.peak_mb:.0f} MB",
        ),
    ]


def bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.replace("_", "").replace(",", ""))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"use {low:,} to {high:,}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--batch1",
        type=bounded(1, 1_000_000),
        metavar="N",
        nargs="?",
        const=5000,
        help="batch_size 1 against the bare loop (default N 5,000)",
    )
    parser.add_argument(
        "--rows",
        type=bounded(1000, 20_000_000),
        metavar="N",
        nargs="+",
        help="batch_size 1000 runs of N rows each",
    )
    parser.add_argument(
        "--resume",
        type=bounded(1000, 20_000_000),
        metavar="N",
        help="90%% of N, then the rest: time to the first new request",
    )
    parser.add_argument(
        "--concurrency", type=bounded(1, 1000), default=8, help="requests in flight (8)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per campaign run")
    args = parser.parse_args(argv)
    if args.batch1 is None and not args.rows and args.resume is None:
        args.batch1 = 5000
    credentials = (
        os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID),
        os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN),
    )
    figures: list[Figure] = []
    failed: str | None = None
    with tempfile.TemporaryDirectory(prefix="bench-run-") as directory:
        root = Path(directory)
        emulator = Emulator(root, credentials)
        try:
            emulator.start()
            print(f"emulator at {emulator.base_url} (pid {emulator.process.pid})", flush=True)  # type: ignore[union-attr]
            if args.batch1 is not None:
                figures += mode_batch1(root, emulator, args.batch1, args.concurrency, args.timeout)
            for rows in args.rows or ():
                figures += mode_rows(root, emulator, rows, args.concurrency, args.timeout)
            if args.resume is not None:
                figures += mode_resume(root, emulator, args.resume, args.concurrency, args.timeout)
            emulator.check_alive()
        except (BenchError, OSError, TimeoutError) as error:
            failed = (
                f"{type(error).__name__}: {error}"
                if not isinstance(error, BenchError)
                else str(error)
            )
        finally:
            for child in _children:
                if child.returncode is None and child.poll() is None:
                    child.kill()
                    child.wait(timeout=15)
            emulator.stop()
    if figures:
        width = max(len(f.what) for f in figures)
        print()
        print(f"{'measure':<{width}}  {'value':<34}  {'target':<8}  verdict")
        for f in figures:
            verdict = "" if f.met is None else ("met" if f.met else "MISSED")
            print(f"{f.what:<{width}}  {f.value:<34}  {f.target:<8}  {verdict}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 3 if any(f.met is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
