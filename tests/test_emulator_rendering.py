"""Tests for campaign.emulator.rendering: fast path, python-liquid fallback, errors."""

from __future__ import annotations

from types import MappingProxyType

import liquid
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liquid.exceptions import LiquidError

from campaign.emulator.rendering import CompiledTemplate, TemplateError, compile_template


def uses_liquid(compiled: CompiledTemplate) -> bool:
    """Whether a template renders through python-liquid (the whole point of the fast path
    is that common shapes do not, so the tests check which path was taken)."""
    return compiled._liquid is not None


def liquid_render(source: str, variables: dict[str, str]) -> str:
    """python-liquid 2's own result with its default environment, the reference."""
    return liquid.parse(source).render(variables)


FAST_CASES = [
    ("Hi {{ name }}!", {"name": "Ann"}, "Hi Ann!"),
    ("{{name}}", {"name": "Ann"}, "Ann"),
    ("{{\n  name\t}}", {"name": "Ann"}, "Ann"),
    ("{{\u3000name\u00a0}}", {"name": "Ann"}, "Ann"),
    ("Hi {{ name }}!", {}, "Hi !"),
    ("Hi {{ name }}!", {"name": ""}, "Hi !"),
    ("{{ name | default: 'friend' }}", {}, "friend"),
    ("{{ name | default: 'friend' }}", {"name": ""}, "friend"),
    ("{{ name | default: 'friend' }}", {"name": "Ann"}, "Ann"),
    ("{{ name | default: 'friend' }}", {"name": " "}, " "),
    ("{{ name | default: 'friend' }}", {"name": "false"}, "false"),
    ('{{name|default:"it\'s you"}}', {}, "it's you"),
    ("{{ name\n|\tdefault\r:\n'x' }}", {}, "x"),
    ("{{ name | default: '' }}", {}, ""),
    ("{{ name | default: 'a\\nb' }}", {}, "a\\nb"),
    ("{{ name | default: '100% -%' }}", {}, "100% -%"),
    (
        "{{ _row }}/{{ class }}/{{ self }}/{{ first }}",
        {"_row": "1", "class": "2", "self": "3"},
        "1/2/3/",
    ),
    ("{{ a }}{{ b }}", {"a": "1", "b": "2"}, "12"),
    ("{{ a }}}", {"a": "1"}, "1}"),
    ("{ {{ a }} } }} %} %", {"a": "1"}, "{ 1 } }} %} %"),
    ("{{ html }}", {"html": "<b>&amp;</b>"}, "<b>&amp;</b>"),
    ("{{ a }}", {"a": "{{ b }}", "b": "no"}, "{{ b }}"),
    ("Zoë 😀 {{ a }}", {"a": "é"}, "Zoë 😀 é"),
]


@pytest.mark.parametrize(("source", "variables", "expected"), FAST_CASES)
def test_fast_path_renders_like_liquid(
    source: str, variables: dict[str, str], expected: str
) -> None:
    """Simple and default outputs render on the fast path, exactly as python-liquid does."""
    compiled = compile_template(source)
    assert not uses_liquid(compiled)
    assert not compiled.is_constant
    assert compiled.render(variables) == expected
    assert liquid_render(source, variables) == expected


FALLBACK_CASES = [
    ("{{ name | upcase }}", {"name": "ann"}, "ANN"),
    ("{{ name | default: 'a' | upcase }}", {}, "A"),
    ("{{ name | default: 'a', allow_false: true }}", {}, "a"),
    ("{% if vip %}VIP {% endif %}{{ name }}", {"vip": "y", "name": "Ann"}, "VIP Ann"),
    ("{% unless vip %}hi{% endunless %}", {}, "hi"),
    ("{% for c in (1..3) %}{{ c }}{{ sep }}{% endfor %}", {"sep": ","}, "1,2,3,"),
    ("{{ name.size }}", {"name": "Ann"}, "3"),
    ("{{ user.name }}", {"user": "Ann"}, ""),
    ("{{ user['name'] }}", {}, ""),
    ("a  {{- name }}", {"name": "Ann"}, "aAnn"),
    ("{{ name -}}  b", {"name": "Ann"}, "Annb"),
    ("{% raw %}{{ name }}{% endraw %}{{ name }}", {"name": "Ann"}, "{{ name }}Ann"),
    ("{{ nil }}{{ empty }}{{ true }}", {"nil": "x", "true": "y"}, "true"),
    ("{{ 'lit' }}{{ name }}", {"name": "Ann"}, "litAnn"),
    ("{{ name | default: '}' }}", {}, "}"),
    ("{{ name | default: '{%' }}", {}, "{%"),
    ("{{ zoë }}", {"zoë": "Z"}, "Z"),
    ("{{ first-name }}", {"first-name": "Ann"}, "Ann"),
    # python-liquid puts {"partial": False} above the render arguments.
    ("{{ partial }}", {"partial": "p"}, "false"),
]


@pytest.mark.parametrize(("source", "variables", "expected"), FALLBACK_CASES)
def test_fallback_renders_like_liquid(
    source: str, variables: dict[str, str], expected: str
) -> None:
    """Tags, other filters, paths and whitespace control go through python-liquid."""
    compiled = compile_template(source)
    assert uses_liquid(compiled) or compiled.is_constant
    assert compiled.render(variables) == expected
    assert liquid_render(source, variables) == expected


def test_fallback_accepts_any_mapping_and_python_keyword_names() -> None:
    """python-liquid gets the variables positionally, so 'self' or '_row' are fine."""
    compiled = compile_template("{{ self | upcase }}{{ _row }}{{ def }}")
    assert uses_liquid(compiled)
    variables = MappingProxyType({"self": "s", "_row": "r", "def": "d"})
    assert compiled.render(variables) == "Srd"


def test_fast_path_accepts_any_mapping() -> None:
    """The fast path only needs Mapping.get."""
    assert compile_template("{{ a }}").render(MappingProxyType({"a": "1"})) == "1"


def test_now_and_today_are_variables_when_given() -> None:
    """'now' and 'today' are python-liquid built-ins only when the recipient lacks them."""
    compiled = compile_template("{{ now }}|{{ today }}")
    assert not compiled.is_constant
    assert compiled.render({"now": "N", "today": "T"}) == "N|T"
    now, today = compiled.render({}).split("|")
    assert now.startswith(today)


@pytest.mark.parametrize(
    ("source", "constant"),
    [
        ("", True),
        ("Reply STOP to opt out. 100% { }", True),
        ("{{ 'a' | upcase }}", True),
        ("{% assign a = 'x' %}{{ a }}", True),
        ("{% for c in (1..2) %}{{ forloop.index }}{% endfor %}", True),
        ("Hi {{ name }}", False),
        ("{{ name | upcase }}", False),
        ("{% if vip %}x{% endif %}", False),
        ("{{ now }}", False),
        ("{{ 'now' | date: '%Y' }}", False),
    ],
)
def test_is_constant(source: str, constant: bool) -> None:
    """Only templates whose output cannot depend on variables or the clock are constant."""
    assert compile_template(source).is_constant is constant


def test_constant_template_renders_once() -> None:
    """A constant template returns the same cached string for every recipient."""
    compiled = compile_template("{{ 'hello' | upcase }} world")
    first = compiled.render({"a": "1"})
    assert first == "HELLO world"
    assert compiled.render({"b": "2"}) is first


def test_compile_is_cached() -> None:
    """Compiling the same source twice returns the same object."""
    assert compile_template("Hi {{ cached }}") is compile_template("Hi {{ cached }}")


@pytest.mark.parametrize(
    ("source", "fragment", "line"),
    [
        ("Hi {{ name", "expected '}}'", 1),
        ("Hi {{ name }", "expected '}}'", 1),
        ("{%", "missing tag name", 1),
        ("{% if %}x{% endif %}", "missing expression", 1),
        ("x\n{% endif %}", "endif", 2),
        ("{{ with }}", "with", 1),
        ("{{ a | default 'x' }}", "expected end of expression", 1),
        ("{{ a | default: 'it\\'s' }}", "unexpected", 1),
        ("{{{ a }}", "unexpected '{'", 1),
    ],
)
def test_syntax_errors_raise_template_error(source: str, fragment: str, line: int) -> None:
    """Unparsable templates raise a one-line TemplateError naming the problem and line."""
    with pytest.raises(TemplateError, match="invalid template at line") as excinfo:
        compile_template(source)
    assert fragment in str(excinfo.value)
    assert excinfo.value.line == line
    assert excinfo.value.column is not None
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{% if a %}x", "expected tag endif"),
        ("{{ }}", "expected a primitive expression"),
        ("line one\nline {{ a | }}", "expected word"),
    ],
)
def test_syntax_errors_without_position(source: str, fragment: str) -> None:
    """python-liquid gives no position for errors at the end of an expression."""
    with pytest.raises(TemplateError, match="invalid template: ") as excinfo:
        compile_template(source)
    assert fragment in str(excinfo.value)
    assert excinfo.value.line is None


def test_syntax_error_column_is_one_based() -> None:
    """The column points at the offending token, counting from 1."""
    with pytest.raises(TemplateError) as excinfo:
        compile_template("ab\ncd {{ with }}")
    assert (excinfo.value.line, excinfo.value.column) == (2, 7)


@pytest.mark.parametrize(
    ("source", "variables", "fragment"),
    [
        ("{{ a | divided_by: b }}", {"a": "1", "b": "0"}, "divide by 0"),
        ("{{ a | no_such_filter }}", {"a": "1"}, "unknown filter 'no_such_filter'"),
        ("{% for i in (1..99999999) %}{{ a }}{% endfor %}", {"a": "1"}, "loop iteration limit"),
    ],
)
def test_render_errors_raise_template_error(
    source: str, variables: dict[str, str], fragment: str
) -> None:
    """Render-time failures on the python-liquid path also raise TemplateError."""
    compiled = compile_template(source)
    with pytest.raises(TemplateError, match="template failed to render") as excinfo:
        compiled.render(variables)
    assert fragment in str(excinfo.value)


def test_constant_render_error_surfaces_at_compile() -> None:
    """A constant template that cannot render fails when compiled, not per recipient."""
    with pytest.raises(TemplateError, match="template not found: 'footer'"):
        compile_template("{% include 'footer' %}")


# Property test: random templates built from tricky text and fast-path-shaped outputs
# must render exactly as python-liquid renders them (or both must fail).

NAMES = ["name", "code", "_row", "class", "self", "first", "nil", "empty", "with", "partial"]
WHITESPACE = st.sampled_from(["", " ", "  ", "\n", "\t", "\r\n", "\u3000"])
TEXT = st.one_of(
    st.sampled_from(["Hi ", "{", "}", "%", "-", "{ ", " }", "%}", "'", '"', "|", "\n", "😀"]),
    st.text(alphabet="ab {}%-|'\"\n", max_size=6),
)
LITERAL = st.text(alphabet="ab -%|:\\\n{}'\"é", max_size=5)


@st.composite
def simple_output(draw: st.DrawFn) -> str:
    """`{{ name }}` with random inner whitespace."""
    return "{{" + draw(WHITESPACE) + draw(st.sampled_from(NAMES)) + draw(WHITESPACE) + "}}"


@st.composite
def default_output(draw: st.DrawFn) -> str:
    """`{{ name | default: 'literal' }}` with random quotes and whitespace."""
    quote = draw(st.sampled_from(["'", '"']))
    ws = [draw(WHITESPACE) for _ in range(6)]
    name = draw(st.sampled_from(NAMES))
    literal = quote + draw(LITERAL) + quote
    return f"{{{{{ws[0]}{name}{ws[1]}|{ws[2]}default{ws[3]}:{ws[4]}{literal}{ws[5]}}}}}"


TEMPLATES = st.lists(st.one_of(TEXT, simple_output(), default_output()), max_size=8).map("".join)
VARIABLES = st.dictionaries(
    st.sampled_from(NAMES),
    st.sampled_from(["", " ", "Ann", "<b>&", "{{ code }}", "false", "nil"]),
    max_size=len(NAMES),
)


@settings(max_examples=400, deadline=None)
@given(source=TEMPLATES, variables=VARIABLES)
def test_matches_python_liquid(source: str, variables: dict[str, str]) -> None:
    """compile_template(src).render(v) equals python-liquid's render, errors included."""
    try:
        expected = liquid_render(source, variables)
    except LiquidError:
        with pytest.raises(TemplateError):
            compile_template(source).render(variables)
        return
    assert compile_template(source).render(variables) == expected
