"""Counts of API requests by route and answer, for `/_emulator/stats`."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["RequestStats"]


class RequestStats:
    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )

    def __repr__(self) -> str:
        return f"<RequestStats routes={len(self._counts)} requests={self.total()}>"

    def count(self, route: str, outcome: str) -> None:
        """One request to `route` ("POST /Messages") that ended in `outcome` ("202", "dropped")."""
        self._counts[route][outcome] += 1

    def total(self) -> int:
        return sum(sum(by_outcome.values()) for by_outcome in self._counts.values())

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {
            route: dict(sorted(outcomes.items()))
            for route, outcomes in sorted(self._counts.items())
        }

    def reset(self) -> None:
        self._counts.clear()
