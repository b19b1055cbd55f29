"""Credentials from the environment, hidden secrets, and the base URL's resolution."""

from __future__ import annotations

import base64

import pytest
from api_fakes import LEAK, SID

from campaign.credentials import DEFAULT_BASE_URL, Credentials, resolve_base_url
from campaign.exceptions import ConfigurationError

KEY = "SK00000000000000000000000000000000"


@pytest.mark.parametrize(
    ("environ", "username", "source"),
    [
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": LEAK},
            SID,
            "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN",
        ),
        (
            {"TWILIO_API_KEY": KEY, "TWILIO_API_SECRET": LEAK},
            KEY,
            "TWILIO_API_KEY/TWILIO_API_SECRET",
        ),
        (
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": "other",
                "TWILIO_API_KEY": KEY,
                "TWILIO_API_SECRET": LEAK,
            },
            KEY,
            "TWILIO_API_KEY/TWILIO_API_SECRET",
        ),
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": LEAK, "TWILIO_API_KEY": KEY},
            SID,
            "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN",
        ),
    ],
    ids=["account", "api-key", "api-key-wins", "half-key-ignored"],
)
def test_credentials_come_from_a_complete_pair(
    environ: dict[str, str], username: str, source: str
) -> None:
    """The first complete pair is used (an API key before the account token), and says where from."""
    credentials = Credentials.from_environment(environ)
    assert (credentials.username, credentials.source) == (username, source)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN is not set, but TWILIO_ACCOUNT_SID is"),
        ({"TWILIO_AUTH_TOKEN": LEAK}, "TWILIO_ACCOUNT_SID is not set, but TWILIO_AUTH_TOKEN is"),
        (
            {"TWILIO_API_SECRET": LEAK, "TWILIO_ACCOUNT_SID": " "},
            "TWILIO_API_KEY is not set, but TWILIO_API_SECRET is",
        ),
    ],
)
def test_missing_credentials_name_the_missing_variable(
    environ: dict[str, str], message: str
) -> None:
    """A missing variable is named, and no value of the others is repeated."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        Credentials.from_environment(environ)
    assert LEAK not in str(caught.value)


def test_the_secret_never_shows() -> None:
    """repr and str of credentials hide the secret."""
    credentials = Credentials(SID, LEAK, "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN")
    assert LEAK not in repr(credentials)
    assert LEAK not in str(credentials)
    assert "password='***'" in repr(credentials)


def test_authorization_is_http_basic() -> None:
    """The header is Basic base64(user:secret), and both forms of the secret are listed as secrets."""
    credentials = Credentials(SID, LEAK)
    header = credentials.authorization()
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"{SID}:{LEAK}"
    assert credentials.secrets() == (LEAK, header.removeprefix("Basic "))


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("http://127.0.0.1:8765/preview/", {}, "http://127.0.0.1:8765/preview"),
        (
            "https://a.example/v1",
            {"CAMPAIGN_API_BASE_URL": "https://b.example/v1"},
            "https://a.example/v1",
        ),
        (None, {"CAMPAIGN_API_BASE_URL": "https://b.example/v1"}, "https://b.example/v1"),
        ("", {"CAMPAIGN_API_BASE_URL": ""}, DEFAULT_BASE_URL),
        (None, {}, "https://comms.twilio.com/preview"),
    ],
)
def test_base_url_precedence(explicit: str | None, environ: dict[str, str], expected: str) -> None:
    """An explicit URL beats $CAMPAIGN_API_BASE_URL, which beats the public preview API."""
    assert resolve_base_url(explicit, environ) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x.example", "must be an http:// or https:// URL"),
        ("comms.twilio.com/preview", "must be an http:// or https:// URL"),
        ("http://", "must be an http:// or https:// URL"),
        (f"https://user:{LEAK}@x.example/v1", "must not contain a user name or password"),
        ("https://x.example/v1?a=b", "must not have a query"),
    ],
)
def test_a_bad_base_url_is_a_configuration_error(url: str, message: str) -> None:
    """A malformed base URL is refused with what to fix, without echoing a password in it."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        resolve_base_url(url, {})
    assert LEAK not in str(caught.value)


def test_a_bad_base_url_from_the_environment_names_the_variable() -> None:
    """The message says the bad URL came from CAMPAIGN_API_BASE_URL."""
    with pytest.raises(ConfigurationError, match=r"^CAMPAIGN_API_BASE_URL must be"):
        resolve_base_url(None, {"CAMPAIGN_API_BASE_URL": "nonsense"})
