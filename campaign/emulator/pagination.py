"""`pageSize` / `pageToken` in, `pagination: {next, self}` out, for every list route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from campaign.emulator.errors import ApiError
from campaign.emulator.http import Request

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Page", "page_of"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    start: int  # position in the underlying sequence where this page begins

    def body(
        self,
        request: Request,
        key: str,
        items: list[Any],
        next_start: int | None,
        *,
        next_as_token: bool,
    ) -> dict[str, Any]:
        """The list body; `next` is a full URL, or a bare token when configured so."""
        next_link: str | None = None
        if next_start is not None:
            token = f"p{next_start}"
            next_link = token if next_as_token else str(request.url.update_query(pageToken=token))
        return {key: items, "pagination": {"next": next_link, "self": str(request.url)}}


def page_of(request: Request) -> Page:
    """Read and check `pageSize` and `pageToken`; refuse bad values with 400."""
    raw_size = request.query.get("pageSize")
    size = DEFAULT_PAGE_SIZE
    if raw_size is not None:
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            raise ApiError.invalid(f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}")
        size = int(raw_size)
    token = request.query.get("pageToken")
    start = 0
    if token is not None:
        if not (token.startswith("p") and token[1:].isdigit()):
            raise ApiError.invalid("pageToken is not one this API issued")
        start = int(token[1:])
    return Page(size, start)
