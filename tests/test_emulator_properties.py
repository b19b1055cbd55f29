"""Property tests: any body thrown at POST /Messages gets only a documented answer.

Documented answers are 202 with an operation, or the JSON error body
`{code, message, more_info, status}` with 400, 404 or 413; never a 500, never non-JSON.
A refused body stores nothing.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from conftest import ID_RE, T0_WALL, Api, assert_error, phone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.emulator import SAMPLE_POOL_ID

DOCUMENTED_ERRORS = {400, 404, 413}
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTENT_ID = "HX" + "0123456789abcdef" * 2


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


# Any JSON at all

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Objects with the real top-level keys and random values under them.
shaped_objects = st.dictionaries(
    st.sampled_from(["from", "to", "content", "tags", "schedule"]), json_values, max_size=5
)

# Valid pieces

safe_text = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
variables = st.dictionaries(st.sampled_from(["first_name", "c", "row"]), safe_text, max_size=3)
recipient = st.fixed_dictionaries(
    {
        "address": st.integers(min_value=0, max_value=50).map(phone),
        "channel": st.sampled_from(["PHONE", "WHATSAPP", "phone", "whatsapp"]),
    },
    optional={"variables": variables},
)
senders = st.sampled_from(
    [
        {"senderPoolId": SAMPLE_POOL_ID},
        {"address": "+12065550101", "channel": "SMS"},
        {"address": "+14155550123", "channel": "whatsapp"},
        {"address": "acme_rcs_agent", "channel": "RCS"},
    ]
)
contents = st.sampled_from(
    [
        {"text": "Hi"},
        {"text": "Hi {{first_name}}!"},
        {"text": "Hi {{ first_name | default: 'there' }}"},
        {"text": "{% if c %}{{ c }}{% endif %} and more"},
        {"text": "Look", "media": ["https://example.com/a.png"]},
        {"contentId": CONTENT_ID},
    ]
)
tags = st.dictionaries(
    st.sampled_from(["campaign", "row", "k.1", "a-b_c~d"]),
    st.sampled_from(["spring-sale", "{{ c | default: 'none' }}", "a~b.c", "x{{row}}"]),
    max_size=4,
)
schedules = st.integers(min_value=-86_400, max_value=6 * 86_400).flatmap(
    lambda offset: st.sampled_from(
        [{"sendAt": _iso(T0_WALL + offset)}, {"sendAt": [_iso(T0_WALL + offset)]}]
    )
)
valid_bodies = st.fixed_dictionaries(
    {"from": senders, "to": st.lists(recipient, min_size=1, max_size=5), "content": contents},
    optional={"tags": tags, "schedule": schedules},
)


# Liquid that may parse yet fail, or render oddly, for some recipients' variables.
tricky_templates = st.sampled_from(
    [
        "{{ 10 | divided_by: n }}",
        "{{ 10 | modulo: n }}",
        "{% for i in (1..n) %}x{% endfor %}",
        "{{ n | times: 99999999999999999999 }}",
        "{{ n | date: '%Y' }}",
        "{{ n | split: '' | join: '-' }}",
        "{{ now }}",
        "{% include 'x' %}",
        "{% raw %}{{ n }}{% endraw %}",
        "{{ n | slice: 1, 100000000 }}",
        "{% assign m = n | plus: 1 %}{{ m }}",
    ]
)
tricky_values = st.sampled_from(["0", "1", "-1", "100000", "abc", "", "1.5", "2026-01-01"])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, as a path of keys and indexes."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _parent(body: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        body = body[part]
    return body


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> Any:
    """A valid body with exactly one thing broken: a value replaced, removed, added or garbled."""
    body = copy.deepcopy(draw(valid_bodies))
    paths = [p for p in _paths(body) if p]
    path = draw(st.sampled_from(paths))
    parent = _parent(body, path)
    key = path[-1]
    how = draw(st.sampled_from(["replace", "delete", "add_key", "garble", "wrap"]))
    if how == "replace":
        parent[key] = draw(json_values)
    elif how == "delete":
        del parent[key]
    elif how == "add_key":
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target[draw(st.text(max_size=10))] = draw(json_values)
        else:
            target.append(draw(json_values))
    elif how == "garble" and isinstance(parent[key], str):
        text = parent[key]
        at = draw(st.integers(min_value=0, max_value=len(text)))
        parent[key] = text[:at] + draw(st.text(min_size=1, max_size=3)) + text[at:]
    else:
        parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
    return body


async def _post_and_check(api: Api, body: bytes) -> int:
    """POST raw bytes to /Messages; assert the answer is documented and a refusal stores nothing."""
    before = (await api.stats())["recipients_accepted"]
    reply = await api.request("POST", "/Messages", data=body)
    after = (await api.stats())["recipients_accepted"]
    if reply.status == 202:
        assert reply.content_type == "application/json"
        assert set(reply.body) == {"operationId", "operationLocation"}
        assert ID_RE.match(reply.body["operationId"])
        assert reply.headers["Location"] == reply.body["operationLocation"]
        assert after > before
    else:
        assert reply.status in DOCUMENTED_ERRORS, (reply.status, reply.text, body[:500])
        assert_error(reply, reply.status)
        assert after == before
    return reply.status


@PROPERTY_SETTINGS
@given(body=json_values)
async def test_any_json_gets_a_documented_answer(api: Api, body: Any) -> None:
    """Any JSON value as a body gets 202 or a documented JSON error, never a 500."""
    status = await _post_and_check(api, orjson.dumps(body))
    assert status in DOCUMENTED_ERRORS


@PROPERTY_SETTINGS
@given(body=shaped_objects)
async def test_random_values_under_real_keys_get_a_documented_answer(
    api: Api, body: dict[str, Any]
) -> None:
    """Objects with the real keys but random values get only documented answers."""
    await _post_and_check(api, orjson.dumps(body))


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(body=near_valid_bodies())
async def test_near_valid_bodies_get_a_documented_answer(api: Api, body: Any) -> None:
    """A valid body with one thing broken gets 202 or a documented JSON error, never a 500."""
    await _post_and_check(api, orjson.dumps(body))


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(body=valid_bodies)
async def test_valid_bodies_are_accepted(api: Api, body: dict[str, Any]) -> None:
    """Every body built from valid pieces is accepted with 202 and stores each recipient."""
    before = (await api.stats())["recipients_accepted"]
    assert await _post_and_check(api, orjson.dumps(body)) == 202
    assert (await api.stats())["recipients_accepted"] == before + len(body["to"])


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(raw=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
async def test_arbitrary_bytes_are_400(api: Api, raw: bytes) -> None:
    """Bytes that are not a valid request body always get the documented 400."""
    assert await _post_and_check(api, raw) == 400


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(
    body=valid_bodies,
    template=tricky_templates,
    values=st.lists(tricky_values, min_size=1, max_size=5),
    in_tag=st.booleans(),
)
async def test_liquid_that_may_fail_to_render_gets_a_documented_answer(
    api: Api, body: dict[str, Any], template: str, values: list[str], in_tag: bool
) -> None:
    """Text or a tag whose Liquid fails for some recipients' variables gets 202 or a 400, never a 500."""
    body = copy.deepcopy(body)
    if in_tag:
        body["tags"] = {"campaign": template}
    else:
        body["content"] = {"text": template}
    for index, item in enumerate(body["to"]):
        item["variables"] = {"n": values[index % len(values)]}
    await _post_and_check(api, orjson.dumps(body))
