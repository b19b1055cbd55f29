#!/usr/bin/env python3
"""The yardstick for `campaign run`: a bare aiohttp loop POSTing 1-recipient messages.

One aiohttp.ClientSession, `--concurrency` tasks, each POSTing single-recipient bodies
(`{"from": {"senderPoolId": POOL}, "to": [{"address": "+1...", "channel": "PHONE"}],
"content": {"text": "Hi"}}`) to `{base}/Messages` with Basic auth until `--count` are sent:
no ledger, no pacing, no retries, only counting the 202s. It prints messages per second.

Credentials come from TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN, else the emulator's
defaults. Against a running emulator (`campaign emulator --port 8765`):

    .venv/bin/python scripts/bare_send.py --base-url http://127.0.0.1:8765/preview --count 5000

`scripts/bench_run.py` imports `send_rate` (or `bare_send`) to measure it in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson

# The emulator's defaults (campaign/emulator/app.py, sample_data.py), spelt out so this
# script does not need the package on its path.
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "emulator-auth-token"  # noqa: S105 - the emulator's public rehearsal token
SAMPLE_POOL_ID = "comms_senderpool_01kdvdna000000000000000001"
FIRST_NUMBER = 2_000_000  # +1 914 200-0000 onward: valid US numbers, one per message


@dataclass
class BareResult:
    sent: int
    accepted: int  # answered 202
    seconds: float
    other: Counter[int] = field(default_factory=Counter)  # any other status -> count

    @property
    def rate(self) -> float:
        """202s per second of wall time."""
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


def credentials() -> tuple[str, str]:
    return (
        os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID),
        os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN),
    )


async def bare_send(
    base_url: str,
    count: int,
    concurrency: int,
    *,
    account_sid: str,
    auth_token: str,
    pool: str = SAMPLE_POOL_ID,
    timeout_s: float = 600.0,
) -> BareResult:
    """Send `count` 1-recipient messages, `concurrency` in flight; what came back, how fast."""
    url = base_url.rstrip("/") + "/Messages"
    headers = {
        "Authorization": aiohttp.encode_basic_auth(account_sid, auth_token),
        "Content-Type": "application/json",
    }
    result = BareResult(sent=0, accepted=0, seconds=0.0)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while result.sent < count:
                number = FIRST_NUMBER + result.sent
                result.sent += 1
                body = {
                    "from": {"senderPoolId": pool},
                    "to": [{"address": f"+1914{number:07d}", "channel": "PHONE"}],
                    "content": {"text": "Hi"},
                }
                async with session.post(url, data=orjson.dumps(body), headers=headers) as answer:
                    await answer.read()
                    if answer.status == 202:
                        result.accepted += 1
                    else:
                        result.other[answer.status] += 1

        began = time.perf_counter()
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - began
    return result


def send_rate(base_url: str, count: int, concurrency: int, **kwargs: object) -> float:
    """Run the loop in a fresh event loop; messages (202s) per second."""
    if "account_sid" not in kwargs or "auth_token" not in kwargs:
        kwargs["account_sid"], kwargs["auth_token"] = credentials()
    return asyncio.run(bare_send(base_url, count, concurrency, **kwargs)).rate  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8765/preview")
    parser.add_argument("--count", type=int, default=5000, help="messages to send (default 5000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 8_000_000 or not 1 <= args.concurrency <= 1000:
        parser.error("use 1..8,000,000 messages and 1..1000 in flight")
    sid, token = credentials()
    result = asyncio.run(
        bare_send(
            args.base_url,
            args.count,
            args.concurrency,
            account_sid=sid,
            auth_token=token,
            timeout_s=args.timeout,
        )
    )
    print(
        f"bare aiohttp loop: {result.accepted:,} of {result.sent:,} accepted (202) in "
        f"{result.seconds:.2f} s = {result.rate:,.0f} messages/s at concurrency {args.concurrency}"
        + (f"; other answers {dict(result.other)}" if result.other else "")
    )
    return 0 if result.accepted == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
