"""The API's error answers: one exception the handlers raise, one body shape it becomes.

Codes follow Twilio's where one is known (21614 invalid number, 20429 too many requests,
20404 not found, 20003 authentication); 20001 is the generic invalid-request code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AUTH_FAILED",
    "INVALID_ADDRESS",
    "INVALID_REQUEST",
    "MISSING_CONTENT",
    "NOT_FOUND",
    "SERVER_ERROR",
    "TOO_LARGE",
    "TOO_MANY_REQUESTS",
    "ApiError",
    "error_body",
]

INVALID_REQUEST = 20001
AUTH_FAILED = 20003
NOT_FOUND = 20404
TOO_LARGE = 20413
TOO_MANY_REQUESTS = 20429
SERVER_ERROR = 20500
MISSING_CONTENT = 21602
INVALID_ADDRESS = 21614


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler and rendered by the app."""

    def __init__(
        self, status: int, code: int, message: str, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @classmethod
    def invalid(cls, message: str, code: int = INVALID_REQUEST) -> ApiError:
        return cls(400, code, message)

    @classmethod
    def not_found(cls, what: str) -> ApiError:
        return cls(404, NOT_FOUND, f"The requested resource {what} was not found")


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """The documented error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/api/errors/{code}",
        "status": status,
    }
