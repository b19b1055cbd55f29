"""The dry run: every row of a campaign read and checked as a run would, nothing sent.

It consumes the same stream of row verdicts as the run (`campaign.recipients`), so the
checks exist once; where the run would batch and send, the preview counts: verdicts and
reasons, what is left to send by channel and by pool, SMS segments, the requests it will
take and the time it will take at each pool's pace, and a few rendered samples.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from campaign.exceptions import TemplateError
from campaign.recipients import REASONS, read_campaign_recipients
from campaign.spec import CampaignSpec
from campaign.templating import MessageTemplate

__all__ = ["FIRST_ROWS", "Preview", "Sample", "preview_campaign"]

FIRST_ROWS = 5  # row numbers kept per invalid reason, for the report


@dataclass(frozen=True, slots=True)
class Sample:
    row: int
    address: str
    channel: str
    text: str
    segments: int


@dataclass(slots=True)
class ReasonCount:
    count: int = 0
    rows: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Preview:
    """What a run of the campaign would do now."""

    campaign: str
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    invalid_by_reason: dict[str, ReasonCount] = field(default_factory=dict)
    duplicates: int = 0
    suppressed: int = 0
    already_settled: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    segments: int = 0
    requests: int = 0
    eta_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    @property
    def to_send(self) -> int:
        return sum(self.by_pool.values())

    def to_json(self) -> dict[str, Any]:
        """The `--json` document: these keys, always all of them."""
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "invalid_by_reason": {
                reason: {"count": counted.count, "rows": counted.rows}
                for reason, counted in self.invalid_by_reason.items()
            },
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "already_settled": self.already_settled,
            "to_send": self.to_send,
            "by_channel": dict(sorted(self.by_channel.items())),
            "by_pool": dict(sorted(self.by_pool.items())),
            "segments": self.segments,
            "requests": self.requests,
            "eta_s": round(self.eta_s, 1),
            "samples": [
                {
                    "row": s.row,
                    "address": s.address,
                    "channel": s.channel,
                    "text": s.text,
                    "segments": s.segments,
                }
                for s in self.samples
            ],
        }


def _count_invalid(report: Preview, reason: ReasonCount, row: int) -> None:
    report.invalid += 1
    reason.count += 1
    if len(reason.rows) < FIRST_ROWS:
        reason.rows.append(row)


def preview_campaign(
    spec: CampaignSpec,
    *,
    samples: int = 3,
    is_settled: Callable[[int], bool] | None = None,
) -> Preview:
    """Read the whole recipient list of `spec` and report what a run would do.

    `is_settled(row)` tells rows an earlier run already settled (from its ledger): they are
    counted as already settled, not as to send. Raises the reader's and the template's
    file-level errors; one bad row is only ever counted.
    """
    template = MessageTemplate(spec.message.text)
    report = Preview(spec.name)
    invalid_by_reason = {reason: ReasonCount() for reason in (*REASONS, "render_error")}
    by_channel, by_pool = report.by_channel, report.by_pool
    segments = 0
    with read_campaign_recipients(spec, template.required_variables) as rows:
        for row in rows:
            report.rows += 1
            verdict = row.verdict
            if verdict == "valid":
                try:
                    # A template can fail for one row's values (`divided_by` a "0"); the
                    # API would refuse that row's whole batch, so it is never sent.
                    counted = template.segments(row.variables).segments
                except TemplateError:
                    _count_invalid(report, invalid_by_reason["render_error"], row.row)
                    continue
                report.valid += 1
                if is_settled is not None and is_settled(row.row):
                    report.already_settled += 1
                    continue
                by_channel[row.channel] += 1
                by_pool[row.pool] += 1
                segments += counted
                if len(report.samples) < samples:
                    text = template.render(row.variables)
                    report.samples.append(Sample(row.row, row.address, row.channel, text, counted))
            elif verdict == "invalid":
                _count_invalid(report, invalid_by_reason[row.reason or "bad_row"], row.row)
            elif verdict == "duplicate":
                report.duplicates += 1
            else:
                report.suppressed += 1
    report.invalid_by_reason = {r: c for r, c in invalid_by_reason.items() if c.count}
    report.segments = segments
    batch_size = spec.sending.batch_size
    report.requests = sum(math.ceil(count / batch_size) for count in by_pool.values())
    # Pools are paced independently and in parallel: the slowest one sets the time.
    report.eta_s = max(
        (count / spec.pools[alias].rate_per_s for alias, count in by_pool.items()), default=0.0
    )
    return report
