"""The message template: required variables, renders identical to python-liquid, segments."""

from __future__ import annotations

import liquid
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liquid.exceptions import LiquidError

from campaign.exceptions import CampaignError, TemplateError
from campaign.templating import ROW_TAG_TEMPLATE, ROW_VARIABLE, MessageTemplate


def reference(source: str, variables: dict[str, str]) -> str:
    """python-liquid 2's own render with its default environment: what the API does."""
    return liquid.parse(source).render(variables)


@pytest.mark.parametrize(
    ("source", "required", "used"),
    [
        ("Reply STOP to opt out.", set(), set()),
        ("Hi {{ name }}!", {"name"}, {"name"}),
        ("Hi {{name}}, {{ name }}", {"name"}, {"name"}),
        ("Hi {{ name | default: 'there' }}", set(), {"name"}),
        ('Hi {{ name | default: "there" }}', set(), {"name"}),
        ("Hi {{ name | default }}", set(), {"name"}),
        ("{{ name | upcase }}", {"name"}, {"name"}),
        ("{{ name | default: 'x' | upcase }}", set(), {"name"}),
        ("{{ name | upcase | default: 'x' }}", set(), {"name"}),
        ("{{ name | default: 'x' }} {{ name }}", {"name"}, {"name"}),
        ("{{ greeting | default: name }}", {"name"}, {"greeting", "name"}),
        ("{{ a | append: b | default: 'z' }}", {"b"}, {"a", "b"}),
        ("{% if vip %}VIP{% endif %}", set(), {"vip"}),
        ("{% if vip %}Code {{ code }}{% endif %}", {"code"}, {"vip", "code"}),
        ("{% if name %}Hi {{ name }}{% endif %}", {"name"}, {"name"}),
        ("{% if a == 'x' %}1{% elsif b > 2 %}2{% else %}3{% endif %}", set(), {"a", "b"}),
        ("{% unless opted %}hi{% endunless %}", set(), {"opted"}),
        (
            "{% case lang %}{% when 'es', other %}Hola{% else %}Hi{% endcase %}",
            set(),
            {"lang", "other"},
        ),
        ("{% assign g = name %}{{ g }}", {"name"}, {"name"}),
        ("{% assign g = name | default: 'x' %}{{ g }}", set(), {"name"}),
        ("{% capture c %}{{ name }}{% endcapture %}{{ c }}", {"name"}, {"name"}),
        ("{% for x in items %}{{ x }}{{ forloop.index }}{% endfor %}", {"items"}, {"items"}),
        ("{% liquid\nif vip\n  echo code\nendif %}", {"code"}, {"vip", "code"}),
        ("{% liquid\necho code | default: 'none' %}", set(), {"code"}),
        ("{{ ['first name'] }}", {"first name"}, {"first name"}),
        ("{{ user.name }}", {"user"}, {"user"}),
        ("{{ a[b] | default: 'x' }}", set(), {"a", "b"}),
        ("{{ a[b] }}", {"a", "b"}, {"a", "b"}),
        ("{{ now | date: '%Y' }} {{ today }}", set(), {"now", "today"}),
        ("{{ _row }}", {"_row"}, {"_row"}),
        ("{% raw %}{{ name }}{% endraw %}", set(), set()),
        ("{% comment %}{{ name }}{% endcomment %}", set(), set()),
    ],
)
def test_required_and_used_variables(source: str, required: set[str], used: set[str]) -> None:
    """Required = used somewhere outside a test and without a default filter covering it."""
    template = MessageTemplate(source)
    assert template.required_variables == required
    assert template.variables == used


@pytest.mark.parametrize(
    ("row", "missing"),
    [
        ({"first": "Ada", "code": "X1"}, []),
        ({"first": "Ada"}, ["code"]),
        ({"code": "X1"}, ["first"]),
        ({}, ["first", "code"]),
        ({"first": "", "code": "X1"}, ["first"]),
        ({"first": " ", "code": "X1"}, []),
    ],
)
def test_missing_lists_absent_or_empty_required_variables_in_template_order(
    row: dict[str, str], missing: list[str]
) -> None:
    """An empty value is missing too: it is what `default` treats as empty, and all a CSV has."""
    template = MessageTemplate("Hi {{ first }}, use {{ code }} by {{ day | default: 'Friday' }}")
    assert template.missing(row) == missing


@pytest.mark.parametrize(
    ("source", "row", "missing"),
    [
        ("No variables at all.", {}, []),
        ("Hi {{ name | default: 'there' }}", {}, []),
        ("Hi {{ name }}", {}, ["name"]),
        ("Hi {{ name }}", {"name": "Ada"}, []),
    ],
)
def test_missing_for_the_common_shapes(
    source: str, row: dict[str, str], missing: list[str]
) -> None:
    """Templates with zero or one required variable take the short paths."""
    assert MessageTemplate(source).missing(row) == missing


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("Hi {{ name }}!", {"name": "Ada"}, "Hi Ada!"),
        ("Hi {{ name }}!", {}, "Hi !"),
        ("{{ name | default: 'there' }}", {"name": ""}, "there"),
        ("{{ name | default: 'there' }}", {"name": " "}, " "),
        ("{{ a }}-{{ b }}-{{ a }}", {"a": "1", "b": "2"}, "1-2-1"),
        ("{{ name }}", {"name": "<b>&"}, "<b>&"),
        ("{{ name | upcase }}", {"name": "ada"}, "ADA"),
        ("{% if vip %}VIP {% endif %}hi", {"vip": "yes"}, "VIP hi"),
        ("{{ partial }}|{{ nil }}|{{ true }}", {"partial": "p"}, "false||true"),
        (ROW_TAG_TEMPLATE, {ROW_VARIABLE: "42"}, "42"),
    ],
)
def test_render_matches_python_liquid(
    source: str, variables: dict[str, str], expected: str
) -> None:
    """Lenient undefined, no escaping, `default` on "" but not on whitespace, built-ins."""
    assert MessageTemplate(source).render(variables) == expected == reference(source, variables)


@pytest.mark.parametrize(
    ("source", "fast"),
    [
        ("Reply STOP", True),
        ("Hi {{ name }}, {{ code | default: 'none' }}.", True),
        ("{{ now }}", False),
        ("{{ name | upcase }}", False),
        ("{% if a %}x{% endif %}", False),
        ("{{- name }}", False),
    ],
)
def test_common_shapes_render_without_python_liquid(source: str, fast: bool) -> None:
    """Plain outputs and `default` literals are joined directly; the rest goes to python-liquid."""
    assert (MessageTemplate(source)._liquid is None) == fast


NAMES = ["name", "first_name", "_row", "self", "empty", "nil", "true", "partial", "x1"]
FORMS = [
    "{{{{ {} }}}}",
    "{{{{{}}}}}",
    "{{{{ {} | default: 'd' }}}}",
    '{{{{ {}|default:"q d" }}}}',
    "{{{{ {} | default: '' }}}}",
    "{{{{ {} | upcase }}}}",
    "{{{{ {} | default: 'x' | downcase }}}}",
    "{{{{- {} -}}}}",
    "{{% if {} %}}Y{{% else %}}N{{% endif %}}",
    "{{{{ {} | size }}}}",
]
PIECES = st.one_of(
    st.text(alphabet="ab {}%|-'\"\n€😀:", max_size=6),
    st.builds(str.format, st.sampled_from(FORMS), st.sampled_from(NAMES)),
)
VALUES = st.text(alphabet="aZ 0€😀-", max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=5),
    variables=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
)
def test_render_parity_with_python_liquid(pieces: list[str], variables: dict[str, str]) -> None:
    """Any mix of text, outputs, defaults, filters and ifs renders exactly as python-liquid does."""
    source = "".join(pieces)
    try:
        expected = reference(source, variables)
    except LiquidError:
        with pytest.raises(TemplateError):
            MessageTemplate(source).render(variables)
        return
    assert MessageTemplate(source).render(variables) == expected


@settings(max_examples=100, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=5),
    variables=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
)
def test_rows_missing_nothing_never_render_a_required_variable_as_empty(
    pieces: list[str], variables: dict[str, str]
) -> None:
    """If `missing` is empty, every required variable has a non-empty value in the row."""
    try:
        template = MessageTemplate("".join(pieces))
    except TemplateError:
        return
    if not template.missing(variables):
        assert all(variables.get(name) for name in template.required_variables)
    assert set(template.missing(variables)) <= template.required_variables


@pytest.mark.parametrize(
    ("source", "variables", "encoding", "units", "segments"),
    [
        ("{{ x }}", {"x": "a" * 160}, "GSM-7", 160, 1),
        ("{{ x }}", {"x": "a" * 161}, "GSM-7", 161, 2),
        ("Hi {{ x }}", {"x": ""}, "GSM-7", 3, 1),
        ("{{ x }}", {"x": "€" * 80}, "GSM-7", 160, 1),
        ("{{ x }}", {"x": "€" * 81}, "GSM-7", 162, 2),
        ("Code: {{ x }}", {"x": "[A]{B}"}, "GSM-7", 16, 1),
        ("Hi {{ name }}", {"name": "Zoë"}, "UCS-2", 6, 1),
        ("Hi {{ name }}", {"name": "Ada 😀"}, "UCS-2", 9, 1),
        ("{{ x }}😀", {"x": "a" * 68}, "UCS-2", 70, 1),
        ("{{ x }}😀", {"x": "a" * 69}, "UCS-2", 71, 2),
        ("{{ x | default: 'friend' }}", {}, "GSM-7", 6, 1),
    ],
)
def test_segments_count_the_rendered_text(
    source: str, variables: dict[str, str], encoding: str, units: int, segments: int
) -> None:
    """GSM-7 extension characters cost two; one emoji or non-GSM letter makes it all UCS-2."""
    count = MessageTemplate(source).segments(variables)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


@pytest.mark.parametrize(
    ("source", "words", "line", "column"),
    [
        ("Hi {{ name ", "not valid Liquid", 1, 4),
        ("Hi {% nosuch %}", "unexpected tag 'nosuch'", 1, 7),
        ("a\nb {{ x | shout }}", "unknown filter 'shout'", 2, 10),
        ("{{ x | upcase: 1 }}", "filter 'upcase' cannot take these arguments", 1, 8),
        ("{{ x | default: 'a', 'b' }}", "filter 'default' cannot take these arguments", 1, 8),
        (
            "{{ x | default: 'a', nope: true }}",
            "filter 'default' cannot take these arguments",
            1,
            8,
        ),
        ("{% include 'footer' %}", "{% include %} is not supported", 1, 4),
        ("x\n{% render 'footer' %}", "{% render %} is not supported", 2, 4),
    ],
)
def test_templates_the_api_cannot_render_are_refused_with_a_position(
    source: str, words: str, line: int, column: int
) -> None:
    """Syntax errors, unknown filters, wrong arities and partials fail at compile time."""
    with pytest.raises(TemplateError) as caught:
        MessageTemplate(source)
    assert words in str(caught.value)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert str(caught.value).endswith(f" at line {line}, column {column}")


def test_an_unclosed_block_has_no_position() -> None:
    """python-liquid reports an unclosed `if` at the end, without a position."""
    with pytest.raises(TemplateError, match="endif") as caught:
        MessageTemplate("{% if x %}hi")
    assert caught.value.line is None


def test_a_data_dependent_failure_surfaces_when_rendering() -> None:
    """Only rendering can find `divided_by: 0` coming from a row."""
    template = MessageTemplate("{{ 10 | divided_by: n }}")
    assert template.render({"n": "2"}) == reference("{{ 10 | divided_by: n }}", {"n": "2"})
    with pytest.raises(TemplateError, match="template failed to render"):
        template.render({"n": "0"})


def test_a_runaway_loop_is_stopped() -> None:
    """A huge loop in a preview fails fast instead of hanging."""
    template = MessageTemplate("{% for i in (1..100000000) %}x{% endfor %}")
    with pytest.raises(TemplateError, match="loop"):
        template.render({})


def test_template_errors_are_campaign_errors() -> None:
    """The CLI catches a bad template like every other CampaignError."""
    assert TemplateError.__bases__ == (CampaignError,)


def test_the_row_tag_renders_the_row_variable() -> None:
    """The sender's `row` tag is a template over the variable it adds per recipient."""
    template = MessageTemplate(ROW_TAG_TEMPLATE)
    assert template.required_variables == {ROW_VARIABLE}
    assert template.render({ROW_VARIABLE: "1234"}) == "1234"
