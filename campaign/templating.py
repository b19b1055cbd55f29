"""The campaign's message template: which variables it needs, local renders, SMS segments.

The API renders ``content.text`` as Liquid per recipient with python-liquid 2's default
environment (lenient undefined: a missing variable renders as ""; no HTML escaping), so the
sending side uses the same engine for what it must know before anything is sent:

* ``variables``: every variable the template reads from the outside (python-liquid's own
  static analysis, ``BoundTemplate.analyze``: its ``globals``, so names bound by
  ``assign``/``capture``/``for`` are not counted).
* ``required_variables``: the variables a row must carry (non-empty) for the message to
  read right. Conservative: a variable is required if *any* use of it is neither covered
  by a ``default`` filter in the same output/assign chain (``{{ name | default: 'x' }}``,
  ``{{ name | upcase | default: 'x' }}``) nor a test (``{% if name %}``, ``elsif``,
  ``unless``, ``case``/``when``). ``now``, ``today`` and ``partial`` are filled in by
  python-liquid itself, so they are never required.
* ``missing(row)``: the required variables a row lacks or has as "" (what Liquid's
  ``default`` treats as empty, and the only way a CSV cell can be absent), in template
  order. A closure over the precomputed names: 0.1-0.4 µs a row on the dev machine.
* ``render(variables)``: the text one recipient will read. Plain text with ``{{ name }}`` /
  ``{{ name | default: '...' }}`` outputs is rendered by joining parts (~0.5 µs); anything
  else by python-liquid (15-20 µs). Property tests check both against python-liquid.
* ``segments(variables)``: ``campaign.segments.count_segments`` of that rendered text.

Stricter than the API at compile time, because the API only finds these when it renders,
i.e. it rejects the whole batch with a 400 for every recipient: an unknown filter, a
filter given the wrong number of arguments, and ``{% include %}``/``{% render %}`` (the API
has no other templates to load) are a ``TemplateError`` here. Errors that depend on the
data (``{{ n | divided_by: d }}`` with ``d`` = "0") can only surface in ``render``.

Tags: the sender tags every recipient with ``campaign`` (the campaign name, a literal)
and ``row`` = ``ROW_TAG_TEMPLATE``, which the API renders from the per-recipient variable
``ROW_VARIABLE`` that the sender adds to each recipient's ``variables`` (it overrides a
column of the same name). Listing messages by those tags is how an ambiguous send is
reconciled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import ClassVar, Final

from liquid import BoundTemplate, Environment
from liquid.ast import Node
from liquid.builtin.expressions import (
    BooleanExpression,
    Filter,
    FilteredExpression,
    KeywordArgument,
    Path,
)
from liquid.builtin.tags.case_tag import CaseNode, MultiExpressionBlockNode
from liquid.context import RenderContext
from liquid.exceptions import LiquidError
from liquid.expression import Expression
from liquid.span import Span

from campaign.exceptions import TemplateError
from campaign.liquid_plain import render_plain, split_plain
from campaign.segments import SegmentCount, count_segments

__all__ = ["ROW_TAG_TEMPLATE", "ROW_VARIABLE", "MessageTemplate"]

ROW_VARIABLE: Final = "_row"
ROW_TAG_TEMPLATE: Final = "{{ _row }}"


class _SendingEnvironment(Environment):
    """python-liquid's default environment with the emulator's limits against runaway loops.

    The limits are far above anything a message body needs, so they never change the
    output of a template that could be sent; they keep a preview from hanging.
    """

    loop_iteration_limit: ClassVar[int | None] = 10_000
    local_namespace_limit: ClassVar[int | None] = 1_000_000
    output_stream_limit: ClassVar[int | None] = 1_000_000


_ENVIRONMENT: Final = _SendingEnvironment()

# Filled in by python-liquid, never by a row (liquid/context.py `BuiltIn`, and the
# `partial` flag BoundTemplate pushes above the render arguments).
_BUILT_IN_NAMES: Final = frozenset({"now", "today", "partial"})

# Tags that load other templates, which the API does not have.
_PARTIAL_TAGS: Final = frozenset({"include", "render"})


class MessageTemplate:
    """A message text compiled once; raises TemplateError if the API could not render it.

    ``missing(row_variables) -> list[str]``: the required variables this row lacks or has
    empty, in template order. It is a per-template closure rather than a method because
    it runs once per row, and a closure over the precomputed names costs a third of a
    method that reads them from the instance.
    """

    __slots__ = (
        "_liquid",
        "_parts",
        "_slots",
        "missing",
        "required_variables",
        "source",
        "variables",
    )

    source: str
    variables: frozenset[str]
    required_variables: frozenset[str]
    missing: Callable[[Mapping[str, str]], list[str]]

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            template = _ENVIRONMENT.from_string(source)
            analysis = template.analyze(include_partials=False)
        except LiquidError as err:
            raise _template_error(err) from err
        for name, spans in analysis.tags.items():
            if name in _PARTIAL_TAGS:
                raise _positioned(
                    f"{{% {name} %}} is not supported: the API has no other templates to load",
                    source,
                    spans[0].index,
                )
        exempt, filters = _walk(template)
        _check_filters(filters, source)

        required: dict[str, None] = {}  # a dict keeps template order for `missing`
        for name, uses in analysis.globals.items():
            if name in _BUILT_IN_NAMES:
                continue
            if any(use.span.index not in exempt for use in uses):
                required[name] = None
        self.variables = frozenset(analysis.globals)
        self.required_variables = frozenset(required)
        self.missing = _missing_function(tuple(required))
        fast = split_plain(source)
        self._liquid: BoundTemplate | None = template if fast is None else None
        self._parts, self._slots = fast if fast is not None else ((), ())

    def __repr__(self) -> str:
        return f"MessageTemplate({self.source!r})"

    @property
    def renders_per_row(self) -> bool:
        """Whether a row's values can make rendering fail (only non-plain Liquid can)."""
        return self._liquid is not None

    def render(self, variables: Mapping[str, str]) -> str:
        """The text this recipient will read; undefined variables render as ""."""
        if self._liquid is not None:
            try:
                # Positional, so a variable named like a render() parameter cannot collide.
                return self._liquid.render(variables)
            except LiquidError as err:
                raise _template_error(err, "template failed to render") from err
        return render_plain(self._parts, self._slots, variables)

    def segments(self, variables: Mapping[str, str]) -> SegmentCount:
        """The SMS encoding and segment count of this recipient's rendered text."""
        return count_segments(self.render(variables))


def _missing_function(required: tuple[str, ...]) -> Callable[[Mapping[str, str]], list[str]]:
    if not required:
        return lambda _row: []
    if len(required) == 1:
        name = required[0]
        return lambda row: [] if row.get(name) else [name]

    def missing(row: Mapping[str, str]) -> list[str]:
        get = row.get
        # A plain loop first: a list comprehension costs a frame even when nothing is missing.
        for name in required:
            if not get(name):
                return [name for name in required if not get(name)]
        return []

    return missing


def _walk(template: BoundTemplate) -> tuple[set[int], list[Filter]]:
    """Source offsets of variable uses that do not make a variable required, and all filters.

    python-liquid's analysis says where each global is used but not how, so this walks
    the same tree and marks the uses that are tests or covered by `default`; the offsets
    match the analysis' spans (both are the Path token's start index).
    """
    exempt: set[int] = set()
    filters: list[Filter] = []
    context = RenderContext(template)

    def mark_all(expression: Expression) -> None:
        if isinstance(expression, Path):
            exempt.add(expression.token.start_index)
        if isinstance(expression, FilteredExpression):
            filters.extend(expression.filters or ())
        for child in expression.children():
            mark_all(child)

    def mark(expression: Expression) -> None:
        if isinstance(expression, BooleanExpression):
            mark_all(expression)
            return
        if isinstance(expression, FilteredExpression):
            chain = expression.filters or []
            filters.extend(chain)
            if any(f.name == "default" for f in chain):
                mark_all(expression.left)
            else:
                mark(expression.left)
            # Filter arguments are outputs in their own right: `{{ a | default: b }}`
            # still prints b when a is missing, so b stays required.
            for f in chain:
                for child in f.children():
                    mark(child)
            return
        for child in expression.children():
            mark(child)

    def visit(node: Node) -> None:
        is_test = isinstance(node, CaseNode | MultiExpressionBlockNode)
        for expression in node.expressions():
            (mark_all if is_test else mark)(expression)
        for child in node.children(context, include_partials=False):
            visit(child)

    for node in template.nodes:
        visit(node)
    return exempt, filters


def _check_filters(filters: list[Filter], source: str) -> None:
    """Refuse unknown filters and wrong argument counts, which the API finds only per render."""
    for f in filters:
        function = _ENVIRONMENT.filters.get(f.name)
        if function is None:
            raise _positioned(f"unknown filter {f.name!r}", source, f.token.start_index)
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # a filter without introspectable parameters
            continue
        extra: dict[str, object] = {}
        if getattr(function, "with_context", False):
            extra["context"] = None
        if getattr(function, "with_environment", False):
            extra["environment"] = None
        positional = [None for arg in f.args if not isinstance(arg, KeywordArgument)]
        keywords = {arg.name: None for arg in f.args if isinstance(arg, KeywordArgument)}
        try:
            signature.bind(None, *positional, **keywords, **extra)
        except TypeError as err:
            raise _positioned(
                f"filter {f.name!r} cannot take these arguments ({err})",
                source,
                f.token.start_index,
            ) from None


def _positioned(problem: str, source: str, index: int) -> TemplateError:
    # Span.line_col counts lines as python-liquid's own errors do (str.splitlines), with a
    # 0-based column.
    line, column = Span("", index).line_col(source)
    return TemplateError(problem, line=line, column=column + 1)


def _template_error(err: LiquidError, what: str = "not valid Liquid") -> TemplateError:
    """A one-line TemplateError from python-liquid's multi-line diagnostic."""
    message = err.message if err.message is not None else type(err).__name__
    try:
        context = err.context()
    except ValueError:  # python-liquid's token index can fall outside the source
        context = None
    if context is None:
        return TemplateError(f"{what}: {message}")
    return TemplateError(f"{what}: {message}", line=context[0], column=context[1] + 1)
