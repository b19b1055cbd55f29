"""Where the API is and who is calling: credentials from the environment, and the base URL.

Credentials come only from the environment (`TWILIO_API_KEY`/`TWILIO_API_SECRET`, else
`TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`), never from a file, and never show their secret.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import yarl

from campaign.exceptions import ConfigurationError

__all__ = ["BASE_URL_VARIABLE", "DEFAULT_BASE_URL", "Credentials", "resolve_base_url"]

DEFAULT_BASE_URL = "https://comms.twilio.com/preview"
BASE_URL_VARIABLE = "CAMPAIGN_API_BASE_URL"

# An API key is the narrower credential, so it wins when both pairs are set.
_PAIRS = (
    ("TWILIO_API_KEY", "TWILIO_API_SECRET"),
    ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """HTTP Basic credentials; `source` names the variables they came from, for messages."""

    username: str
    password: str = field(repr=False)
    source: str = "explicit"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """The first complete pair of TWILIO_* variables; ConfigurationError names what is missing."""
        env = os.environ if environ is None else environ
        for user_var, secret_var in _PAIRS:
            user, secret = env.get(user_var, "").strip(), env.get(secret_var, "").strip()
            if user and secret:
                return cls(user, secret, source=f"{user_var}/{secret_var}")
        for user_var, secret_var in _PAIRS:
            user_set, secret_set = bool(env.get(user_var)), bool(env.get(secret_var))
            if user_set != secret_set:
                present, missing = (user_var, secret_var) if user_set else (secret_var, user_var)
                raise ConfigurationError(
                    f"{missing} is not set, but {present} is: set both "
                    "(or TWILIO_API_KEY and TWILIO_API_SECRET instead)"
                )
        raise ConfigurationError(
            "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET) in the environment"
        )

    def authorization(self) -> str:
        """The `Authorization` header value."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def secrets(self) -> tuple[str, ...]:
        """Every form of the secret that must never be shown: the password and the header token."""
        return (self.password, self.authorization().removeprefix("Basic "))

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', source={self.source!r})"

    def __str__(self) -> str:
        return repr(self)


def resolve_base_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The API base URL: `explicit`, else $CAMPAIGN_API_BASE_URL, else the public preview API.

    Raises ConfigurationError for a URL that is not http(s), has no host, or carries a user name
    or password (credentials belong in the TWILIO_* variables, where they are kept out of logs).
    """
    env = os.environ if environ is None else environ
    if explicit:
        raw, where = explicit, "the base URL"
    elif env.get(BASE_URL_VARIABLE):
        raw, where = env[BASE_URL_VARIABLE], BASE_URL_VARIABLE
    else:
        return DEFAULT_BASE_URL
    try:
        url = yarl.URL(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{where} is not a URL") from None
    if url.user is not None or url.password is not None:
        raise ConfigurationError(
            f"{where} must not contain a user name or password: put credentials in the "
            "TWILIO_* environment variables"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"{where} must be an http:// or https:// URL such as {DEFAULT_BASE_URL}, got {raw!r}"
        )
    if url.query_string or url.fragment:
        raise ConfigurationError(f"{where} must not have a query or fragment, got {raw!r}")
    return str(url).rstrip("/")
