"""The batch fast path of POST /Messages validation agrees with the one-by-one path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.emulator.errors import ApiError
from campaign.emulator.rendering import compile_template
from campaign.emulator.validation import _recipients_at_once, _recipients_one_by_one

ADDRESSES = st.sampled_from(
    ["+19143188062", "+447400123456", "+4915123456789", "+1914318806", "+0000", "19143188062", ""]
)
CHANNELS = st.sampled_from(["PHONE", "phone", "WHATSAPP", "whatsapp", "Phone", "SMS", 3, None])
VALUES = st.one_of(st.text(max_size=20), st.integers(), st.none())
VARIABLES = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["name", "_row", "x"]), VALUES, max_size=3),
    st.just("not an object"),
)
RECIPIENT = st.fixed_dictionaries(
    {"address": ADDRESSES, "channel": CHANNELS},
    optional={"variables": VARIABLES, "extra": st.just(1)},
)
TEXTS = st.sampled_from(
    [None, "Hi {{ name }}!", "Hi {{ name | default: 'there' }} é€", "plain", "{{ name | upcase }}"]
)
TAGS = st.lists(
    st.sampled_from([("campaign", "spring"), ("row", "{{_row}}"), ("n", "x{{ name }}y")]),
    max_size=3,
    unique=True,
)


def _outcome(call: Any) -> Any:
    try:
        return call()
    except ApiError as error:
        return ("error", error.status)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECIPIENT, min_size=1, max_size=6), TEXTS, TAGS)
def test_fast_path_agrees_with_the_careful_path(
    to: list[dict[str, Any]], text: str | None, tags: list[tuple[str, str]]
) -> None:
    """Whenever the batch path accepts a request, the careful path returns exactly the same."""
    compiled_text = compile_template(text) if text is not None else None
    compiled_tags = [(key, compile_template(source)) for key, source in tags]
    fast = _outcome(lambda: _recipients_at_once(to, compiled_text, compiled_tags))
    careful = _outcome(lambda: _recipients_one_by_one(to, compiled_text, compiled_tags))
    if fast is None:
        return  # handed over: the careful path alone decides
    assert fast == careful


@pytest.mark.parametrize("count", [1, 3])
def test_fast_path_takes_an_ordinary_batch(count: int) -> None:
    """A batch of valid recipients goes through the fast path, not the careful one."""
    to = [
        {"address": "+19143188062", "channel": "PHONE", "variables": {"name": "Ada", "_row": "1"}}
    ] * count
    result = _recipients_at_once(
        to, compile_template("Hi {{ name }}"), [("row", compile_template("{{_row}}"))]
    )
    assert result is not None
    addresses, whatsapp, segments, columns = result
    assert addresses == ["+19143188062"] * count
    assert list(whatsapp) == [0] * count
    assert segments == [1] * count
    assert columns == (["1"] * count,)
