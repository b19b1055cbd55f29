#!/usr/bin/env python3
"""The proof that nothing is sent twice and nobody is skipped: kill `campaign run` at random.

    scripts/chaos                                   # the long run: 100,000 recipients, 30 kills
    scripts/chaos --recipients 10000 --kills 3 --sigterms 1

An emulator subprocess with faults on (5% errors, 2% accept-then-fail, 1% dropped
connections, latency, 429 bursts from a concurrency limit) takes a campaign that is killed
with SIGKILL at random moments (and a few times with SIGTERM) and restarted each time, then
run to the end. At the end the emulator's records (`/_emulator/messages`, `/_emulator/stats`)
and the ledger must agree row by row: every valid recipient accepted exactly once, none
missing, every row settled, nothing left in doubt. Prints the figures; exits 1 if any is off.

Bounded: every wait has a deadline, the whole run has `--time-limit-s`, loopback only, and
the emulator and every `campaign run` are stopped by their PIDs whatever happens.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from campaign.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID

CAMPAIGN = [sys.executable, "-m", "campaign"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> Any:
    request = urllib.request.Request(url)  # noqa: S310 - loopback
    token = base64.b64encode(f"{DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


def wait_until_up(root: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            get(f"{root}/_emulator/stats")
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise SystemExit("chaos: the emulator did not start in time")


def write_campaign(
    folder: Path, recipients: int, rng: random.Random, args: argparse.Namespace
) -> int:
    """A CSV of `recipients` rows (~1% invalid, ~1% repeated) and its campaign file."""
    lines = ["phone,first_name"]
    for index in range(recipients):
        roll = rng.random()
        if roll < 0.01:
            lines.append(f"not-a-number-{index},Nobody")
        elif roll < 0.02 and index > 0:
            lines.append(f"+1206{2_000_000 + rng.randrange(index):07d},Again")
        else:
            lines.append(f"+1206{2_000_000 + index:07d},Person{index}")
    (folder / "people.csv").write_text("\n".join(lines) + "\n")
    (folder / "chaos.toml").write_text(
        f"""name = "chaos"
[recipients]
path = "people.csv"
address = "phone"
[sender]
pool = "{SAMPLE_POOL_ID}"
[message]
text = "Hi {{{{ first_name }}}}, this is the chaos run."
[sending]
rate_per_s = {args.rate}
batch_size = {args.batch_size}
concurrency = {args.concurrency}
"""
    )
    return recipients


def run_once(command: list[str], env: dict[str, str], kill_after_s: float | None, how: int) -> int:
    """One `campaign run`, killed with `how` after `kill_after_s` (None: to the end)."""
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(command, env=env, stdout=devnull, stderr=devnull)
        try:
            if kill_after_s is None:
                return process.wait(timeout=600)
            try:
                return process.wait(timeout=kill_after_s)  # it may finish first
            except subprocess.TimeoutExpired:
                process.send_signal(how)
                return process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def final_states(ledger: Path) -> tuple[dict[int, dict[str, Any]], int]:
    """Each row's last recipient line, and how many lines were torn (none may be)."""
    states: dict[int, dict[str, Any]] = {}
    torn = 0
    for raw in ledger.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            torn += 1
            continue
        if line.get("type") == "recipient":
            states[line["row"]] = line
    return states, torn


def emulator_rows(root: str) -> tuple[Counter[int], dict[int, str]]:
    """How many messages the emulator holds per row of the campaign, and their addresses."""
    counts: Counter[int] = Counter()
    addresses: dict[int, str] = {}
    offset = 0
    while True:
        page = get(f"{root}/_emulator/messages?campaign=chaos&offset={offset}&limit=20000")
        messages = page["messages"]
        for message in messages:
            row = int(message["tags"]["row"])
            counts[row] += 1
            addresses[row] = message["address"]
        if len(messages) < 20000:
            return counts, addresses
        offset += len(messages)


def main() -> int:  # noqa: PLR0915 - one scenario, told in order
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs at random moments")
    parser.add_argument("--sigterms", type=int, default=3, help="SIGTERMs at random moments")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20_000.0)
    parser.add_argument("--kill-window-s", type=float, default=6.0, help="kill within this long")
    parser.add_argument("--time-limit-s", type=float, default=1500.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "CAMPAIGN_"))}
    env.update(TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID, TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN)
    emulator = subprocess.Popen(
        [
            *CAMPAIGN,
            "emulator",
            "--port",
            str(port),
            "--seed",
            str(args.seed),
            "--error-rate",
            "0.05",
            "--accept-then-fail-rate",
            "0.02",
            "--drop-rate",
            "0.01",
            "--latency-ms",
            "1-20",
            "--max-concurrent-requests",
            str(max(1, args.concurrency // 2)),  # 429 bursts
            "--retry-after-s",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(root, 20)
        with tempfile.TemporaryDirectory(prefix="campaign-chaos-") as folder:
            here = Path(folder)
            write_campaign(here, args.recipients, rng, args)
            command = [
                *CAMPAIGN,
                "run",
                str(here / "chaos.toml"),
                "--yes",
                "--base-url",
                f"{root}/preview",
                "--request-timeout-s",
                "2",
                "--grace-s",
                "2",
            ]
            preview = subprocess.run(
                [*CAMPAIGN, "preview", str(here / "chaos.toml"), "--json", "--samples", "0"],
                env=env,
                capture_output=True,
                check=True,
                timeout=300,
            )
            expected_valid = json.loads(preview.stdout)["valid"]
            stops = [signal.SIGKILL] * args.kills + [signal.SIGTERM] * args.sigterms
            rng.shuffle(stops)
            codes: Counter[int] = Counter()
            for number, how in enumerate(stops, start=1):
                if time.monotonic() - started > args.time_limit_s:
                    print("chaos: time limit reached during the kills", file=sys.stderr)
                    return 1
                code = run_once(command, env, rng.uniform(0.2, args.kill_window_s), how)
                codes[code] += 1
                print(
                    f"  stop {number:>2}/{len(stops)}: {signal.Signals(how).name:<7} exit {code}",
                    flush=True,
                )
            before_final, _ = final_states(here / "chaos.ledger.jsonl")
            accepted_in_kills = sum(1 for x in before_final.values() if x["status"] == "accepted")
            finals = 0
            while True:  # then to the end, faults still on
                finals += 1
                code = run_once(command, env, None, signal.SIGKILL)
                codes[code] += 1
                print(f"  final run {finals}: exit {code}", flush=True)
                if code == 0:
                    break
                if finals >= 10 or time.monotonic() - started > args.time_limit_s:
                    print("chaos: the campaign did not finish", file=sys.stderr)
                    return 1
            states, torn = final_states(here / "chaos.ledger.jsonl")
            sent, addresses = emulator_rows(root)
            stats = get(f"{root}/_emulator/stats")
            rows = args.recipients
            settled = Counter(line["status"] for line in states.values())
            accepted = {row for row, line in states.items() if line["status"] == "accepted"}
            duplicates = sum(count - 1 for count in sent.values() if count > 1)
            missing = len(accepted - set(sent))
            unknown = len(set(sent) - accepted)
            wrong_address = sum(
                1 for row in accepted & set(sent) if addresses[row] != states[row]["address"]
            )
            figures = {
                "recipients (rows)": rows,
                "valid (preview)": expected_valid,
                "SIGKILLs": args.kills,
                "SIGTERMs": args.sigterms,
                "runs": sum(codes.values()),
                "accepted while being killed": accepted_in_kills,
                "exit codes": dict(sorted(codes.items())),
                "rows settled in the ledger": len(states),
                "ledger states": dict(sorted(settled.items())),
                "emulator: recipients accepted": stats["recipients_accepted"],
                "emulator: 429 answers": stats["requests"].get("POST /Messages", {}).get("429", 0),
                "duplicates (emulator)": stats["duplicates"],
                "duplicates (by row tag)": duplicates,
                "missing (accepted in ledger, not in emulator)": missing,
                "unrecorded (in emulator, not accepted in ledger)": unknown,
                "address mismatches": wrong_address,
                "in_doubt left": settled.get("in_doubt", 0),
                "torn ledger lines": torn,
                "seconds": round(time.monotonic() - started, 1),
            }
            for name, value in figures.items():
                print(f"{name:<48} {value}")
            ok = (
                len(states) == rows
                and len(accepted) == expected_valid
                and stats["recipients_accepted"] == expected_valid
                and stats["duplicates"] == 0
                and duplicates == missing == unknown == wrong_address == 0
                and settled.get("in_doubt", 0) == 0
                and torn == 0
            )
            print("chaos: PASS" if ok else "chaos: FAIL")
            return 0 if ok else 1
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()


if __name__ == "__main__":
    sys.exit(main())
