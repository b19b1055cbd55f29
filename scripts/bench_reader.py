#!/usr/bin/env python3
"""Time campaign.recipients.read_recipients on generated CSV files: rows/s and peak memory.

For each size, writes a CSV into a temporary directory -- US, GB and DE mobile numbers in
several international formats (E.164, '+1 (914) 318-8062', '+44 7911 123456', ...), ~2%
spoilt, ~1% repeating an earlier row's number in another format, and first_name / city
columns -- then reads it in a fresh child process, counting verdicts, and reports rows/s and
the child's peak resident memory (VmHWM) next to its memory after imports.  --national adds
a share of US numbers written nationally, which phonenumbers reads itself (slow path).
Example: .venv/bin/python scripts/bench_reader.py --rows 1000000 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.e164 import normalise
from campaign.recipients import read_recipients

US_AREAS = ("212", "213", "305", "312", "404", "415", "617", "646", "702", "914")
NAMES = ("Ann", "Bob", "Chloé", "Dmitri", "Eve", "Femi", "Grace", "Hiro", "Zoë")
CITIES = ("Paris", "New York", "London", "Berlin", "São Paulo", "Lagos", "Tokyo")
# Odd and not a multiple of 5: a bijection on every power-of-ten space below, so each
# index gets its own number, spread out as real lists are (not sorted).
SPREAD = 7_368_787


def number(index: int) -> tuple[str, str]:
    """The country and E.164 digits (without '+') of the index-th distinct number."""
    country = index % 10
    if country < 5:  # US: area code, then an exchange starting 2-9
        local = 2_000_000 + (index * SPREAD) % 8_000_000
        return "US", f"1{US_AREAS[index // 8_000_000]}{local}"
    if country < 8:  # GB mobile 07[1-3]xx xxxxxx
        return "GB", f"447{100_000_000 + (index * SPREAD) % 300_000_000}"
    return "DE", f"4917{(index * SPREAD) % 1_000_000_000:09d}"  # DE mobile 017x


def written(rng: random.Random, country: str, digits: str, national: float) -> str:
    """The number as a person or a CRM export might have written it."""
    style = rng.randrange(4)
    if country == "US":
        area, exchange, line = digits[1:4], digits[4:7], digits[7:]
        if rng.random() < national:
            return f"({area}) {exchange}-{line}"
        return (
            f"+{digits}",
            f"+1 {area}-{exchange}-{line}",
            f"+1 ({area}) {exchange}-{line}",
            f"+1.{area}.{exchange}.{line}",
        )[style]
    code = digits[:2]
    rest = digits[2:]
    return (
        f"+{digits}",
        f"+{code} {rest[:4]} {rest[4:]}",
        f"+{code} {rest[:3]}-{rest[3:]}",
        f"+{digits}",
    )[style]


def generate(path: Path, rows: int, seed: int, national: float) -> None:
    """Write the CSV in one pass, never holding more than one row."""
    rng = random.Random(seed)
    fresh = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,first_name,city\r\n")
        for _ in range(rows):
            if fresh and rng.random() < 0.01:
                index = rng.randrange(fresh)  # a repeat of any earlier number
            else:
                index, fresh = fresh, fresh + 1
            country, digits = number(index)
            address = written(rng, country, digits, national)
            if rng.random() < 0.02:
                address = address[:-1]  # a digit short: invalid
            city = rng.choice(CITIES)
            out.write(f'{address},{rng.choice(NAMES)},"{city}"\r\n')


def memory_kib(field: str) -> int:
    """A VmHWM / VmRSS line of /proc/self/status, or ru_maxrss where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    scale = 1024 if sys.platform == "darwin" else 1  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale


def read(path: Path, region: str | None) -> dict[str, object]:
    """Child side: read the file through read_recipients and count verdicts."""
    baseline = memory_kib("VmRSS")
    counts: Counter[str] = Counter()
    began = time.perf_counter()
    with read_recipients(
        path,
        format="csv",
        address_field="phone",
        default_region=region,
        required_variables=frozenset({"first_name"}),
    ) as recipients:
        for row in recipients:
            counts[row.reason or row.verdict] += 1
    seconds = time.perf_counter() - began
    return {
        "rows": sum(counts.values()),
        "seconds": seconds,
        "counts": dict(counts),
        "baseline_kib": baseline,
        "peak_kib": memory_kib("VmHWM"),
    }


def calibration() -> float:
    """Microseconds per normalise() of an E.164 number, best of five: this shared machine's
    speed varies by half from hour to hour, and the figures mean little without it."""
    addresses = ["+" + number(index)[1] for index in range(20_000)]
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for address in addresses:
            normalise(address)
        best = min(best, time.perf_counter() - began)
    return best / len(addresses) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="1000..20000000"
    )
    parser.add_argument("--national", type=float, default=0.0, help="share of US-national rows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per read")
    parser.add_argument("--read", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    region = "US" if args.national else None
    if args.read is not None:
        print(json.dumps(read(args.read, os.environ.get("BENCH_REGION") or None)))
        return 0

    print(f"machine check: normalise(E.164) takes {calibration():.2f} µs")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as directory:
        for rows in args.rows:
            rows = max(1_000, min(rows, 20_000_000))  # noqa: PLW2901  (bounded on purpose)
            path = Path(directory, f"recipients-{rows}.csv")
            began = time.perf_counter()
            generate(path, rows, args.seed, args.national)
            size_mb = path.stat().st_size / 1e6
            print(f"wrote {rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - began:.1f} s")
            child = subprocess.run(
                [sys.executable, __file__, "--read", str(path)],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                env={**os.environ, "BENCH_REGION": region or "", "TMPDIR": directory},
                check=False,
            )
            path.unlink()
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            result = json.loads(child.stdout)
            results.append(result)
            print(
                f"  read {result['rows']:,} rows in {result['seconds']:.2f} s = "
                f"{result['rows'] / result['seconds']:,.0f} rows/s; peak RSS "
                f"{result['peak_kib'] / 1024:.1f} MB (after imports {result['baseline_kib'] / 1024:.1f} MB)"
            )
            print(f"  verdicts {dict(sorted(result['counts'].items()))}")
    if len(results) > 1:
        growth = (results[-1]["peak_kib"] - results[0]["peak_kib"]) / 1024
        print(f"peak RSS growth from {args.rows[0]:,} to {args.rows[-1]:,} rows: {growth:+.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
