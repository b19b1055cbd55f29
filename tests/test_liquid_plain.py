"""campaign.liquid_plain: which templates take the plain path, and what they render."""

from __future__ import annotations

import pytest

from campaign.liquid_plain import render_plain, split_plain


@pytest.mark.parametrize(
    "source",
    [
        "{% if x %}y{% endif %}",
        "{{ name | upcase }}",
        "{{ a.b }}",
        "{{- name }}",
        "{{ true }}",
        "{{ now }}",
        "{{ name | default: '{x}' }}",
        "unclosed {{ name",
    ],
)
def test_anything_but_plain_outputs_is_left_to_liquid(source: str) -> None:
    """Tags, other filters, paths, whitespace control, keywords and built-ins are not plain."""
    assert split_plain(source) is None


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("{{_row}}", {"_row": "7"}, "7"),
        ("{{ name }}!", {"name": "Ada"}, "Ada!"),
        ("Hi {{ name }}", {}, "Hi "),
        ("Hi {{ name | default: 'there' }}, bye", {"name": ""}, "Hi there, bye"),
        ('{{ a }}-{{ b | default: "z" }}-{{ c }}', {"a": "1", "c": "3"}, "1-z-3"),
        ("no outputs at all", {"x": "1"}, "no outputs at all"),
    ],
)
def test_plain_templates_render_like_liquid(
    source: str, variables: dict[str, str], expected: str
) -> None:
    """Missing and empty values render as "" or the default's literal; text is kept as is."""
    split = split_plain(source)
    assert split is not None
    assert render_plain(*split, variables) == expected
