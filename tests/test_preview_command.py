"""`campaign preview FILE [--json] [--samples N]` through click's CliRunner."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campaign.cli import cli

SAMPLES = Path(__file__).resolve().parents[1] / "sample_campaigns"
POOL = "comms_senderpool_01kdvdna000000000000000001"
ENV: dict[str, str | None] = {
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_API_KEY": None,
    "TWILIO_API_SECRET": None,
    "CAMPAIGN_API_BASE_URL": None,
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
}
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
CAMPAIGN = f"""name = "test"
[recipients]
path = "recipients.csv"
address = "phone"
[sender]
pool = "{POOL}"
[message]
text = "Hi {{{{ name | default: 'there' }}}}"
[sending]
rate_per_s = 10
"""
RECIPIENTS = "phone,name\n+12065550101,Ada\n"


def preview(*args: str | Path) -> Result:
    """Run `campaign preview ARGS`; an uncaught exception fails the test with its traceback."""
    return CliRunner().invoke(cli, ["preview", *map(str, args)], env=ENV, catch_exceptions=False)


def one_json_document(result: Result) -> dict[str, object]:
    """stdout is exactly one JSON object (json.loads refuses anything after it)."""
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def test_readable_output_shows_the_counts() -> None:
    """The summary names every count of the small sample, the segments, requests and time."""
    result = preview(SAMPLES / "spring-sale.toml")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    out = result.stdout
    assert "Campaign spring-sale: 20 rows" in out
    for label, count in [
        ("valid", 13),
        ("invalid: invalid_address", 2),
        ("invalid: missing_variable", 1),
        ("duplicates", 2),
        ("suppressed", 2),
        ("already settled", 0),
        ("to send", 13),
    ]:
        assert re.search(rf"^{label}\s+{count}\b", out, re.MULTILINE), (label, out)
    assert re.search(r"^invalid: invalid_address\s+2\s+rows 10, 11\s*$", out, re.MULTILINE)
    assert re.search(r"^invalid: missing_variable\s+1\s+rows 9\s*$", out, re.MULTILINE)
    assert "by channel: PHONE 13" in out
    assert "by pool: default 13" in out
    assert "14 SMS segments in 3 requests; about 1 s" in out


def test_readable_output_shows_the_samples() -> None:
    """Three samples by default: row, address, channel, segments and the rendered text."""
    out = preview(SAMPLES / "spring-sale.toml").stdout
    assert re.findall(r"^row (\d+) → (\S+) \((\w+), (\d+) segments?\):$", out, re.MULTILINE) == [
        ("1", "+12065550101", "PHONE", "1"),
        ("2", "+12065550102", "PHONE", "1"),
        ("3", "+12065550103", "PHONE", "1"),
    ]
    assert "  Hi Ada! Spring sale: 20% off today with code SPRING20. Reply STOP to opt out." in out


def test_readable_output_of_the_multichannel_sample() -> None:
    """Every invalid reason, both channels and both pools appear; emoji texts are 2 segments."""
    out = preview(SAMPLES / "multichannel.toml", "--samples", "1").stdout
    assert "Campaign order-updates.2026-03: 17 rows" in out
    for reason, row in [
        ("bad_row", 15),
        ("invalid_channel", 13),
        ("unknown_pool", 14),
        ("invalid_address", 12),
        ("missing_variable", 11),
    ]:
        assert re.search(rf"^invalid: {reason}\s+1\s+rows {row}\s*$", out, re.MULTILINE), reason
    assert "by channel: PHONE 5, WHATSAPP 5" in out
    assert "by pool: alerts 7, marketing 3" in out
    assert "20 SMS segments in 2 requests" in out
    assert "row 1 → +447911123456 (PHONE, 2 segments):" in out


def test_readable_output_marks_cut_row_lists(tmp_path: Path) -> None:
    """More invalid rows than are listed: the five first, then an ellipsis."""
    (tmp_path / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    bad = "".join(f"12{i}\n" for i in range(7))
    (tmp_path / "recipients.csv").write_text(f"phone\n{bad}+12065550101\n", encoding="utf-8")
    out = preview(tmp_path / "campaign.toml").stdout
    assert re.search(r"^invalid: invalid_address\s+7\s+rows 1, 2, 3, 4, 5…\s*$", out, re.MULTILINE)


@pytest.mark.parametrize("name", ["spring-sale", "multichannel"])
def test_json_is_one_object_with_the_keys(name: str) -> None:
    """`--json` prints one JSON object with exactly the documented keys, nothing else."""
    result = preview(SAMPLES / f"{name}.toml", "--json")
    document = one_json_document(result)
    assert result.stderr == ""
    assert set(document) == JSON_KEYS
    samples = document["samples"]
    assert isinstance(samples, list)
    assert len(samples) == 3
    assert all(set(sample) == SAMPLE_KEYS for sample in samples)


def test_json_counts_of_the_small_sample() -> None:
    """The JSON numbers are the preview's."""
    document = one_json_document(preview(SAMPLES / "spring-sale.toml", "--json"))
    assert {key: document[key] for key in JSON_KEYS - {"samples", "invalid_by_reason"}} == {
        "rows": 20,
        "valid": 13,
        "invalid": 3,
        "duplicates": 2,
        "suppressed": 2,
        "already_settled": 0,
        "to_send": 13,
        "by_channel": {"PHONE": 13},
        "by_pool": {"default": 13},
        "segments": 14,
        "requests": 3,
        "eta_s": 1.3,
    }
    assert document["invalid_by_reason"] == {
        "invalid_address": {"count": 2, "rows": [10, 11]},
        "missing_variable": {"count": 1, "rows": [9]},
    }


@pytest.mark.parametrize(("wanted", "rows"), [(0, []), (1, [1]), (4, [1, 2, 3, 4]), (50, None)])
def test_samples_option(wanted: int, rows: list[int] | None) -> None:
    """`--samples N` gives at most N samples, in file order; 0 gives none."""
    document = one_json_document(
        preview(SAMPLES / "spring-sale.toml", "--json", "--samples", str(wanted))
    )
    samples = document["samples"]
    assert isinstance(samples, list)
    expected = rows if rows is not None else [1, 2, 3, 4, 5, 6, 13, 15, 16, 17, 18, 19, 20]
    assert [sample["row"] for sample in samples] == expected


def test_samples_zero_prints_no_sample() -> None:
    """`--samples 0` in the readable output: the counts, and no sample block."""
    result = preview(SAMPLES / "spring-sale.toml", "--samples", "0")
    assert result.exit_code == 0, result.output
    assert "to send" in result.stdout
    assert "→" not in result.stdout


def test_negative_samples_is_a_usage_error() -> None:
    """`--samples -1` is refused by the option itself, exit 2."""
    result = preview(SAMPLES / "spring-sale.toml", "--samples", "-1")
    assert result.exit_code == 2
    assert "--samples" in result.stderr


def missing_campaign(folder: Path) -> tuple[Path, str]:
    """No campaign file at all."""
    return folder / "nope.toml", "nope.toml"


def bad_toml(folder: Path) -> tuple[Path, str]:
    """A campaign file that is not TOML (an unquoted string)."""
    (folder / "recipients.csv").write_text(RECIPIENTS, encoding="utf-8")
    (folder / "campaign.toml").write_text(CAMPAIGN.replace('"test"', "test"), encoding="utf-8")
    return folder / "campaign.toml", "campaign.toml"


def unknown_key(folder: Path) -> tuple[Path, str]:
    """A campaign file with a misspelt key."""
    (folder / "recipients.csv").write_text(RECIPIENTS, encoding="utf-8")
    text = CAMPAIGN.replace("rate_per_s = 10", "rate_per_s = 10\nbatch = 5")
    (folder / "campaign.toml").write_text(text, encoding="utf-8")
    return folder / "campaign.toml", "campaign.toml"


def missing_recipients(folder: Path) -> tuple[Path, str]:
    """A campaign whose recipients file does not exist."""
    (folder / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    return folder / "campaign.toml", "recipients.csv"


def recipients_not_utf8(folder: Path) -> tuple[Path, str]:
    """A recipients file in Latin-1, read as UTF-8."""
    (folder / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    (folder / "recipients.csv").write_bytes(b"phone,name\n+12065550101,Andr\xe9\n")
    return folder / "campaign.toml", "recipients.csv"


def no_address_column(folder: Path) -> tuple[Path, str]:
    """A recipients file without the configured address column."""
    (folder / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    (folder / "recipients.csv").write_text("number,name\n+12065550101,Ada\n", encoding="utf-8")
    return folder / "campaign.toml", "recipients.csv"


def template_does_not_parse(folder: Path) -> tuple[Path, str]:
    """A message text with an unknown Liquid filter."""
    (folder / "recipients.csv").write_text(RECIPIENTS, encoding="utf-8")
    text = CAMPAIGN.replace("{{ name | default: 'there' }}", "{{ name | nosuchfilter }}")
    (folder / "campaign.toml").write_text(text, encoding="utf-8")
    return folder / "campaign.toml", "campaign.toml"


def jsonl_not_json(folder: Path) -> tuple[Path, str]:
    """A .jsonl recipients file that holds CSV."""
    (folder / "recipients.jsonl").write_text("phone,name\n+12065550101,Ada\n", encoding="utf-8")
    text = CAMPAIGN.replace("recipients.csv", "recipients.jsonl")
    (folder / "campaign.toml").write_text(text, encoding="utf-8")
    return folder / "campaign.toml", "recipients.jsonl"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    "make",
    [
        missing_campaign,
        bad_toml,
        unknown_key,
        missing_recipients,
        recipients_not_utf8,
        no_address_column,
        template_does_not_parse,
        jsonl_not_json,
    ],
)
def test_unusable_files_exit_2_with_one_line(
    tmp_path: Path, make: Callable[[Path], tuple[Path, str]], as_json: bool
) -> None:
    """A file that cannot be used: exit 2, one stderr line naming the file, no traceback."""
    campaign_file, named = make(tmp_path)
    result = preview(campaign_file, *(["--json"] if as_json else []))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("campaign: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_is_named(tmp_path: Path) -> None:
    """The unknown-key message names the dotted key and suggests the close one."""
    campaign_file, _ = unknown_key(tmp_path)
    result = preview(campaign_file)
    assert "sending.batch: unknown key" in result.stderr
    assert "batch_size" in result.stderr


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    """A TOML syntax error names where it is."""
    campaign_file, _ = bad_toml(tmp_path)
    assert "line 1, column" in preview(campaign_file).stderr
