#!/usr/bin/env python3
"""The demo behind scripts/demo: an emulator subprocess, then the commands a user would run.

Bounded: the emulator is stopped by its PID when the demo ends, whatever happens.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
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


def run(command: list[str], env: dict[str, str]) -> None:
    print(f"\n$ {' '.join(command[2:])}", flush=True)
    subprocess.run(command, env=env, check=True, timeout=60)


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
        message = {
            "from": {"senderPoolId": SAMPLE_POOL_ID},
            "to": [
                {"address": "+19143188062", "channel": "PHONE", "variables": {"first_name": "Ada"}}
            ],
            "content": {
                "text": "Hi {{ first_name | default: 'there' }}, this is the campaign demo."
            },
            "tags": {"campaign": "demo", "row": "1"},
        }
        # Until `campaign run` exists (issue #5), the one message goes out as a raw API call.
        print("\n$ POST /Messages  (one recipient, through the sample pool)")
        accepted = call("POST", f"{base}/Messages", message)
        print(f"  accepted: {accepted}")
        time.sleep(0.5)  # 25 emulated seconds at --speed 50: enough to be delivered
        operation = call("GET", accepted["operationLocation"])  # type: ignore[index]
        print(f"  operation: {operation}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
