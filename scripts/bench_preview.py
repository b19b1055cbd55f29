#!/usr/bin/env python3
"""Time `campaign preview FILE --json` end to end on generated campaigns: rows/s and peak memory.

For each --rows N, writes into a temporary directory a campaign TOML and a CSV of N rows --
distinct US, GB and DE mobile numbers written in several international formats
('+12125550123', '+1 (212) 555-0123', '+44 (0) 7911 123456', '+49 151 2345 6789', ...),
~2% spoilt (a digit short, or not a number at all), ~1% repeating an earlier row's number in
another format, and first_name (sometimes empty, so the template's default applies) and city
columns used by the template -- then runs `python -m campaign preview FILE --json` in a child
process and reports its wall time, rows/s and peak resident memory.

Peak memory is the child's own ru_maxrss, taken from os.wait4() when it exits: the same
accounting as resource.getrusage(RUSAGE_CHILDREN) but for that one child, so a later, larger
run is not masked by an earlier one (RUSAGE_CHILDREN keeps the maximum over all children).
A 1,000-row run first shows the baseline (interpreter + imports).

The issue's target: 1,000,000 rows in under 10 s with peak memory under 150 MB, growing by
nothing measurable from 1M to 5M rows.  Example (5M rows takes about a minute per step):

    .venv/bin/python scripts/bench_preview.py --rows 1000000 --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIN_ROWS, MAX_ROWS = 1_000, 20_000_000
TARGET_SECONDS_PER_MILLION = 10.0
TARGET_PEAK_MB = 150.0
POOL = "comms_senderpool_01kdvdna000000000000000001"
TEMPLATE = (
    "Hi {{ first_name | default: 'there' }}! Spring sale in {{ city }}: "
    "20% off today. Reply STOP to opt out."
)
US_AREAS = ("212", "305", "312", "415", "617", "702", "914")
NAMES = ("Ann", "Bob", "Chloé", "Dmitri", "Eve", "Femi", "Grace", "Hiro", "Zoë", "")
CITIES = ("Paris", "New York", "London", "Berlin", "São Paulo", "Lagos", "Tokyo")
# Odd, not a multiple of 3 or 5: a bijection on each number space below (8e6, 3e8, 1e8), so
# every index gets its own number, spread out as in a real list rather than sorted.
SPREAD = 7_368_787


def number(index: int) -> tuple[str, str]:
    """The country and E.164 digits (no '+') of the index-th distinct valid mobile number."""
    country = index % 10
    if country < 5:  # US: area code, then an exchange starting 2-9
        # (index mod 7, index mod 8e6) differs for every index below 56e6 (7 and 8e6 are coprime).
        area = US_AREAS[index % len(US_AREAS)]
        return "US", f"1{area}{2_000_000 + (index * SPREAD) % 8_000_000}"
    if country < 8:  # GB mobile 07[1-3]xx xxxxxx
        return "GB", f"447{100_000_000 + (index * SPREAD) % 300_000_000}"
    return "DE", f"49151{(index * SPREAD) % 100_000_000:08d}"  # DE mobile 0151 xxxxxxxx


def written(rng: random.Random, country: str, digits: str) -> str:
    """The number as a person or a CRM export might have written it (always international)."""
    style = rng.randrange(4)
    if style == 0:
        return f"+{digits}"
    if country == "US":
        area, exchange, line = digits[1:4], digits[4:7], digits[7:]
        return (
            f"+1 ({area}) {exchange}-{line}",
            f"+1 {area}-{exchange}-{line}",
            f"+1.{area}.{exchange}.{line}",
        )[style - 1]
    code, rest = digits[:2], digits[2:]
    return (
        f"+{code} {rest[:4]} {rest[4:]}",
        f"+{code} (0) {rest}",
        f"+{code} {rest[:3]}-{rest[3:]}",
    )[style - 1]


def generate(folder: Path, rows: int, seed: int) -> Path:
    """Write the campaign file and its CSV (one pass, a chunk of lines at a time)."""
    rng = random.Random(seed)
    fresh = 0
    csv = folder / f"recipients-{rows}.csv"
    with csv.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,first_name,city\r\n")
        lines: list[str] = []
        for _ in range(rows):
            if fresh and rng.random() < 0.01:
                index = rng.randrange(fresh)  # a repeat of an earlier number
            else:
                index, fresh = fresh, fresh + 1
            address = written(rng, *number(index))
            spoil = rng.random()
            if spoil < 0.015:
                address = address[:-1]  # a digit short
            elif spoil < 0.02:
                address = rng.choice(("n/a", "", "unknown", "0"))
            lines.append(f'{address},{rng.choice(NAMES)},"{rng.choice(CITIES)}"\r\n')
            if len(lines) >= 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    campaign = folder / f"bench-{rows}.toml"
    campaign.write_text(
        f'name = "bench-{rows}"\n'
        f'[recipients]\npath = "{csv.name}"\naddress = "phone"\nchannel = "PHONE"\n'
        f'[sender]\npool = "{POOL}"\n'
        f"[message]\ntext = {json.dumps(TEMPLATE, ensure_ascii=False)}\n"
        f"[sending]\nrate_per_s = 100\nbatch_size = 1000\nconcurrency = 8\n"
        f'[api]\nbase_url = "http://127.0.0.1:9/preview"\n',
        encoding="utf-8",
    )
    return campaign


def run_preview(campaign: Path, folder: Path, timeout: float) -> dict[str, Any]:
    """Run the preview in a child; its wall time, peak RSS (MB) and JSON document."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TWILIO_") and key != "CAMPAIGN_API_BASE_URL"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TMPDIR"] = str(folder)  # the dedupe store goes with the rest, and is removed with it
    command = [sys.executable, "-m", "campaign", "preview", str(campaign), "--json"]
    with (folder / "stdout").open("w+b") as stdout, (folder / "stderr").open("w+b") as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=folder)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {child.returncode}:\n{errors.decode(errors='replace')}"
        )
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss * scale / 2**20,
        "document": json.loads(output),
    }


def bounded(text: str) -> int:
    rows = int(text.replace("_", "").replace(",", ""))
    if not MIN_ROWS <= rows <= MAX_ROWS:
        raise argparse.ArgumentTypeError(f"use {MIN_ROWS:,} to {MAX_ROWS:,} rows")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=bounded,
        action="append",
        help=f"rows in the generated CSV; repeat for several sizes (default 1,000,000; "
        f"{MIN_ROWS:,} to {MAX_ROWS:,})",
    )
    parser.add_argument("--seed", type=int, default=1, help="for the generated rows")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per preview before it is killed"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the 1,000-row run")
    args = parser.parse_args(argv)
    sizes: list[int] = args.rows or [1_000_000]
    if not args.no_baseline:
        sizes = [MIN_ROWS, *sizes]

    results: list[tuple[int, dict[str, Any]]] = []
    missed = False
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-preview-") as directory:
            folder = Path(directory)
            began = time.perf_counter()
            campaign = generate(folder, rows, args.seed)
            size_mb = campaign.with_name(f"recipients-{rows}.csv").stat().st_size / 1e6
            print(f"{rows:,} rows: wrote {size_mb:.0f} MB in {time.perf_counter() - began:.1f} s")
            try:
                result = run_preview(campaign, folder, args.timeout)
            except RuntimeError as error:
                print(error, file=sys.stderr)
                return 1
        document = result["document"]
        if document["rows"] != rows:
            print(f"  the preview counted {document['rows']:,} rows, not {rows:,}", file=sys.stderr)
            return 1
        seconds, peak = result["seconds"], result["peak_mb"]
        print(f"  preview: {seconds:.2f} s = {rows / seconds:,.0f} rows/s; peak RSS {peak:.1f} MB")
        reasons = {reason: c["count"] for reason, c in document["invalid_by_reason"].items()}
        print(
            f"  valid {document['valid']:,}, invalid {reasons}, duplicates "
            f"{document['duplicates']:,}, to send {document['to_send']:,} in "
            f"{document['requests']:,} requests, {document['segments']:,} segments"
        )
        if rows >= 1_000_000:
            per_million = seconds * 1_000_000 / rows
            met = per_million < TARGET_SECONDS_PER_MILLION and peak < TARGET_PEAK_MB
            missed |= not met
            print(
                f"  target (< {TARGET_SECONDS_PER_MILLION:g} s per 1M rows, < "
                f"{TARGET_PEAK_MB:g} MB): {per_million:.2f} s per 1M rows, {peak:.1f} MB -> "
                f"{'met' if met else 'MISSED'}"
            )
        results.append((rows, result))
    measured = [(rows, result) for rows, result in results if rows > MIN_ROWS or len(results) == 1]
    if len(measured) > 1:
        (first_rows, first), (last_rows, last) = measured[0], measured[-1]
        growth = last["peak_mb"] - first["peak_mb"]
        print(f"peak RSS from {first_rows:,} to {last_rows:,} rows: {growth:+.1f} MB")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
