"""`campaign.preview.preview_campaign`: the dry run's counts, samples and JSON document."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from typing import Any

import pytest

from campaign.preview import FIRST_ROWS, Preview, preview_campaign
from campaign.spec import CampaignSpec, load_spec

SAMPLES = Path(__file__).resolve().parents[1] / "sample_campaigns"
POOL = "comms_senderpool_01kdvdna000000000000000001"
JSON_KEYS = {
    "rows",
    "valid",
    "invalid",
    "invalid_by_reason",
    "duplicates",
    "suppressed",
    "already_settled",
    "to_send",
    "by_channel",
    "by_pool",
    "segments",
    "requests",
    "eta_s",
    "samples",
}
SAMPLE_KEYS = {"row", "address", "channel", "text", "segments"}

SPRING_SALE_TEXT = "Hi {}! Spring sale: 20% off today with code SPRING20. Reply STOP to opt out."


def write_campaign(
    folder: Path,
    csv: str,
    text: str,
    *,
    recipients: str = 'address = "phone"\ndefault_region = "US"',
    pools: str = f'[sender]\npool = "{POOL}"',
    sending: str = "rate_per_s = 10\nbatch_size = 100",
    extra: str = "",
) -> CampaignSpec:
    """Write a campaign file and its recipients CSV into `folder`; the loaded spec."""
    (folder / "recipients.csv").write_text(csv, encoding="utf-8")
    (folder / "campaign.toml").write_text(
        f'name = "test"\n{extra}\n[recipients]\npath = "recipients.csv"\n{recipients}\n'
        f"{pools}\n[message]\ntext = {json.dumps(text, ensure_ascii=False)}\n[sending]\n{sending}\n",
        encoding="utf-8",
    )
    return load_spec(folder / "campaign.toml")


def counts(report: Preview) -> dict[str, Any]:
    """The JSON document without its samples."""
    document = report.to_json()
    del document["samples"]
    return document


def test_spring_sale_counts() -> None:
    """The small CSV sample: every verdict counted, 13 to send in 3 requests of 5 at 10/s."""
    report = preview_campaign(load_spec(SAMPLES / "spring-sale.toml"))
    assert counts(report) == {
        "rows": 20,
        "valid": 13,
        "invalid": 3,
        "invalid_by_reason": {
            "invalid_address": {"count": 2, "rows": [10, 11]},
            "missing_variable": {"count": 1, "rows": [9]},
        },
        "duplicates": 2,
        "suppressed": 2,
        "already_settled": 0,
        "to_send": 13,
        "by_channel": {"PHONE": 13},
        "by_pool": {"default": 13},
        # 12 GSM-7 texts of one segment, and "Zoë" (ë is not GSM-7): 77 UCS-2 units = 2.
        "segments": 14,
        "requests": 3,
        "eta_s": 1.3,
    }
    assert report.eta_s == pytest.approx(13 / 10)


def test_multichannel_counts() -> None:
    """The JSONL sample: every invalid reason, two channels, two pools paced apart."""
    report = preview_campaign(load_spec(SAMPLES / "multichannel.toml"))
    assert counts(report) == {
        "rows": 17,
        "valid": 10,
        "invalid": 5,
        "invalid_by_reason": {
            "bad_row": {"count": 1, "rows": [15]},
            "invalid_channel": {"count": 1, "rows": [13]},
            "unknown_pool": {"count": 1, "rows": [14]},
            "invalid_address": {"count": 1, "rows": [12]},
            "missing_variable": {"count": 1, "rows": [11]},
        },
        "duplicates": 1,
        "suppressed": 1,
        "already_settled": 0,
        "to_send": 10,
        "by_channel": {"PHONE": 5, "WHATSAPP": 5},
        "by_pool": {"alerts": 7, "marketing": 3},
        "segments": 20,  # every text carries a truck emoji: UCS-2, 72-84 units, 2 each
        "requests": 2,  # one batch of up to 50 per pool
        "eta_s": 1.4,  # alerts: 7 at 5/s; marketing: 3 at 20/s
    }
    assert report.eta_s == pytest.approx(7 / 5)


@pytest.mark.parametrize("name", ["spring-sale", "multichannel"])
def test_sample_counts_add_up(name: str) -> None:
    """Every row has one verdict; requests and ETA follow from the per-pool counts."""
    spec = load_spec(SAMPLES / f"{name}.toml")
    report = preview_campaign(spec)
    assert report.rows == report.valid + report.invalid + report.duplicates + report.suppressed
    assert report.invalid == sum(c.count for c in report.invalid_by_reason.values())
    assert report.valid == report.to_send + report.already_settled
    assert sum(report.by_channel.values()) == sum(report.by_pool.values()) == report.to_send
    batch = spec.sending.batch_size
    assert report.requests == sum(math.ceil(n / batch) for n in report.by_pool.values())
    assert report.eta_s == pytest.approx(
        max(n / spec.pools[alias].rate_per_s for alias, n in report.by_pool.items())
    )


def test_spring_sale_samples() -> None:
    """Samples are the first valid rows in file order, rendered with defaults applied."""
    report = preview_campaign(load_spec(SAMPLES / "spring-sale.toml"), samples=5)
    assert [(s.row, s.address, s.channel, s.text, s.segments) for s in report.samples] == [
        (1, "+12065550101", "PHONE", SPRING_SALE_TEXT.format("Ada"), 1),
        (2, "+12065550102", "PHONE", SPRING_SALE_TEXT.format("Grace"), 1),
        (3, "+12065550103", "PHONE", SPRING_SALE_TEXT.format("Alan"), 1),
        (4, "+12065550104", "PHONE", SPRING_SALE_TEXT.format("there"), 1),
        (5, "+12065550105", "PHONE", SPRING_SALE_TEXT.format("O'Brien, Pat"), 1),
    ]


def test_multichannel_samples() -> None:
    """Liquid branches render per row; the emoji makes every text two UCS-2 segments."""
    report = preview_campaign(load_spec(SAMPLES / "multichannel.toml"), samples=4)
    tail = "ships today \U0001f69a Track it at https://example.com/t/"
    assert [(s.row, s.address, s.channel, s.text, s.segments) for s in report.samples] == [
        (1, "+447911123456", "PHONE", f"Hi Olivia, order A-1001 {tail}A-1001", 2),
        (2, "+447911123457", "PHONE", f"Hi Oliver, order A-1002 {tail}A-1002", 2),
        (3, "+34612345678", "WHATSAPP", f"Hola Lucía, order A-1003 {tail}A-1003", 2),
        (4, "+33612345678", "WHATSAPP", f"Bonjour Chloé, order A-1004 {tail}A-1004", 2),
    ]


def test_default_is_three_samples() -> None:
    """Without `samples`, three rendered samples."""
    report = preview_campaign(load_spec(SAMPLES / "spring-sale.toml"))
    assert [s.row for s in report.samples] == [1, 2, 3]


def test_render_error_row_is_invalid_and_not_sent(tmp_path: Path) -> None:
    """A row whose values make the template fail counts as render_error, not as valid."""
    csv = "phone,n\n+12065550101,2\n+12065550102,0\n+12065550103,5\n"
    spec = write_campaign(tmp_path, csv, "You have {{ 10 | divided_by: n }} days left")
    report = preview_campaign(spec, samples=10)
    assert counts(report) == {
        "rows": 3,
        "valid": 2,
        "invalid": 1,
        "invalid_by_reason": {"render_error": {"count": 1, "rows": [2]}},
        "duplicates": 0,
        "suppressed": 0,
        "already_settled": 0,
        "to_send": 2,
        "by_channel": {"PHONE": 2},
        "by_pool": {"default": 2},
        "segments": 2,
        "requests": 1,
        "eta_s": 0.2,
    }
    assert [(s.row, s.text) for s in report.samples] == [
        (1, "You have 5 days left"),
        (3, "You have 2 days left"),
    ]


def test_settled_rows_are_reported_not_sent(tmp_path: Path) -> None:
    """Rows the ledger has settled count as already_settled, not as to send or samples."""
    csv = "phone,name\n" + "".join(f"+1206555010{i},N{i}\n" for i in range(1, 7))
    spec = write_campaign(tmp_path, csv, "Hi {{ name }}", sending="rate_per_s = 2\nbatch_size = 3")
    asked: list[int] = []

    def is_settled(row: int) -> bool:
        asked.append(row)
        return row in {1, 2, 5}

    report = preview_campaign(spec, samples=10, is_settled=is_settled)
    assert set(asked) == {1, 2, 3, 4, 5, 6}
    assert (report.valid, report.already_settled, report.to_send) == (6, 3, 3)
    assert dict(report.by_pool) == {"default": 3}
    assert dict(report.by_channel) == {"PHONE": 3}
    assert (report.segments, report.requests, report.eta_s) == (3, 1, 1.5)
    assert [s.row for s in report.samples] == [3, 4, 6]


def test_all_rows_settled_leaves_nothing_to_send(tmp_path: Path) -> None:
    """A finished campaign: everything settled, no requests, no time, no samples."""
    spec = write_campaign(tmp_path, "phone\n+12065550101\n+12065550102\n", "Hi")
    report = preview_campaign(spec, is_settled=lambda _row: True)
    document = report.to_json()
    assert (document["valid"], document["already_settled"], document["to_send"]) == (2, 2, 0)
    assert (document["requests"], document["eta_s"], document["segments"]) == (0, 0.0, 0)
    assert document["by_pool"] == document["by_channel"] == {}
    assert document["samples"] == []


def test_header_only_file_previews_as_empty(tmp_path: Path) -> None:
    """A list with a header and no rows: all zeros, not an error."""
    report = preview_campaign(write_campaign(tmp_path, "phone,name\n", "Hi {{ name }}"))
    assert counts(report) == {
        "rows": 0,
        "valid": 0,
        "invalid": 0,
        "invalid_by_reason": {},
        "duplicates": 0,
        "suppressed": 0,
        "already_settled": 0,
        "to_send": 0,
        "by_channel": {},
        "by_pool": {},
        "segments": 0,
        "requests": 0,
        "eta_s": 0.0,
    }


@pytest.mark.parametrize("wanted", [0, 1, 2, 4, 5, 100])
def test_samples_are_limited(tmp_path: Path, wanted: int) -> None:
    """At most N samples, the first valid rows, skipping invalid ones."""
    csv = "phone,name\n+12065550101,A\nbad,B\n+12065550102,C\n+12065550103,D\n+12065550104,E\n"
    spec = write_campaign(tmp_path, csv, "Hi {{ name }}")
    report = preview_campaign(spec, samples=wanted)
    assert [s.row for s in report.samples] == [1, 3, 4, 5][:wanted]
    assert [s.text for s in report.samples] == ["Hi A", "Hi C", "Hi D", "Hi E"][:wanted]
    assert report.to_send == 4


@pytest.mark.parametrize(
    ("note", "text", "segments"),
    [
        # "Hi Ann! " (8) + party popper (2 UTF-16 units) + " " + note
        ("", "Hi Ann! \U0001f389 See you soon.", 1),
        ("x" * 59, "Hi Ann! \U0001f389 " + "x" * 59, 1),  # 70 units: one UCS-2 SMS
        ("x" * 60, "Hi Ann! \U0001f389 " + "x" * 60, 2),  # 71 units: two parts of <= 67
        ("x" * 124, "Hi Ann! \U0001f389 " + "x" * 124, 3),  # 135 units: 67 + 67 + 1
    ],
    ids=["24-units", "70-units", "71-units", "135-units"],
)
def test_emoji_sample_segments(tmp_path: Path, note: str, text: str, segments: int) -> None:
    """An emoji makes the text UCS-2: 70 units in one SMS, then 67 per part."""
    csv = f"phone,name,note\n+12065550101,Ann,{note}\n"
    spec = write_campaign(
        tmp_path, csv, "Hi {{ name }}! \U0001f389 {{ note | default: 'See you soon.' }}"
    )
    report = preview_campaign(spec, samples=1)
    (sample,) = report.samples
    assert (sample.text, sample.segments) == (text, segments)
    assert report.segments == segments


def test_gsm7_sample_segments(tmp_path: Path) -> None:
    """GSM-7 texts: 160 characters in one SMS, 161 in two; segments add up over rows."""
    csv = f"phone,body\n+12065550101,{'a' * 160}\n+12065550102,{'b' * 161}\n+12065550103,hi\n"
    spec = write_campaign(tmp_path, csv, "{{ body }}")
    report = preview_campaign(spec, samples=3)
    assert [(len(s.text), s.segments) for s in report.samples] == [(160, 1), (161, 2), (2, 1)]
    assert report.segments == 4


def test_only_the_first_rows_of_a_reason_are_kept(tmp_path: Path) -> None:
    """More than five invalid rows of one reason: all counted, the first five row numbers kept."""
    bad = {2, 3, 5, 6, 7, 9, 10, 12}
    lines = ["phone,code"]
    for row in range(1, 14):
        if row in bad:
            lines.append(f"12{row},X")
        elif row == 13:
            lines.append(f"+120655501{row:02d},")  # missing_variable
        else:
            lines.append(f"+120655501{row:02d},X")
    spec = write_campaign(tmp_path, "\n".join(lines) + "\n", "Code {{ code }}")
    report = preview_campaign(spec)
    assert FIRST_ROWS == 5
    assert report.to_json()["invalid_by_reason"] == {
        "invalid_address": {"count": 8, "rows": [2, 3, 5, 6, 7]},
        "missing_variable": {"count": 1, "rows": [13]},
    }
    assert (report.invalid, report.valid) == (9, 4)


def test_requests_and_eta_are_per_pool(tmp_path: Path) -> None:
    """Requests are ceil(count / batch) per pool; the ETA is the slowest pool's, not the sum."""
    pools = (
        f'[pools.slow]\nid = "{POOL}"\nrate_per_s = 2\n'
        f'[pools.fast]\nid = "{POOL}"\nrate_per_s = 10\n'
    )
    rows = ["slow"] * 4 + ["fast"] * 7
    csv = "phone,pool\n" + "".join(f"+1206555{i:04d},{p}\n" for i, p in enumerate(rows, 101))
    spec = write_campaign(
        tmp_path,
        csv,
        "Hi",
        recipients='address = "phone"\npool_column = "pool"',
        pools=pools,
        sending="batch_size = 3",
    )
    report = preview_campaign(spec)
    assert dict(report.by_pool) == {"slow": 4, "fast": 7}
    assert report.requests == 2 + 3  # ceil(4/3) + ceil(7/3); not ceil(11/3)
    assert report.eta_s == pytest.approx(2.0)  # max(4/2, 7/10); not 4/2 + 7/10
    assert report.to_json()["eta_s"] == 2.0


@pytest.mark.parametrize("name", ["spring-sale", "multichannel"])
def test_json_document_has_exactly_the_keys(name: str) -> None:
    """`to_json()` has exactly the documented keys, each sample its five, and is JSON."""
    document = preview_campaign(load_spec(SAMPLES / f"{name}.toml"), samples=2).to_json()
    assert set(document) == JSON_KEYS
    assert len(document["samples"]) == 2
    assert all(set(sample) == SAMPLE_KEYS for sample in document["samples"])
    assert all(set(c) == {"count", "rows"} for c in document["invalid_by_reason"].values())
    assert json.loads(json.dumps(document)) == document


def test_json_document_has_every_key_when_empty(tmp_path: Path) -> None:
    """Even with nothing to report, every key is present."""
    report = preview_campaign(write_campaign(tmp_path, "phone\n", "Hi"), samples=0)
    assert set(report.to_json()) == JSON_KEYS


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_preview_touches_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, an API at a closed port, sockets forbidden: the preview still works."""
    for variable in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "CAMPAIGN_API_BASE_URL",
    ):
        monkeypatch.delenv(variable, raising=False)

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the preview touched the network")

    api = f'[api]\nbase_url = "http://127.0.0.1:{closed_port()}/preview"'
    spec = write_campaign(tmp_path, "phone,name\n+12065550101,Ada\n", "Hi {{ name }}", extra=api)
    assert spec.api_base_url is not None
    assert spec.api_base_url.startswith("http://127.0.0.1:")
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket.socket, "connect_ex", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    report = preview_campaign(spec)
    assert (report.to_send, [s.text for s in report.samples]) == (1, ["Hi Ada"])
