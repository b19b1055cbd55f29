"""Reading error bodies of any shape, Retry-After, redaction, and status to class."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campaign.api_errors import (
    ErrorDetails,
    error_for_response,
    parse_error_body,
    parse_retry_after,
    redact,
)
from campaign.exceptions import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnexpectedResponseError,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"code": 21614, "message": "Not a number", "more_info": "https://www.twilio.com/docs/api/errors/21614", "status": 400}',
            ErrorDetails(21614, "Not a number", "https://www.twilio.com/docs/api/errors/21614"),
        ),
        (
            b'{"code": 20429, "message": "Slow down", "moreInfo": "https://x/20429"}',
            ErrorDetails(20429, "Slow down", "https://x/20429"),
        ),
        (b'{"error": {"code": "20404", "message": "Nope"}}', ErrorDetails(20404, "Nope")),
        (
            b'{"error": "invalid_client", "error_description": "Bad key"}',
            ErrorDetails(None, "Bad key"),
        ),
        (b'{"error": "invalid_client"}', ErrorDetails(None, "invalid_client")),
        (
            b'{"errors": [{"path": "to[0].address", "detail": "bad"}, "and more"]}',
            ErrorDetails(None, "to[0].address: bad; and more"),
        ),
        (
            b'{"violations": [{"code": 21614, "title": "bad number"}]}',
            ErrorDetails(21614, "bad number"),
        ),
        (
            b'{"title": "Bad Request", "type": "https://x/problem"}',
            ErrorDetails(None, "Bad Request", "https://x/problem"),
        ),
        (b'"just a string"', ErrorDetails(None, "just a string")),
        (b"[1, 2]", ErrorDetails()),
        (b"42", ErrorDetails(None, "42")),
        (b'{"code": true, "message": 5}', ErrorDetails()),
        (
            b"<html><head><title>504 Gateway Time-out</title></head><body><h1>504</h1></body></html>",
            ErrorDetails(None, "504 Gateway Time-out"),
        ),
        (b"<p>upstream &amp; down</p>", ErrorDetails(None, "upstream & down")),
        (b"plain words\n\n  spread out", ErrorDetails(None, "plain words spread out")),
        (b"", ErrorDetails()),
        (b"  \n", ErrorDetails()),
        (b"\xff\xfe not utf-8", ErrorDetails(None, "\ufffd\ufffd not utf-8")),
    ],
    ids=[
        "documented",
        "camelCase",
        "nested",
        "oauth-style",
        "error-string",
        "errors-list",
        "violations",
        "problem-json",
        "json-string",
        "json-list-of-numbers",
        "json-number",
        "wrong-types",
        "gateway-html",
        "html-fragment",
        "plain-text",
        "empty",
        "blank",
        "bad-utf8",
    ],
)
def test_error_bodies_of_every_shape_are_read(body: bytes, expected: ErrorDetails) -> None:
    """Each body shape yields its code, message and link, and none raises."""
    assert parse_error_body(body) == expected


def test_a_long_body_is_cut_short() -> None:
    """A huge page is cut to a readable length."""
    details = parse_error_body(b"x" * 10_000)
    assert details.message is not None
    assert len(details.message) == 300


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        (" 7 ", 7.0),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(value: str | None, seconds: float | None) -> None:
    """Retry-After in seconds or as an HTTP date becomes seconds from now; junk becomes None."""
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, RequestRejectedError),
        (409, RequestRejectedError),
        (413, RequestRejectedError),
        (422, RequestRejectedError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (429, RateLimitedError),
        (408, ServerError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (302, UnexpectedResponseError),
    ],
)
def test_each_status_maps_to_its_class(status: int, kind: type[ApiError]) -> None:
    """The HTTP status alone decides the class of the error."""
    error = error_for_response(status, b"", method="GET", url="https://x/y")
    assert type(error) is kind
    assert error.status == status


@pytest.mark.parametrize(("status", "message"), [(503, "Service Unavailable"), (599, "HTTP 599")])
def test_an_empty_body_falls_back_to_the_status_phrase(status: int, message: str) -> None:
    """With nothing in the body, the message is the HTTP reason phrase."""
    assert error_for_response(status, b"").api_message == message


def test_retry_after_reaches_the_error() -> None:
    """A 429's Retry-After header becomes `retry_after_s`."""
    error = error_for_response(429, b'{"code": 20429, "message": "Slow"}', retry_after="2")
    assert (error.code, error.retry_after_s) == (20429, 2.0)


def test_secrets_in_a_body_are_redacted() -> None:
    """A server that echoes a secret back does not get it into the exception."""
    body = b'{"message": "token s3cr3t-token rejected", "more_info": "https://x/s3cr3t-token"}'
    error = error_for_response(401, body, secrets=["s3cr3t-token"])
    assert "s3cr3t-token" not in str(error)
    assert "s3cr3t-token" not in (error.more_info or "")
    assert error.api_message == "token [redacted] rejected"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [("a key b", ["key"], "a key b"), ("a keys b", ["keys"], "a [redacted] b"), ("x", [], "x")],
)
def test_redact_leaves_too_short_secrets_alone(
    text: str, secrets: list[str], expected: str
) -> None:
    """Only secrets of four characters or more are replaced, so short words survive."""
    assert redact(text, secrets) == expected
