"""Per-recipient Liquid rendering for the emulator's ``POST /Messages``.

The API renders ``content.text`` and every ``tags`` value as a Liquid template with each
recipient's ``variables`` (a ``str -> str`` mapping). The emulator has to sustain about
200,000 recipients per second on one core, which leaves roughly 1 µs per render, while
python-liquid's ``BoundTemplate.render`` costs 15-20 µs. Nearly every real campaign
template is plain text with ``{{ name }}`` or ``{{ name | default: 'x' }}`` outputs, so
those are compiled into a list of text parts and dict lookups; everything else is parsed
once by python-liquid and rendered by it.

Semantics are those of python-liquid 2's default environment, checked by a property
test against python-liquid itself:

* An undefined variable renders as the empty string (lenient ``Undefined``).
* Output is not HTML-escaped (``autoescape`` is off by default).
* ``default`` replaces nil, false and empty values; with string variables that means a
  missing key or ``""``. A whitespace-only value is not empty and is kept.
* String literals have no escape sequences: ``'a\\nb'`` is a backslash and an ``n``.
* Names python-liquid resolves specially are left to python-liquid: ``now`` and
  ``today`` (a datetime/date when not supplied), ``partial`` (always ``false`` at the
  top level, because python-liquid pushes ``{"partial": False}`` above the render
  arguments), and expression keywords (``nil``, ``empty``, ``with``, ...).

The only deliberate difference is resource limits on the python-liquid path (loop
iterations, local namespace and output size), so that one hostile or buggy template
such as ``{% for i in (1..999999999) %}`` cannot stall the whole emulator. Exceeding
them raises ``TemplateError`` like any other render failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, Final

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError, TemplateNotFoundError

from campaign.liquid_plain import render_plain, split_plain

__all__ = ["CompiledTemplate", "TemplateError", "compile_template"]


class TemplateError(Exception):
    """A template that does not parse, or (python-liquid path only) fails to render.

    ``line`` and ``column`` are 1-based and ``None`` when python-liquid gives no
    position.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


class _EmulatorEnvironment(Environment):
    """python-liquid's default environment plus limits against runaway templates.

    The limits are far above anything a message body needs (Twilio caps a body at 1,600
    characters), so they never change the output of a template that could be sent.
    """

    loop_iteration_limit: ClassVar[int | None] = 10_000
    local_namespace_limit: ClassVar[int | None] = 1_000_000
    output_stream_limit: ClassVar[int | None] = 1_000_000


_ENVIRONMENT: Final = _EmulatorEnvironment()

# Filters whose output depends on something other than the variables: ``date`` reads
# the clock for "now"/"today". A template using one is never treated as constant.
_IMPURE_FILTERS: Final = frozenset({"date"})

_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template ready to render once per recipient.

    Exactly one rendering strategy is set: ``_constant`` (the output, for templates
    without variables), ``_parts``/``_slots`` (fast path) or ``_liquid``.
    """

    source: str
    is_constant: bool
    # Text parts with placeholders at the slot indexes; copied and filled per render.
    _parts: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # (index into _parts, variable name, replacement when the value is missing or "").
    _slots: tuple[tuple[int, str, str], ...] = field(default=(), repr=False, compare=False)
    _liquid: BoundTemplate | None = field(default=None, repr=False, compare=False)
    _constant: str | None = field(default=None, repr=False, compare=False)

    def render(self, variables: Mapping[str, str]) -> str:
        """Render for one recipient; unknown variables render as ""."""
        if self._constant is not None:
            return self._constant
        if self._liquid is not None:
            return _render_liquid(self._liquid, variables)
        return render_plain(self._parts, self._slots, variables)

    def render_all(self, variables: Sequence[Mapping[str, str]]) -> list[str]:
        """Render for many recipients at once: the common shapes run as comprehensions."""
        if self._constant is not None:
            return [self._constant] * len(variables)
        slots, parts = self._slots, self._parts
        if self._liquid is None and len(slots) == 1:
            index, name, fallback = slots[0]
            if len(parts) == 1:
                return [v.get(name) or fallback for v in variables]
            if len(parts) == 3 and index == 1:
                before, after = parts[0], parts[2]
                return [before + (v.get(name) or fallback) + after for v in variables]
        render = self.render
        return [render(v) for v in variables]


@lru_cache(maxsize=_CACHE_SIZE)
def compile_template(source: str) -> CompiledTemplate:
    """Compile ``source`` once; raises TemplateError if it is not valid Liquid.

    Cached because a campaign sends the same few templates for every recipient.
    """
    fast = split_plain(source)
    if fast is not None:
        parts, slots = fast
        if not slots:
            return CompiledTemplate(source, is_constant=True, _constant="".join(parts))
        return CompiledTemplate(source, is_constant=False, _parts=parts, _slots=slots)

    try:
        template = _ENVIRONMENT.from_string(source)
    except LiquidError as err:
        raise _template_error("invalid template", err) from err
    if _is_constant(template):
        # Render now so a constant template costs nothing per recipient, and so that
        # its render errors (e.g. an {% include %} of an unknown template) surface at
        # compile time.
        return CompiledTemplate(source, is_constant=True, _constant=_render_liquid(template, {}))
    return CompiledTemplate(source, is_constant=False, _liquid=template)


def _is_constant(template: BoundTemplate) -> bool:
    """Whether python-liquid output cannot depend on the variables or the clock."""
    try:
        # include_partials=False: the emulator has no partials to load, and an
        # {% include %} fails at render time anyway.
        if template.global_variables(include_partials=False):
            return False
        return not _IMPURE_FILTERS.intersection(template.filter_names(include_partials=False))
    except LiquidError:
        return False


def _render_liquid(template: BoundTemplate, variables: Mapping[str, str]) -> str:
    try:
        # Passed positionally, not as **variables, so names like "self" cannot collide
        # with BoundTemplate.render's own parameters.
        return template.render(variables)
    except LiquidError as err:
        raise _template_error("template failed to render", err) from err


def _template_error(what: str, err: LiquidError) -> TemplateError:
    """A one-line TemplateError from python-liquid's multi-line diagnostic."""
    message = err.message if err.message is not None else type(err).__name__
    if isinstance(err, TemplateNotFoundError):
        # Its message is only the template name; the emulator has no partials to load.
        message = f"template not found: {message!r}"
    try:
        context = err.context()
    except ValueError:  # python-liquid's token index can fall outside the source
        context = None
    if context is None:
        return TemplateError(f"{what}: {message}")
    line, column = context[0], context[1] + 1
    return TemplateError(
        f"{what} at line {line}, column {column}: {message}", line=line, column=column
    )
