"""The one exception tree: who is whose parent, and what each error says about itself."""

from __future__ import annotations

import re

import pytest

from campaign import exceptions
from campaign.exceptions import (
    AmbiguousError,
    ApiError,
    AuthenticationError,
    CampaignError,
    ConfigurationError,
    ConnectionLostError,
    FatalError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    RequestTimeoutError,
    ServerError,
    UnexpectedResponseError,
    UnreachableError,
)


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (ConfigurationError, CampaignError),
        (UnreachableError, CampaignError),
        (ApiError, CampaignError),
        (RateLimitedError, ApiError),
        (AmbiguousError, ApiError),
        (ServerError, AmbiguousError),
        (RequestTimeoutError, AmbiguousError),
        (ConnectionLostError, AmbiguousError),
        (UnexpectedResponseError, AmbiguousError),
        (RequestRejectedError, ApiError),
        (FatalError, ApiError),
        (AuthenticationError, FatalError),
        (NotFoundError, FatalError),
    ],
)
def test_each_error_sits_under_its_parent(error: type[Exception], parent: type[Exception]) -> None:
    """The classes form the tree drawn in the module docstring."""
    assert error.__bases__ == (parent,)


@pytest.mark.parametrize("name", exceptions.__all__)
def test_every_exported_error_is_drawn_in_the_docstring(name: str) -> None:
    """The docstring's tree names every class the module exports."""
    drawn = re.findall(r"^[│├└─ ]*(\w+)  ", exceptions.__doc__ or "", re.MULTILINE)
    assert name in drawn


def test_the_three_outcomes_for_a_sender_are_disjoint() -> None:
    """Retry, reconcile and give up never overlap: no class is two of them at once."""
    kinds = (RateLimitedError, AmbiguousError, RequestRejectedError, FatalError)
    for kind in kinds:
        assert [k for k in kinds if issubclass(kind, k)] == [kind]


def test_an_api_error_carries_its_context_and_says_it() -> None:
    """Status, code, Retry-After, method and URL are attributes and appear in the message."""
    error = RateLimitedError(
        "Too many requests",
        status=429,
        code=20429,
        retry_after_s=2.0,
        more_info="https://www.twilio.com/docs/api/errors/20429",
        method="POST",
        url="https://comms.twilio.com/preview/Messages",
    )
    assert (error.status, error.code, error.retry_after_s) == (429, 20429, 2.0)
    assert str(error) == (
        "Too many requests (429, code 20429, POST https://comms.twilio.com/preview/Messages)"
    )
    assert "retry_after_s=2.0" in repr(error)


def test_an_error_without_an_answer_has_no_status() -> None:
    """A timeout has no status or code, and its message still names the request."""
    error = RequestTimeoutError("no answer within 30 s", method="GET", url="https://x/Senders")
    assert (error.status, error.code) == (None, None)
    assert str(error) == "no answer within 30 s (GET https://x/Senders)"


def test_unreachable_names_the_request_it_could_not_make() -> None:
    """UnreachableError says why and where."""
    error = UnreachableError("connection refused", method="GET", url="http://127.0.0.1:1/x")
    assert str(error) == "cannot connect: connection refused (GET http://127.0.0.1:1/x)"
