"""Plain Liquid outputs: the shape nearly every campaign template has, rendered cheaply.

A template made only of text and `{{ name }}` / `{{ name | default: 'literal' }}` outputs
renders as text parts joined around dict lookups, about 30 times faster than python-liquid
and with exactly its result (property tests on both users check that). Anything else is
left to python-liquid. Shared by the emulator (`campaign.emulator.rendering`) and the
sending side (`campaign.templating`); it depends on nothing but `re`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["Parts", "Slots", "render_plain", "split_plain"]

Parts = tuple[str, ...]
# (index into the parts, variable name, what renders when the value is missing or "").
Slots = tuple[tuple[int, str, str], ...]

# A fast-path output statement, anchored at a "{{". It mirrors python-liquid's lexer
# (liquid/lex.py) and expression tokenizer (liquid/builtin/expressions/_tokenize.py):
# - the lexer strips any ``\s`` (Unicode) whitespace just inside the braces, but the
#   expression tokenizer only skips ``[ \t\n\r]`` between tokens;
# - a ``-`` right inside the braces is whitespace control, so it is not accepted here;
# - a literal may not contain ``{`` or ``}``: the lexer ends the output at the first
#   ``}}`` even inside quotes, and excluding both braces keeps that reasoning trivial.
# Names are ASCII identifiers; the trailing part of the pattern guarantees the name is
# a whole token (``x-y``, ``x?`` and ``x.y`` fail to match and fall back).
_PLAIN_OUTPUT: Final = re.compile(
    r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:[ \t\n\r]*\|[ \t\n\r]*default[ \t\n\r]*:[ \t\n\r]*"
    r"""(?:'(?P<single>[^'{}]*)'|"(?P<double>[^"{}]*)"))?"""
    r"\s*\}\}"
)

# Names the fast path must not handle (see the module docstring): python-liquid's
# expression keywords, which are literals or syntax errors rather than variables, and
# names python-liquid resolves itself.
_NOT_PLAIN_NAMES: Final = frozenset(
    {
        # liquid/builtin/expressions/_tokenize.py `_keywords`
        "true",
        "false",
        "nil",
        "null",
        "empty",
        "blank",
        "and",
        "or",
        "contains",
        "not",
        "in",
        "offset",
        "limit",
        "reversed",
        "cols",
        "continue",
        "with",
        "for",
        "as",
        "if",
        "else",
        "required",
        # liquid/context.py `BuiltIn` and BoundTemplate.make_partial_namespace
        "now",
        "today",
        "partial",
    }
)


def split_plain(source: str) -> tuple[Parts, Slots] | None:
    """Split a plain-outputs template into text parts and slots, or None for python-liquid."""
    if "{%" in source:
        return None
    parts: list[str] = []
    slots: list[tuple[int, str, str]] = []
    position = 0
    while (start := source.find("{{", position)) >= 0:
        # python-liquid's lexer also starts an output at the first "{{" after text, so
        # anchoring the match there tokenizes exactly as it does.
        match = _PLAIN_OUTPUT.match(source, start)
        if match is None or match["name"] in _NOT_PLAIN_NAMES:
            return None
        if start > position:
            parts.append(source[position:start])
        fallback = match["single"] if match["single"] is not None else match["double"]
        slots.append((len(parts), match["name"], fallback or ""))
        parts.append("")
        position = match.end()
    if position < len(source):
        parts.append(source[position:])
    return tuple(parts), tuple(slots)


def render_plain(parts: Parts, slots: Slots, variables: Mapping[str, str]) -> str:
    """One recipient's text from a split template; undefined variables render as ""."""
    if len(slots) == 1 and len(parts) <= 3:
        # The commonest shapes ("{{ row }}", "Hi {{ name }}, ..."): no list to build.
        index, name, fallback = slots[0]
        value = variables.get(name) or fallback
        if len(parts) == 1:
            return value
        if index == 0:
            return value + parts[1]
        return parts[0] + value + parts[2] if len(parts) == 3 else parts[0] + value
    filled = list(parts)
    get = variables.get
    for index, name, fallback in slots:
        # A plain output has fallback "", so missing and "" both render as "", exactly like
        # Liquid; for `default` the fallback is its literal.
        filled[index] = get(name) or fallback
    return "".join(filled)
