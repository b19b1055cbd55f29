"""The short chaos run from the test suite: a few kills of `campaign run`, nothing lost or doubled.

`scripts/chaos.py` itself checks the emulator's records against the ledger row by row and
exits 1 on any difference; the long run (100,000 recipients, 30 SIGKILLs) is quoted in the
README.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "chaos.py"


def test_a_campaign_killed_at_random_ends_with_everyone_sent_once() -> None:
    done = subprocess.run(  # noqa: S603 - our own script, loopback only
        [
            sys.executable,
            str(SCRIPT),
            "--recipients",
            "10000",
            "--kills",
            "3",
            "--sigterms",
            "1",
            "--kill-window-s",
            "1.5",
            "--time-limit-s",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = dict(line.rsplit(None, 1) for line in done.stdout.splitlines() if line[:1].isalpha())
    assert figures["chaos:"] == "PASS"
    assert figures["duplicates (by row tag)"] == "0"
    assert figures["missing (accepted in ledger, not in emulator)"] == "0"
    assert figures["in_doubt left"] == "0"
    assert figures["rows settled in the ledger"] == "10000"
