#!/usr/bin/env python3
"""Measure the emulator: requests and recipients it takes per second, and memory it keeps.

Starts `campaign emulator` as a subprocess on 127.0.0.1, drives it from this process with
aiohttp (the other core), and reads the server's own CPU time and memory from /proc, so the
figures are the emulator's cost on one core, not the client's. Every phase is bounded in
time and count; the server is stopped by its PID at the end, whatever happens.

    scripts/bench_emulator.py                 # all phases, README figures
    scripts/bench_emulator.py --seconds 3 --stored 200000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from campaign.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID

_TICKS = os.sysconf("SC_CLK_TCK")
_AUTH = aiohttp.encode_basic_auth(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
_TEXT = "Hi {{ first_name | default: 'there' }}, 20% off today. Reply STOP to opt out."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of the process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class Bodies:
    """Request bodies with addresses never used before, so every recipient is stored anew."""

    def __init__(self) -> None:
        self.next_number = 2_000_000  # +1 914 200-0000 onward: all valid US numbers

    def make(self, recipients: int) -> bytes:
        start = self.next_number
        self.next_number += recipients
        to = b",".join(
            b'{"address":"+1914%07d","channel":"PHONE","variables":{"first_name":"Ada","_row":"%d"}}'
            % (n, n)
            for n in range(start, start + recipients)
        )
        return (
            b'{"from":{"senderPoolId":"%s"},"to":[%s],"content":{"text":"%s"},'
            b'"tags":{"campaign":"bench","row":"{{_row}}"}}'
            % (SAMPLE_POOL_ID.encode(), to, _TEXT.encode())
        )


@dataclass
class Phase:
    name: str
    requests: int
    recipients: int
    wall_s: float
    server_cpu_s: float

    def report(self) -> str:
        per_cpu = self.requests / self.server_cpu_s if self.server_cpu_s else float("inf")
        rcpt_cpu = self.recipients / self.server_cpu_s if self.server_cpu_s else float("inf")
        return (
            f"{self.name}: {self.requests:,} requests, {self.recipients:,} recipients in "
            f"{self.wall_s:.1f} s -> {self.requests / self.wall_s:,.0f} req/s, "
            f"{self.recipients / self.wall_s:,.0f} recipients/s wall; per server CPU second "
            f"(one core): {per_cpu:,.0f} req, {rcpt_cpu:,.0f} recipients "
            f"(server CPU {self.server_cpu_s:.1f} s)"
        )


async def drive(
    url: str,
    pid: int,
    bodies: Bodies,
    *,
    name: str,
    recipients: int,
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> Phase:
    """Send for `seconds` (or `max_requests`), `concurrency` requests in flight at once."""
    sent = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": _AUTH, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                async with session.post(url, data=bodies.make(recipients), headers=headers) as r:
                    await r.read()
                    if r.status != 202:
                        raise SystemExit(f"{name}: unexpected {r.status}: {await r.text()}")

        cpu_before, started = cpu_s(pid), time.monotonic()
        async with asyncio.timeout(seconds + 60):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.monotonic() - started, cpu_s(pid) - cpu_before
    return Phase(name, sent, sent * recipients, wall, cpu)


async def run(args: argparse.Namespace, url: str, pid: int) -> None:
    bodies = Bodies()
    single = await drive(
        url,
        pid,
        bodies,
        name="1 recipient/request",
        recipients=1,
        concurrency=args.concurrency,
        seconds=args.seconds,
        max_requests=10**7,
    )
    print(single.report(), flush=True)
    batch = await drive(
        url,
        pid,
        bodies,
        name="1,000 recipients/request",
        recipients=1000,
        concurrency=4,
        seconds=args.seconds,
        max_requests=10**5,
    )
    print(batch.report(), flush=True)
    stored_so_far = single.recipients + batch.recipients
    remaining = max(0, args.stored - stored_so_far) // 1000
    if remaining:
        fill = await drive(
            url,
            pid,
            bodies,
            name="filling",
            recipients=1000,
            concurrency=4,
            seconds=600,
            max_requests=remaining,
        )
        stored_so_far += fill.recipients
    rss, peak = memory_mb(pid)
    print(
        f"memory: {stored_so_far:,} recipients stored -> RSS {rss:,.0f} MB, peak {peak:,.0f} MB "
        f"({rss * 1024 * 1024 / stored_so_far:,.0f} bytes/recipient incl. the interpreter)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each speed phase")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="requests in flight, 1-recipient phase"
    )
    parser.add_argument(
        "--stored", type=int, default=2_000_000, help="recipients stored before measuring memory"
    )
    args = parser.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "campaign", "emulator", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline() if server.stdout else ""
        if "listening" not in banner:
            raise SystemExit(f"the emulator did not start: {banner!r}")
        asyncio.run(run(args, f"http://127.0.0.1:{port}/preview/Messages", server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
