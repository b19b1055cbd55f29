"""`campaign emulator` as a user runs it: banner, serving, signals, and bad input."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner, Result
from conftest import AUTH, basic_auth, phone

from campaign.cli import cli
from campaign.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SAMPLE_POOL_ID

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
BANNER_URL = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))/preview\b")


@dataclass
class Running:
    process: asyncio.subprocess.Process
    banner: list[str]
    root_url: str


def _environment(**extra: str) -> dict[str, str]:
    """This environment without any TWILIO_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    env.update(extra)
    return env


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


@asynccontextmanager
async def _emulator(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Start `python -m campaign emulator --port 0 ARGS`, read its banner; kill it by PID at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "campaign",
        "emulator",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or _environment(),
    )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        while not banner or not banner[-1].startswith("Inspect:"):
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
            assert line, f"the emulator exited before its banner: {banner}"
            banner.append(line.decode().rstrip("\n"))
        found = BANNER_URL.search(banner[0])
        assert found, banner
        assert int(found[2]) > 0
        yield Running(process, banner, found[1])
    finally:
        await _stop(process)


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `python -m campaign ARGS` to its end; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "campaign",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or _environment(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT_S)
    finally:
        await _stop(process)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _read_banner(stdout: Any) -> list[str]:
    """Banner lines up to the "Inspect:" one, each read within the startup timeout."""
    banner: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not banner or not banner[-1].startswith("Inspect:"):
        ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no banner within {STARTUP_TIMEOUT_S} s: {banner}"
        line = stdout.readline()
        assert line, f"the emulator exited before its banner: {banner}"
        banner.append(line.decode().rstrip("\n"))
    return banner


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[list[str], str]]:
    """One `campaign emulator --port 0` for the tests that only read from it: (banner, root URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "emulator", "--port", "0"],
        bufsize=0,  # unbuffered, so select() sees every line readline() has not taken yet
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_environment(),
    )
    try:
        banner = _read_banner(process.stdout)
        found = BANNER_URL.search(banner[0])
        assert found, banner
        yield banner, found[1]
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


async def _get(url: str, auth: str = AUTH) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": auth}) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


def test_banner_shows_url_credentials_and_sample_pool(shared: tuple[list[str], str]) -> None:
    """With --port 0 the banner names the bound port, the default credentials and the sample pool."""
    banner, root_url = shared
    text = "\n".join(banner)
    assert int(root_url.rsplit(":", 1)[1]) > 0
    assert f"{root_url}/v1" in banner[0]
    assert f"TWILIO_ACCOUNT_SID={DEFAULT_ACCOUNT_SID}" in text
    assert f"TWILIO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}" in text
    assert f"Sample pool: {SAMPLE_POOL_ID}" in text
    assert f"{root_url}/_emulator/stats" in text


@pytest.mark.parametrize("prefix", ["/preview", "/v1"])
async def test_served_api_answers_under_both_prefixes(
    shared: tuple[list[str], str], prefix: str
) -> None:
    """The started emulator lists its ACTIVATED senders under /preview and /v1."""
    status, body = await _get(f"{shared[1]}{prefix}/Senders?status=ACTIVATED")
    assert status == 200
    assert body["senders"]


async def test_served_api_accepts_a_send(shared: tuple[list[str], str]) -> None:
    """The started emulator accepts a send from the sample pool, as /_emulator/stats then shows."""
    root_url = shared[1]
    before = (await _get(f"{root_url}/_emulator/stats", auth=""))[1]["recipients_accepted"]
    payload = {
        "from": {"senderPoolId": SAMPLE_POOL_ID},
        "to": [{"address": phone(1), "channel": "PHONE"}],
        "content": {"text": "Hello, World!"},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{root_url}/preview/Messages",
            data=orjson.dumps(payload),
            headers={"Authorization": AUTH, "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 202
    status, stats = await _get(f"{root_url}/_emulator/stats", auth="")
    assert status == 200
    assert stats["recipients_accepted"] == before + 1


async def test_served_api_refuses_wrong_credentials(shared: tuple[list[str], str]) -> None:
    """The started emulator answers 401 to credentials other than the printed ones."""
    status, body = await _get(f"{shared[1]}/preview/Senders", basic_auth(DEFAULT_ACCOUNT_SID, "x"))
    assert status == 401
    assert body["code"] == 20003


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_stops_with_exit_0_on_signal(signum: signal.Signals) -> None:
    """SIGINT or SIGTERM stops the emulator promptly with exit code 0."""
    async with _emulator() as emu:
        assert (await _get(f"{emu.root_url}/preview/Senders"))[0] == 200
        emu.process.send_signal(signum)
        code = await asyncio.wait_for(emu.process.wait(), STOP_TIMEOUT_S)
        assert emu.process.stdout is not None
        assert emu.process.stderr is not None
        rest = (await emu.process.stdout.read()).decode()
        errors = (await emu.process.stderr.read()).decode()
    assert code == 0
    assert signum.name in rest
    assert "Traceback" not in errors


async def test_credentials_from_environment() -> None:
    """With TWILIO_* set it accepts those credentials, refuses the defaults and never prints the token."""
    env = _environment(TWILIO_ACCOUNT_SID="ACfromenv", TWILIO_AUTH_TOKEN="secret-from-env")
    async with _emulator(env=env) as emu:
        url = f"{emu.root_url}/preview/Senders"
        assert (await _get(url, basic_auth("ACfromenv", "secret-from-env")))[0] == 200
        assert (await _get(url))[0] == 401
    assert "secret-from-env" not in "\n".join(emu.banner)


async def test_data_file_replaces_the_sample_account(tmp_path: Path) -> None:
    """--data FILE serves that file's senders and pools instead of the samples."""
    data = tmp_path / "account.json"
    data.write_bytes(
        orjson.dumps(
            {
                "senders": [{"displayName": "Mine", "channel": "SMS", "address": "+12065550142"}],
                "senderPools": [{"name": "Mine", "senders": [0]}],
            }
        )
    )
    async with _emulator("--data", str(data)) as emu:
        status, body = await _get(f"{emu.root_url}/preview/Senders")
        pools = (await _get(f"{emu.root_url}/preview/SenderPools"))[1]
    assert status == 200
    assert [s["address"] for s in body["senders"]] == ["+12065550142"]
    assert [p["name"] for p in pools["senderPools"]] == ["Mine"]
    assert not any(line.startswith("Sample pool") for line in emu.banner)


BAD_DATA_FILES = [
    None,
    b"{",
    b"[]",
    b'{"senders": {}}',
    b'{"senders": [{"channel": "FAX", "address": "x"}]}',
    b'{"senders": [{"channel": "SMS"}]}',
    b'{"senders": [{"channel": "SMS", "address": "+12065550142", "ratePerS": 0}]}',
    b'{"senders": [{"channel": "SMS", "address": "+1", "id": "nope"}]}',
    b'{"senders": [], "senderPools": [{"name": "P", "senders": [3]}]}',
    b'{"senders": [{"channel": "SMS", "address": "+1", "status": "ON"}]}',
    b"\xff\xfe",
]


def _invoke(*args: str) -> Result:
    """Run `campaign ARGS` in this process (only for runs that end before serving)."""
    return CliRunner().invoke(cli, list(args), env={"TWILIO_ACCOUNT_SID": None})


@pytest.mark.parametrize("content", BAD_DATA_FILES)
def test_bad_data_file_exits_2_with_one_clear_line(tmp_path: Path, content: bytes | None) -> None:
    """--data with a missing or bad file exits 2 with one line naming the file and what is wrong."""
    path = tmp_path / "account.json"
    if content is not None:
        path.write_bytes(content)
    result = _invoke("emulator", "--port", "0", "--data", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("campaign emulator: ")
    assert str(path) in lines[0]
    assert result.stdout == ""


async def test_bad_data_file_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    """`python -m campaign emulator --data BAD` exits 2 with one stderr line and no traceback."""
    path = tmp_path / "account.json"
    path.write_bytes(b'{"senders": [{"channel": "FAX"}]}')
    code, out, err = await _run("emulator", "--port", "0", "--data", str(path))
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert str(path) in err
    assert "listening" not in out


def test_port_in_use_exits_1_with_one_clear_line() -> None:
    """A port already taken exits 1 with a one-line message naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _invoke("emulator", "--port", str(port))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(port) in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--error-rate", "2"],
        ["--drop-rate", "-0.5"],
        ["--accept-then-fail-rate", "x"],
        ["--max-concurrent-requests", "0"],
        ["--rate-limit-per-s", "0"],
        ["--latency-ms", "fast"],
        ["--latency-ms", "50-5"],
        ["--retry-after-s", "-1"],
        ["--speed", "0"],
        ["--port", "70000"],
    ],
)
def test_bad_option_exits_2_with_a_usage_error(args: list[str]) -> None:
    """A bad option value exits 2 with a usage error naming the problem, before serving."""
    result = _invoke("emulator", *args)
    assert result.exit_code == 2
    assert "Error" in result.stderr
    assert "listening" not in result.stdout


def test_help_lists_the_fault_knobs() -> None:
    """`campaign emulator --help` documents every fault flag and the other options."""
    result = _invoke("emulator", "--help")
    assert result.exit_code == 0
    for flag in (
        "--host",
        "--port",
        "--data",
        "--speed",
        "--max-concurrent-requests",
        "--rate-limit-per-s",
        "--error-rate",
        "--accept-then-fail-rate",
        "--drop-rate",
        "--latency-ms",
        "--seed",
    ):
        assert flag in result.stdout


async def test_fault_and_pagination_flags_take_effect() -> None:
    """Fault flags set the knobs GET /_emulator/faults shows; --pagination-tokens gives bare tokens."""
    async with _emulator(
        "--max-concurrent-requests=50",
        "--rate-limit-per-s=7",
        "--accept-then-fail-rate=0.5",
        "--retry-after-s=3",
        "--seed=4",
        "--latency-ms=1-2",
        "--pagination-tokens",
    ) as emu:
        faults = (await _get(f"{emu.root_url}/_emulator/faults"))[1]
        _, senders = await _get(f"{emu.root_url}/preview/Senders?pageSize=1")
    assert faults == {
        "max_concurrent_requests": 50,
        "rate_limit_per_s": 7.0,
        "error_rate": 0.0,
        "accept_then_fail_rate": 0.5,
        "drop_rate": 0.0,
        "latency_ms": [1.0, 2.0],
        "retry_after_s": 3,
        "seed": 4,
    }
    assert senders["pagination"]["next"]
    assert not senders["pagination"]["next"].startswith("http")


async def test_delivery_flags_take_effect() -> None:
    """--speed and the delivery share flags set the profile /_emulator/stats reports."""
    async with _emulator(
        "--speed=20",
        "--undelivered-share=0.25",
        "--failed-share=0.5",
        "--rcs-capable-share=0",
        "--rcs-failure-share=1",
    ) as emu:
        _, stats = await _get(f"{emu.root_url}/_emulator/stats")
    delivery = stats["delivery"]
    assert delivery["speed"] == 20
    assert delivery["undelivered_share"] == 0.25
    assert delivery["failed_share"] == 0.5
    assert delivery["rcs_capable_share"] == 0
    assert delivery["rcs_failure_share"] == 1
