#!/usr/bin/env python3
"""The demo behind scripts/demo: a campaign sent to the built-in emulator, then the same
commands against an emulator subprocess, as a user would run them.

Bounded: the emulator is stopped by its PID when the demo ends, whatever happens.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from campaign.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(root_url: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{root_url}/_emulator/stats", timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the emulator did not start in time")


def call(method: str, url: str, body: object | None = None) -> object:
    token = base64.b64encode(f"{DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read() or b"null")


def run(command: list[str], env: dict[str, str], codes: tuple[int, ...] = (0,)) -> None:
    print(f"\n$ campaign {' '.join(command[3:])}", flush=True)
    done = subprocess.run(command, env=env, check=False, timeout=120)
    if done.returncode not in codes:
        raise SystemExit(f"exit code {done.returncode}, expected {codes}")


def main() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    campaign = [sys.executable, "-m", "campaign"]
    server = subprocess.Popen(
        [*campaign, "emulator", "--port", str(port), "--speed", "50"], env=env
    )
    root = f"http://127.0.0.1:{port}"
    base = f"{root}/preview"
    cli_env = {
        **env,
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "CAMPAIGN_API_BASE_URL": base,
    }
    try:
        wait_until_up(root, 15)
        run([*campaign, "senders", "list", "--status", "ACTIVATED"], cli_env)
        run([*campaign, "pools", "show", SAMPLE_POOL_ID], cli_env)
        ledgers = tempfile.mkdtemp(prefix="campaign-demo-")
        try:
            # The README's first command: a sample campaign on an emulator started in-process.
            run(
                [
                    *campaign,
                    "run",
                    "sample_campaigns/spring-sale.toml",
                    "--emulator",
                    "--ledger",
                    f"{ledgers}/spring-sale.ledger.jsonl",
                ],
                env,
                codes=(0,),
            )
            # The JSONL sample against the emulator subprocess, in two cron-sized steps.
            multichannel = [
                *campaign,
                "run",
                "sample_campaigns/multichannel.toml",
                "--base-url",
                base,
                "--ledger",
                f"{ledgers}/multichannel.ledger.jsonl",
            ]
            run([*multichannel, "--max-recipients", "5"], cli_env, codes=(3,))
            run(multichannel, cli_env, codes=(0,))
            stats = call("GET", f"{root}/_emulator/stats")
            print(f"\n  the emulator accepted {stats['recipients_accepted']} recipients")  # type: ignore[index]
        finally:
            shutil.rmtree(ledgers, ignore_errors=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
