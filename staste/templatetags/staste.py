"""Charts and numbers of metricas on any page: ``{% load staste %}``.

::

    {% staste_chart "guest_visits" "pie" axis="gender" %}
    {% staste_chart "guest_visits" "line" last="30 days" gender="girl" %}
    {% staste_total "guest_visits" gender="girl" %}     {% staste_average "pocket_money" as avg %}
    {% staste_scripts %}

Options are those of :mod:`staste.charts.options` (plus ``id=`` and ``height=`` for charts).
Literal options are checked when the template is compiled: a mistake is a TemplateSyntaxError
naming what is accepted when DEBUG is on, and renders nothing (logged) in production.  Options
given as variables are checked the same way when they are rendered.

Nothing here writes inline script: a chart is a ``<canvas>`` and its spec in a
``<script type="application/json">`` (Django's ``json_script``), drawn by the static
``staste/charts.js``; so pages work under a strict Content-Security-Policy.  When Redis cannot
be reached a chart renders a short notice and a number renders nothing, never an error page.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, cast

import redis
from django import template
from django.conf import settings
from django.template.backends.django import DjangoTemplates
from django.template.base import FilterExpression, Node, Parser, Token, Variable, kwarg_re
from django.template.defaultfilters import floatformat
from django.templatetags.static import static
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from staste import formats
from staste.charts import annotations as chart_annotations
from staste.charts import spec as specs
from staste.charts.options import (
    CHART_KINDS,
    ChartOptions,
    OptionError,
    check_names,
    check_number_kind,
    check_values,
    find_metrica,
)
from staste.exceptions import RedisUnavailable
from staste.query import budget

register = template.Library()
logger = logging.getLogger("staste")

#: What ``{% staste_scripts %}`` includes, in order: Chart.js, then staste's renderer.
SCRIPTS: tuple[str, ...] = ("staste/vendor/chartjs/chart.umd.min.js", "staste/charts.js")
#: Options of ``staste_chart`` about the page rather than the data.
PRESENTATION_OPTIONS: tuple[str, ...] = ("id", "height")
DEFAULT_HEIGHT = "300px"

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-:.]{0,99}$")
_LENGTH = re.compile(r"^\d{1,5}(\.\d{1,3})?(px|rem|em|vh|%)$")
_SCRIPTS_KEY = "staste.scripts_included"
_COUNTER_KEY = "staste.chart_counter"
_REDIS_DOWN = (RedisUnavailable, redis.RedisError)


def _plain(value: Any) -> Any:
    """Template values as plain data: lazy text resolved, and no "safe" mark on user text."""
    if isinstance(value, Promise):
        value = str(value)
    if isinstance(value, SafeString):
        return str.__str__(value)
    return value


def _literal(expression: FilterExpression) -> tuple[bool, Any]:
    """(True, value) for a constant such as ``"girl"`` or ``2024``; (False, None) for a variable."""
    if expression.filters:
        return False, None
    var = expression.var
    if isinstance(var, str):
        return True, _plain(var)
    if isinstance(var, Variable) and var.literal is not None and not var.translate:
        return True, var.literal
    return False, None


def _fail(tag: str, exc: Exception) -> None:
    """A mistake in a tag: an error page in DEBUG, a log line (and nothing drawn) in production."""
    message = f"{tag}: {exc}"
    if settings.DEBUG:
        raise template.TemplateSyntaxError(message) from exc
    logger.warning("staste: %s (rendered nothing)", message)


class _Nothing(Node):
    def render(self, context: template.Context) -> str:
        return ""


def _check_presentation(name: str, value: Any) -> str:
    if name == "id":
        text = str(value)
        if not _ID.match(text):
            raise OptionError(
                f"id= must start with a letter and hold only letters, digits, '-', '_', ':' and '.', not {text!r}"
            )
        return text
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value}px"
    text = str(value).strip()
    if not _LENGTH.match(text):
        raise OptionError(f"height= must be a number of pixels or a CSS length such as '20rem', not {value!r}")
    return text


def _parse_bits(parser: Parser, tag: str, bits: list[str], positional: int) -> tuple[list, dict, str | None]:
    """Split ``tag`` arguments into positional expressions, name=value options and ``as var``."""
    target = None
    if len(bits) >= 2 and bits[-2] == "as":
        target = bits[-1]
        bits = bits[:-2]
    if len(bits) < positional:
        wanted, example = ("a metrica and a kind (line, pie, bar)", '"guest_visits" "pie"')
        if positional == 1:
            wanted, example = "a metrica", '"guest_visits"'
        raise OptionError(f"give {wanted}, e.g. {{% {tag} {example} %}}")
    args = [parser.compile_filter(bit) for bit in bits[:positional]]
    options: dict[str, FilterExpression] = {}
    for bit in bits[positional:]:
        match = kwarg_re.match(bit)
        if not match or not match[1]:
            raise OptionError(f"expected name=value, got {bit!r}")
        name, value = match[1], match[2]
        if name in options:
            raise OptionError(f"{name}= is given twice")
        options[name] = parser.compile_filter(value)
    return args, options, target


class _MetricaNode(Node):
    """What the chart and number tags share: a metrica, a kind and options, checked early."""

    tag = ""

    def __init__(self, metrica: FilterExpression, kind: FilterExpression, options: dict[str, FilterExpression]):
        self.metrica_expression = metrica
        self.kind_expression = kind
        self.option_expressions = options
        self.ready: ChartOptions | None = None
        self.literals: dict[str, Any] = {}
        self.variables: dict[str, FilterExpression] = {}
        for name, expression in options.items():
            known, value = _literal(expression)
            if known:
                self.literals[name] = value
            else:
                self.variables[name] = expression

    def data_options(self, given: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in given.items() if name not in PRESENTATION_OPTIONS}

    def prepare(self) -> None:
        """Check at compile time whatever is known then; build the options when all of it is."""
        metrica_known, metrica_name = _literal(self.metrica_expression)
        kind_known, kind = _literal(self.kind_expression)
        if kind_known:
            self.check_kind(kind)
        if not metrica_known:
            return
        metrica = find_metrica(metrica_name)
        if not kind_known:
            return
        check_names(metrica, kind, self.data_options(self.option_expressions))
        check_values(metrica, kind, self.data_options(self.literals))
        for name in PRESENTATION_OPTIONS:
            if name in self.literals:
                _check_presentation(name, self.literals[name])
        if not self.variables:
            self.ready = ChartOptions.parse(metrica, kind, self.data_options(self.literals))

    def check_kind(self, kind: Any) -> None:
        pass

    def resolve(self, context: template.Context) -> tuple[ChartOptions, dict[str, Any]]:
        """The options with their variables resolved (OptionError when they do not fit)."""
        given = dict(self.literals)
        for name, expression in self.variables.items():
            # A variable that does not resolve (request.GET.gender without ?gender=) is None: not given.
            given[name] = _plain(expression.resolve(context, ignore_failures=True))
        presentation = {
            name: _check_presentation(name, given[name])
            for name in PRESENTATION_OPTIONS
            if given.get(name) not in (None, "")
        }
        if self.ready is not None:
            return self.ready, presentation
        metrica = _plain(self.metrica_expression.resolve(context))
        kind = _plain(self.kind_expression.resolve(context))
        self.check_kind(kind)
        return ChartOptions.parse(metrica, kind, self.data_options(given)), presentation


class ChartNode(_MetricaNode):
    tag = "staste_chart"

    def check_kind(self, kind: Any) -> None:
        if kind not in CHART_KINDS:
            raise OptionError(f"unknown chart kind {kind!r}; use one of {', '.join(CHART_KINDS)}")

    def render(self, context: template.Context) -> str:
        try:
            options, presentation = self.resolve(context)
        except OptionError as exc:
            _fail(self.tag, exc)
            return ""
        try:
            with budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK"):
                spec = options.spec()
        except _REDIS_DOWN as exc:
            logger.warning("staste: chart of %s not drawn: %s", options.metrica.name, exc)
            html = _render(context, "staste/tags/unavailable.html", {"metrica": options.metrica})
            return html
        except ValueError as exc:  # a range failing only now (before the year 1), QueryTooExpensive
            _fail(self.tag, exc)
            return ""
        chart_id = presentation.get("id") or _next_chart_id(context)
        spec = chart_annotations.mark(spec, options.metrica.name)  # a line's notes (one query)
        spec = formats.localized_spec(spec)  # its measures and scales in the page's language
        header, rows = specs.shown_table(spec)
        html = _render(
            context,
            "staste/tags/chart.html",
            {
                "spec": spec,
                "chart_id": chart_id,
                "height": presentation.get("height", DEFAULT_HEIGHT),
                "metrica": options.metrica,
                "kind": options.kind,
                "table_header": header,
                "table_rows": rows,
            },
        )
        return scripts_once(context) + html


class NumberNode(_MetricaNode):
    def __init__(self, tag: str, metrica: FilterExpression, options: dict[str, FilterExpression], target: str | None):
        kind = FilterExpression(f'"{tag.removeprefix("staste_")}"', Parser([]))
        super().__init__(metrica, kind, options)
        self.tag = tag
        self.target = target

    def render(self, context: template.Context) -> str:
        try:
            options, _ = self.resolve(context)
        except OptionError as exc:
            _fail(self.tag, exc)
            return ""
        unread = ""  # what prints when the number could not be read: nothing
        try:
            with budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK"):
                value = options.number()
                unread = NO_NUMBER  # read: None is a span not held or not begun, or nothing to average
        except _REDIS_DOWN as exc:
            logger.warning("staste: %s of %s not read: %s", options.kind, options.metrica.name, exc)
            value = None
        except ValueError as exc:
            _fail(self.tag, exc)
            value = None
        if self.target:
            context[self.target] = value
            return ""
        return unread if value is None else format_number(value)


#: What a number tag prints for a span Redis no longer holds or that has not begun, or an
#: average of nothing: a dash, as the admin shows it, never a 0 (nor an empty gap in a sentence).
NO_NUMBER = "—"


def format_number(value: int | float | None) -> str:
    """How a number tag prints: grouped thousands, and two decimals when the number has any."""
    if value is None:
        return NO_NUMBER
    if isinstance(value, float) and not value.is_integer():
        return str(floatformat(value, "-2g"))
    return number_format(int(value), force_grouping=True)


def _render(context: template.Context, name: str, values: dict[str, Any]) -> str:
    """Render one of staste's fragments with the page's engine, sharing its render state."""
    if context.template is not None:
        engine = context.template.engine
    else:  # staste's fragments are Django templates: the "django" backend's engine renders them
        engine = cast(DjangoTemplates, template.engines["django"]).engine
    return engine.get_template(name).render(context.new(values))


def _page_state(context: template.Context) -> dict[str, Any]:
    """The render state of the whole page (its outermost dict: fragments rendered inside share it)."""
    # django-stubs types the render context's values as str; Django keeps any object there.
    return cast(dict[str, Any], context.render_context.dicts[0])


def _next_chart_id(context: template.Context) -> str:
    """A page-unique id: a token per render (pages may be assembled from fragments) and a counter."""
    state = _page_state(context)
    token, count = state.get(_COUNTER_KEY, (uuid.uuid4().hex[:8], 0))
    state[_COUNTER_KEY] = (token, count + 1)
    return f"staste-chart-{token}-{count + 1}"


def _nonce(context: template.Context) -> str | None:
    request = context.get("request")
    nonce = context.get("csp_nonce") or getattr(request, "csp_nonce", None)
    return str(nonce) if nonce else None


def scripts_once(context: template.Context) -> str:
    """The script tags of Chart.js and staste's renderer, the first time a page asks for them."""
    state = _page_state(context)
    if state.get(_SCRIPTS_KEY):
        return ""
    state[_SCRIPTS_KEY] = True
    nonce = _nonce(context)
    if nonce:
        return format_html_join(
            "", '<script src="{}" defer nonce="{}"></script>', ((static(path), nonce) for path in SCRIPTS)
        )
    return format_html_join("", '<script src="{}" defer></script>', ((static(path),) for path in SCRIPTS))


@register.filter
def staste_range(text: str) -> str:
    """A quick range as a page names it: ``{{ "24 hours"|staste_range }}`` is "Last 24 hours", translated."""
    return formats.range_label(str(text))


@register.filter
def staste_measure(name: str) -> str:
    """A measure as a page names it: ``{{ "count"|staste_measure }}``, translated."""
    return formats.measure_label(str(name))


@register.simple_tag(takes_context=True)
def staste_scripts(context: template.Context) -> str:
    """Include Chart.js and ``staste/charts.js`` (deferred) unless this page already has them."""
    return mark_safe(scripts_once(context))  # built with format_html: static URLs and the nonce are escaped


@register.tag("staste_chart")
def staste_chart(parser: Parser, token: Token) -> Node:
    """``{% staste_chart METRICA KIND [option=value ...] [axis=value ...] %}``: a pie, bar or line chart."""
    bits = token.split_contents()
    tag = bits[0]
    try:
        args, options, target = _parse_bits(parser, tag, bits[1:], positional=2)
        if target is not None:
            raise OptionError("a chart cannot be stored with 'as'; only the number tags can")
        node = ChartNode(args[0], args[1], options)
        node.prepare()
    except (OptionError, template.TemplateSyntaxError) as exc:
        _fail(tag, exc)
        return _Nothing()
    return node


def _number_tag(parser: Parser, token: Token) -> Node:
    bits = token.split_contents()
    tag = bits[0]
    try:
        args, options, target = _parse_bits(parser, tag, bits[1:], positional=1)
        for name in PRESENTATION_OPTIONS:
            if name in options:
                raise OptionError(f"{name}= is an option of staste_chart, not of numbers")
        node = NumberNode(tag, args[0], options, target)
        node.prepare()
        if node.ready is not None:
            check_number_kind(node.ready.metrica, node.ready.kind)
    except (OptionError, template.TemplateSyntaxError) as exc:
        _fail(tag, exc)
        return _Nothing()
    return node


for _name in ("staste_total", "staste_count", "staste_average", "staste_uniques"):
    register.tag(_name, _number_tag)
