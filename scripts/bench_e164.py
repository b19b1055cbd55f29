#!/usr/bin/env python3
"""Time campaign.e164 against the phonenumbers reference, in microseconds per address.

Generates a mix of real-looking numbers of the big sending countries (about 5% invalid),
then times is_valid_e164 and normalise on E.164 input, normalise on typed international
input ('+1 (914) 318-8062', '+44 7911 123-456'), and the reference
(parse + is_valid_number + format_number) on a sample of each, checking that the verdicts
agree.  Example: scripts/bench_e164.py --count 200000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.e164 import is_valid_e164, normalise

# Share of addresses per region, roughly a bulk sender's traffic.
MIX = {
    "US": 30,
    "CA": 5,
    "GB": 10,
    "DE": 8,
    "FR": 6,
    "IN": 10,
    "BR": 8,
    "MX": 4,
    "IT": 3,
    "ES": 3,
    "AU": 3,
    "NG": 2,
    "ID": 2,
    "JP": 2,
    "JM": 1,
    "PR": 1,
    "ZA": 2,
}
TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE)


def reference_valid(address: str) -> bool:
    """phonenumbers' verdict for is_valid_e164."""
    try:
        number = phonenumbers.parse(address, None)
    except NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, PhoneNumberFormat.E164) == address
    )


def reference_normalise(raw: str) -> str | None:
    """phonenumbers' verdict for normalise."""
    try:
        number = phonenumbers.parse(raw, None)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def valid_pool(rng: random.Random, per_region: int) -> dict[str, list[str]]:
    """Distinct valid E.164 numbers per region: example numbers with random last digits."""
    pool: dict[str, list[str]] = {}
    for region in MIX:
        examples = [phonenumbers.example_number_for_type(region, t) for t in TYPES]
        templates = [phonenumbers.format_number(e, PhoneNumberFormat.E164) for e in examples if e]
        found: set[str] = set()
        for _ in range(per_region * 20):
            if len(found) >= per_region:
                break
            template = rng.choice(templates)
            tail = "".join(rng.choice("0123456789") for _ in range(4))
            candidate = template[:-4] + tail
            if reference_valid(candidate):
                found.add(candidate)
        pool[region] = sorted(found)
    return pool


def spoil(rng: random.Random, address: str) -> str:
    """A near miss: a digit dropped, added or changed, or a 0 typed after the code."""
    digits = address[1:]
    where = rng.randrange(1, len(digits))
    match rng.randrange(4):
        case 0:
            digits = digits[:where] + digits[where + 1 :]
        case 1:
            digits = digits[:where] + rng.choice("0123456789") + digits[where:]
        case 2:
            digits = digits[:where] + rng.choice("0123456789") + digits[where + 1 :]
        case _:
            digits = digits[:2] + "0" + digits[2:]
    return "+" + digits


def typed(rng: random.Random, address: str) -> str:
    """The address as people type it: spaces, dashes, dots, parentheses."""
    digits = address[1:]
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 ({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    cut = rng.randrange(1, 4)
    sep = rng.choice(" -.")
    return f"+{digits[:cut]} {digits[cut : cut + 4]}{sep}{digits[cut + 4 :]}"


def per_address(function: Callable[[str], object], inputs: Sequence[str], repeat: int) -> float:
    """Microseconds per call of `function` over `inputs`: each chunk of 10,000 is timed
    `repeat` times and its best run counts, which filters out other processes' noise."""
    total = 0.0
    for start in range(0, len(inputs), 10_000):
        chunk = inputs[start : start + 10_000]
        best = float("inf")
        for _ in range(repeat):
            began = time.perf_counter()
            for item in chunk:
                function(item)
            best = min(best, time.perf_counter() - began)
        total += best
    return total / len(inputs) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="addresses (1000..2000000)")
    parser.add_argument(
        "--reference-count", type=int, default=10_000, help="addresses timed with phonenumbers"
    )
    parser.add_argument("--invalid", type=float, default=0.05, help="share of spoilt numbers")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs; the best counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    count = max(1_000, min(args.count, 2_000_000))
    reference_count = max(100, min(args.reference_count, count, 100_000))
    rng = random.Random(args.seed)

    pool = valid_pool(rng, per_region=300)
    regions = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    e164 = [rng.choice(pool[r]) for r in regions]
    e164 = [spoil(rng, a) if rng.random() < args.invalid else a for a in e164]
    people = [typed(rng, a) for a in e164]

    fast_valid = [is_valid_e164(a) for a in e164]
    sample = range(reference_count)
    mismatches = sum(fast_valid[i] != reference_valid(e164[i]) for i in sample)
    mismatches += sum(normalise(e164[i]) != reference_normalise(e164[i]) for i in sample)
    mismatches += sum(normalise(people[i]) != reference_normalise(people[i]) for i in sample)

    print(f"{count} addresses, {sum(fast_valid) / count:.1%} valid; regions {dict(MIX)}")
    print(f"verdicts compared with phonenumbers on {reference_count} of each: {mismatches} differ")
    rows = [
        ("is_valid_e164(E.164)", per_address(is_valid_e164, e164, args.repeat)),
        ("normalise(E.164)", per_address(normalise, e164, args.repeat)),
        ("normalise(typed)", per_address(normalise, people, args.repeat)),
        ("reference valid(E.164)", per_address(reference_valid, e164[:reference_count], 1)),
        (
            "reference normalise(typed)",
            per_address(reference_normalise, people[:reference_count], 1),
        ),
    ]
    for name, micros in rows:
        print(f"  {name:28} {micros:7.2f} µs/address")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
