"""What the client reads from a successful answer besides the resource: the operation id of
a 202, and where the next page of a list is.

Both are lenient, as comms-api.md asks: the operation id is looked for in the body first,
then in the `Location`, `operationId` and `X-Twilio-Operation-Id` headers; `pagination.next`
may be a full URL, a path, or a bare token (and `nextPageToken` is read too).
"""

from __future__ import annotations

from typing import Any

import orjson
import yarl

from campaign.exceptions import UnexpectedResponseError
from campaign.transport import Response

__all__ = ["Params", "next_link", "next_page", "operation_id_of"]

Params = list[tuple[str, str]]
_OPERATION_PREFIX = "comms_operation_"


def operation_id_of(response: Response) -> str | None:
    """The operation id a 202 names, or None when it names none anywhere."""
    try:
        data = orjson.loads(response.body) if response.body.strip() else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        given = data.get("operationId")
        if isinstance(given, str) and given.strip():
            return given.strip()  # the documented answer: no need to look further
    named: list[Any] = []  # given as an id: any non-empty string will do
    located: list[Any] = []  # cut from a URI or an object: must look like an operation id
    if isinstance(data, dict):
        named.append(data.get("operationId"))
        located += [data.get("id"), _last_segment(data.get("operationLocation"))]
    located.append(_last_segment(response.header("Location")))
    named += [response.header("operationId"), response.header("X-Twilio-Operation-Id")]
    for candidate in named[:1] + located + named[1:]:
        if not isinstance(candidate, str) or not candidate.strip():
            continue
        if candidate in named or candidate.startswith(_OPERATION_PREFIX):
            return candidate.strip()
    return None


def next_link(data: dict[str, Any]) -> str | None:
    """`pagination.next` (or a top-level `nextPageToken`); None on the last page."""
    pagination = data.get("pagination")
    link = pagination.get("next") if isinstance(pagination, dict) else None
    if link is None:
        link = data.get("nextPageToken")
    return link if isinstance(link, str) and link.strip() else None


def next_page(
    link: str, *, first_url: str, params: Params, origin: yarl.URL, current: str
) -> tuple[str, Params]:
    """The URL and query of the page `link` points to.

    A token goes into `pageToken` beside the first page's filters; a URL or path is followed
    as is, but only on the API's own origin, which is where the credentials may be sent.
    """
    if "://" not in link and not link.startswith("/"):
        return first_url, [*(p for p in params if p[0] != "pageToken"), ("pageToken", link)]
    target = origin.join(yarl.URL(link)) if link.startswith("/") else yarl.URL(link)
    if target.origin() != origin:
        raise UnexpectedResponseError(
            f"pagination.next points to another server ({target.host}); not following it",
            status=200,
            method="GET",
            url=current,
        )
    return str(target), []


def _last_segment(uri: Any) -> str | None:
    if not isinstance(uri, str) or not uri:
        return None
    return yarl.URL(uri).path.rstrip("/").rsplit("/", 1)[-1] or None
