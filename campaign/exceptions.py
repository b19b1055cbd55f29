"""Every error the sending side raises, in one tree, each carrying its context as attributes.

```
CampaignError                    the root: catch this at the command line
├── ConfigurationError           missing or malformed settings (credentials, base URL); nothing was sent
├── CampaignFileError            a campaign file that cannot be used: names the file, the key and the fix
├── TemplateError                a message template that is not valid Liquid, or fails to render
├── RecipientsFileError          a recipients or suppression file that cannot be read at all; nothing was sent
├── UnreachableError             no connection could be made (refused, DNS, connect timeout); nothing was sent
└── ApiError                     the API answered with an error, or the answer was lost
    ├── RateLimitedError         429: never processed, always safe to retry after `retry_after_s`
    ├── AmbiguousError           may have been processed: reconcile before sending again
    │   ├── ServerError          5xx (and 408) answers
    │   ├── RequestTimeoutError  no answer within `timeout_s`
    │   ├── ConnectionLostError  connection reset or dropped after the request went out
    │   └── UnexpectedResponseError  a success status whose body cannot be used
    ├── RequestRejectedError     400 and other 4xx: permanent for this request; fix it, don't resend it
    └── FatalError               the whole run must stop
        ├── AuthenticationError  401 / 403: wrong credentials or missing scope
        └── NotFoundError        404: unknown pool, sender, operation or route
```

`ApiError` carries `status` (None when no answer came), `code` (Twilio's error code, when
given), `api_message` (the server's own words), `retry_after_s`, `more_info`, `method`
and `url`. Messages are built from those alone; credentials never reach an exception.

`CampaignFileError` carries `path`, `key` (dotted, e.g. `sending.batch_size`; None for the
file as a whole), `line`/`column` (TOML syntax errors), `problem` and `hint`.
`TemplateError` carries `problem` and 1-based `line`/`column` within the template (None
when python-liquid gives no position).
`RecipientsFileError` carries `path`, `problem`, `hint`, `line` (1-based, None for the file
as a whole) and `offset` (the byte offset, for undecodable bytes).
"""

from __future__ import annotations

__all__ = [
    "AmbiguousError",
    "ApiError",
    "AuthenticationError",
    "CampaignError",
    "CampaignFileError",
    "ConfigurationError",
    "ConnectionLostError",
    "FatalError",
    "NotFoundError",
    "RateLimitedError",
    "RecipientsFileError",
    "RequestRejectedError",
    "RequestTimeoutError",
    "ServerError",
    "TemplateError",
    "UnexpectedResponseError",
    "UnreachableError",
]


class CampaignError(Exception):
    """The root of every error `campaign` raises on purpose."""


class ConfigurationError(CampaignError):
    """A setting is missing or malformed; the message names it and says how to fix it."""


class UnreachableError(CampaignError):
    """No connection to the API could be made, so nothing was sent."""

    def __init__(self, reason: str, *, method: str, url: str) -> None:
        self.reason = reason
        self.method = method
        self.url = url
        super().__init__(f"cannot connect: {reason} ({method} {url})")


class ApiError(CampaignError):
    """An error answer from the API, or a request whose answer never came."""

    def __init__(
        self,
        api_message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after_s: float | None = None,
        more_info: str | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        self.api_message = api_message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.more_info = more_info
        self.method = method
        self.url = url
        super().__init__(self._describe())

    def _describe(self) -> str:
        facts = []
        if self.status is not None:
            facts.append(str(self.status))
        if self.code is not None:
            facts.append(f"code {self.code}")
        if self.method or self.url:
            facts.append(f"{self.method} {self.url}".strip())
        return f"{self.api_message} ({', '.join(facts)})" if facts else self.api_message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.api_message!r}, status={self.status}, "
            f"code={self.code}, retry_after_s={self.retry_after_s}, method={self.method!r}, "
            f"url={self.url!r})"
        )


class RateLimitedError(ApiError):
    """429: the API did not process the request; retry after `retry_after_s` (None: not said)."""


class AmbiguousError(ApiError):
    """The request may or may not have been processed; resending blindly can send twice."""


class ServerError(AmbiguousError):
    """A 5xx (or 408) answer: server trouble, possibly after the work was done."""


class RequestTimeoutError(AmbiguousError):
    """No complete answer arrived within the client's `timeout_s`."""


class ConnectionLostError(AmbiguousError):
    """The connection was reset or closed after the request had been sent."""


class UnexpectedResponseError(AmbiguousError):
    """A success status with a body the client cannot use (for a POST: it was probably done)."""


class RequestRejectedError(ApiError):
    """400 or another 4xx: this request is wrong as it stands and will fail again if resent."""


class FatalError(ApiError):
    """Nothing else in the run can succeed until a person fixes the cause."""


class AuthenticationError(FatalError):
    """401 / 403: the credentials are wrong, revoked, or lack the scope for this call."""


class NotFoundError(FatalError):
    """404: the pool, sender, message, operation or route does not exist."""


class CampaignFileError(CampaignError):
    """A campaign file that cannot be used; the message names the file, the key and the fix.

    The message reads `<file>: <key>: <what is wrong>; <what to do>`, with
    `line L, column C` in place of the key for TOML syntax errors.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        key: str | None = None,
        hint: str = "",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.key = key
        self.hint = hint
        self.line = line
        self.column = column
        where = [path]
        if key is not None:
            where.append(key)
        elif line is not None:
            where.append(f"line {line}, column {column}")
        message = ": ".join([*where, problem])
        super().__init__(f"{message}; {hint}" if hint else message)


class TemplateError(CampaignError):
    """A message template that is not valid Liquid for the API, or failed to render.

    `line` and `column` are 1-based positions within the template text.
    """

    def __init__(self, problem: str, *, line: int | None = None, column: int | None = None) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{problem}{where}")


class RecipientsFileError(CampaignError):
    """A recipients (or suppression) file that cannot be read at all, so nothing is sent.

    The message reads `<file>: line L: <what is wrong>; <what to do>` (no line when the
    file as a whole is at fault).  One bad row is never this error: it is a row verdict.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        hint: str = "",
        line: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        self.line = line
        self.offset = offset
        where = path if line is None else f"{path}: line {line}"
        message = f"{where}: {problem}"
        super().__init__(f"{message}; {hint}" if hint else message)
