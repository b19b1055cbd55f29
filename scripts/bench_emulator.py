#!/usr/bin/env python3
"""Measure the emulator: requests and recipients it takes per second, and memory it keeps.

Starts `campaign emulator` as a subprocess on 127.0.0.1, drives it from this process with
aiohttp (the other core), and reads the server's own CPU time and memory from /proc, so the
figures are the emulator's cost on one core, not the client's. Every phase is bounded in
time and count; the server is stopped by its PID at the end, whatever happens.

    scripts/bench_emulator.py                 # all phases, README figures (about 2 minutes)
    scripts/bench_emulator.py --seconds 3 --stored 200000   # a quick look

The yardstick is a bare aiohttp.web server measured in the same run: this machine's speed
varies several-fold from day to day, and the ratio to the yardstick does not.
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


# As scripts/bench_run.py: area code by index mod 7, exchange+line a bijection on 8e6
# (SPREAD is odd and prime to 5), so each index below 56e6 has its own valid US number; a
# fast day's run stores more than the 8e6 numbers one area code holds.
_US_AREAS = (b"212", b"305", b"312", b"415", b"617", b"702", b"914")
_SPREAD = 7_368_787


class Bodies:
    """Request bodies with addresses never used before, so every recipient is stored anew."""

    def __init__(self) -> None:
        self.next_index = 0

    def make(self, recipients: int) -> bytes:
        start = self.next_index
        self.next_index += recipients
        to = b",".join(
            b'{"address":"+1%s%07d","channel":"PHONE","variables":{"first_name":"Ada","_row":"%d"}}'
            % (_US_AREAS[n % 7], 2_000_000 + (n * _SPREAD) % 8_000_000, n)
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

    def per_cpu_s(self, recipients: bool) -> float:
        """Requests (or recipients) per second of the server's own CPU time: its cost on one core."""
        done = self.recipients if recipients else self.requests
        return done / self.server_cpu_s if self.server_cpu_s else float("inf")

    def report(self, server: str) -> str:
        return (
            f"{server:>16} | {self.name:<24} | {self.requests:>8,} req {self.recipients:>10,} rcpt "
            f"in {self.wall_s:4.1f} s | wall {self.requests / self.wall_s:>7,.0f} req/s "
            f"{self.recipients / self.wall_s:>9,.0f} rcpt/s | per server CPU s "
            f"{self.per_cpu_s(False):>7,.0f} req {self.per_cpu_s(True):>9,.0f} rcpt"
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


async def speed(
    url: str, pid: int, bodies: Bodies, seconds: float, concurrency: int
) -> tuple[Phase, Phase]:
    """The two speed phases: one recipient per request, then 1,000 per request."""
    single = await drive(
        url,
        pid,
        bodies,
        name="1 recipient/request",
        recipients=1,
        concurrency=concurrency,
        seconds=seconds,
        max_requests=10**7,
    )
    batch = await drive(
        url,
        pid,
        bodies,
        name="1,000 recipients/request",
        recipients=1000,
        concurrency=4,
        seconds=seconds,
        max_requests=10**5,
    )
    return single, batch


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    """Start a server and wait (at most 20 s) until it accepts connections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return server
    stop(server)
    raise SystemExit(f"{command[-3:]} did not start listening on {port}")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


async def measure(args: argparse.Namespace) -> None:
    bodies = Bodies()
    # The yardstick: a bare aiohttp.web server that only parses the JSON and answers 202,
    # measured in the same run, so the figures can be compared across machines.
    port = free_port()
    bare = start([sys.executable, __file__, "--serve-bare", str(port)], port)
    try:
        bare_single, bare_batch = await speed(
            f"http://127.0.0.1:{port}/preview/Messages",
            bare.pid,
            bodies,
            args.seconds,
            args.concurrency,
        )
    finally:
        stop(bare)
    port = free_port()
    emulator = start([sys.executable, "-m", "campaign", "emulator", "--port", str(port)], port)
    try:
        url = f"http://127.0.0.1:{port}/preview/Messages"
        single, batch = await speed(url, emulator.pid, bodies, args.seconds, args.concurrency)
        print(bare_single.report("bare aiohttp.web"))
        print(single.report("emulator"))
        print(
            f"  -> the emulator takes {single.per_cpu_s(False) / bare_single.per_cpu_s(False):.2f}x "
            "the requests per CPU second of a bare aiohttp.web server that does no work"
        )
        print(bare_batch.report("bare aiohttp.web"))
        print(batch.report("emulator"))
        print(
            f"  -> {batch.per_cpu_s(True) / bare_batch.per_cpu_s(True):.2f}x the recipients per CPU "
            "second of the bare server (which only parses the JSON)",
            flush=True,
        )
        stored = single.recipients + batch.recipients
        remaining = max(0, args.stored - stored) // 1000
        if remaining:
            fill = await drive(
                url,
                emulator.pid,
                bodies,
                name="filling",
                recipients=1000,
                concurrency=4,
                seconds=900,
                max_requests=remaining,
            )
            stored += fill.recipients
        rss, peak = memory_mb(emulator.pid)
        print(
            f"memory: {stored:,} recipients stored -> RSS {rss:,.0f} MB, peak {peak:,.0f} MB "
            f"({rss * 1024 * 1024 / stored:,.0f} bytes/recipient incl. the interpreter)"
        )
    finally:
        stop(emulator)


def serve_bare(port: int) -> None:
    """The yardstick server (run as a subprocess of this script)."""
    import orjson  # noqa: PLC0415 - only the yardstick subprocess needs these
    from aiohttp import web  # noqa: PLC0415

    async def accept(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(
            body=b'{"operationId":"x"}', status=202, content_type="application/json"
        )

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/preview/Messages", accept)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


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
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
