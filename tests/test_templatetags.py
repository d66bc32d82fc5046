"""{% load staste %}: charts and numbers on any page, checked at compile time, CSP-safe, and
never an error page when Redis is down."""

from __future__ import annotations

import datetime
import json
import logging
import socket
from html.parser import HTMLParser

import pytest
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.test import RequestFactory
from django.utils.safestring import mark_safe

from staste import conf
from staste import registration as registry_module
from staste.axis import HierarchicalAxis, StoredChoiceAxis
from staste.metrica import Metrica
from staste.templatetags.staste import SCRIPTS
from tests.roundtrips import count_round_trips
from tests.statsapp.stats import gender_age, pocket_money

GUESTS = gender_age.name  # "guest_visits_gender_age", registered by tests.statsapp
HOSTILE = "</script><script>alert('x')</script>\"'&<b>"


class Page(HTMLParser):
    """What a rendered page holds: its script tags and the canvases to draw."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.canvases: list[dict[str, str | None]] = []
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._script, self._text = dict(attrs), []
        elif tag == "canvas":
            self.canvases.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def specs(self) -> dict[str, dict]:
        return {
            attrs["id"]: json.loads(text)
            for attrs, text in self.scripts
            if attrs.get("type") == "application/json" and attrs.get("id")
        }

    def sources(self) -> list[str]:
        return [attrs["src"] for attrs, _ in self.scripts if attrs.get("src")]

    def only_spec(self) -> dict:
        (canvas,) = self.canvases
        return self.specs()[canvas["data-staste-chart"]]


def pairs(spec: dict, dataset: int = 0) -> dict:
    return dict(zip(spec["labels"], spec["datasets"][dataset]["data"], strict=True))


def render(source: str, context: dict | None = None) -> str:
    return Template("{% load staste %}" + source).render(Context(context or {}))


def assert_no_inline_script(html: str) -> None:
    """The strict-CSP rule: every <script> is either a file or JSON data."""
    for attrs, text in Page(html).scripts:
        assert attrs.get("src") or attrs.get("type") == "application/json", (attrs, text)
        if attrs.get("src"):
            assert not text.strip()


@pytest.fixture
def guests() -> Metrica:
    now = conf.local()
    for gender, age, times in (("boy", 17, 3), ("girl", 18, 2), ("girl", 19, 1)):
        for _ in range(times):
            gender_age.kick(gender=gender, age=age, date=now)
    gender_age.kick(gender="girl", age=18, date=now - datetime.timedelta(days=3))
    gender_age.kick(gender="boy", age=17, date=datetime.datetime(2010, 2, 14, 12))
    gender_age.kick(gender="boy", age=18, date=datetime.datetime(2010, 2, 15, 12), value=4)
    return gender_age


@pytest.fixture
def money() -> Metrica:
    now = conf.local()
    pocket_money.kick(value=12.5, gender="girl", date=now)
    pocket_money.kick(value=7.5, gender="girl", date=now)
    pocket_money.kick(value=3, gender="boy", date=now - datetime.timedelta(days=2))
    pocket_money.kick(value=100, gender="boy", date=datetime.datetime(2010, 1, 1))
    return pocket_money


# -- charts ------------------------------------------------------------------------------------


def test_pie_chart_of_an_axis(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "pie" axis="gender" %}')
    spec = Page(html).only_spec()
    assert spec["type"] == "pie"
    assert spec["title"] == "Guest visits"
    assert spec["labels"] == ["boy", "girl"]
    assert spec["datasets"][0]["data"] == [3 + 1 + 4, 2 + 1 + 1]
    assert_no_inline_script(html)


def test_pie_over_a_timespan_and_filters(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "bar" axis="age" year=2010 month=2 gender="boy" %}')
    spec = Page(html).only_spec()
    assert spec["type"] == "bar"
    assert dict(zip(spec["labels"], spec["datasets"][0]["data"], strict=True)) == {"17": 1, "18": 4, "19": 0}


def test_breakdown_by_time_without_an_axis(guests: Metrica) -> None:
    spec = Page(render('{% staste_chart "guest_visits_gender_age" "pie" year=2010 %}')).only_spec()
    assert spec["labels"][:3] == ["2010-01", "2010-02", "2010-03"]
    assert spec["datasets"][0]["data"][:3] == [0, 5, 0]


def test_breakdown_over_the_last_days(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "pie" axis="gender" last="2 days" %}')
    assert pairs(Page(html).only_spec()) == {"boy": 3, "girl": 3}  # today's; three days ago is out
    html = render('{% staste_chart "guest_visits_gender_age" "pie" axis="gender" last="4 days" %}')
    assert pairs(Page(html).only_spec()) == {"boy": 3, "girl": 4}


def test_limit_pools_the_smallest_slices(guests: Metrica) -> None:
    spec = Page(render('{% staste_chart "guest_visits_gender_age" "pie" axis="age" limit=2 %}')).only_spec()
    # ages: 17 -> 4, 18 -> 7, 19 -> 1: the largest, then the rest pooled
    assert spec["labels"] == ["18", "(rest)"]
    assert spec["datasets"][0]["data"] == [7, 5]


@pytest.mark.django_db  # a line chart reads its annotations
def test_line_chart_of_the_last_30_days_filtered(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "line" last="30 days" gender="girl" %}')
    spec = Page(html).only_spec()
    assert spec["type"] == "line"
    assert len(spec["labels"]) == 30
    assert spec["labels"][-1] == conf.local().strftime("%Y-%m-%d")
    data = spec["datasets"][0]["data"]
    assert data[-1] == 3  # girls today
    assert data[-4] == 1  # three days ago
    assert sum(data) == 4


@pytest.mark.django_db  # a line chart reads its annotations
def test_line_by_week(guests: Metrica) -> None:
    monday = conf.local().date() - datetime.timedelta(days=conf.local().date().weekday())
    for source in (
        '{% staste_chart "guest_visits_gender_age" "line" last="12 weeks" gender="girl" %}',
        '{% staste_chart "guest_visits_gender_age" "line" last="80 days" scale="week" gender="girl" %}',
    ):
        spec = Page(render(source)).only_spec()
        assert spec["x"] == "week"
        assert spec["labels"][-1] == monday.strftime("%G-W%V")
        data = spec["datasets"][0]["data"]
        assert sum(data) == 4 and data[-1] in (3, 4)  # three days ago may be last week
    assert render('{% staste_total "guest_visits_gender_age" last="12 weeks" gender="girl" %}').strip() == "4"


@pytest.mark.django_db  # a line chart reads its annotations
def test_line_over_a_timespan_shows_its_buckets(guests: Metrica) -> None:
    spec = Page(render('{% staste_chart "guest_visits_gender_age" "line" year=2010 month=2 %}')).only_spec()
    assert spec["labels"][0] == "2010-02-01" and spec["labels"][-1] == "2010-02-28"
    assert spec["datasets"][0]["data"][13:15] == [1, 4]


@pytest.mark.django_db  # a line chart reads its annotations
def test_line_per_axis_value(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "line" axis="gender" last="7 days" %}')
    spec = Page(html).only_spec()
    assert [d["label"] for d in spec["datasets"]] == ["boy", "girl"]
    assert [d["data"][-1] for d in spec["datasets"]] == [3, 3]
    assert len(spec["labels"]) == 7


@pytest.mark.django_db  # a line chart reads its annotations
def test_averaged_line_has_counts_and_averages(money: Metrica) -> None:
    spec = Page(render('{% staste_chart "pocket_money" "line" last="3 days" %}')).only_spec()
    assert [(d["label"], d["axis"]) for d in spec["datasets"]] == [("count", "y"), ("average", "y1")]
    counts, averages = (d["data"] for d in spec["datasets"])
    assert counts == [1, 0, 2]
    assert averages == [3, None, 10]


def test_one_chart_is_one_round_trip(guests: Metrica) -> None:
    template = Template('{% load staste %}{% staste_chart "guest_visits_gender_age" "pie" axis="age" %}')
    with count_round_trips() as trips:
        template.render(Context())
    assert trips.count == 1


# -- numbers -----------------------------------------------------------------------------------


def test_numbers(guests: Metrica, money: Metrica) -> None:
    assert render('{% staste_total "guest_visits_gender_age" %}') == "12"
    assert render('{% staste_total "guest_visits_gender_age" gender="girl" %}') == "4"
    assert render('{% staste_total "guest_visits_gender_age" year=2010 month=2 age=18 %}') == "4"
    assert render('{% staste_total "guest_visits_gender_age" last="2 days" %}') == "6"
    assert render('{% staste_count "pocket_money" %}') == "4"
    assert render('{% staste_total "pocket_money" gender="girl" %}') == "20"
    assert render('{% staste_average "pocket_money" gender="girl" %}') == "10"
    assert render('{% staste_average "pocket_money" last="3 days" %}') == "7.67"
    assert render('{% staste_average "pocket_money" year=2011 %}') == "—"  # nothing counted: a dash


@pytest.fixture
def visitors():
    metrica = Metrica(name="tag_test_visitors", axes=[("shop", StoredChoiceAxis())], uniques=True)
    registry_module.register(metrica)
    now = conf.local()
    for n in range(30):  # 30 visits today by 12 people, and 5 visits by 5 others 3 days ago
        metrica.kick(shop="candy" if n % 3 else "books", unique=f"guest{n % 12}", date=now)
    for n in range(5):
        metrica.kick(shop="candy", unique=f"old{n}", date=now - datetime.timedelta(days=3))
    yield metrica
    registry_module.registry.unregister(metrica)


def test_distinct_ids(visitors: Metrica) -> None:
    """HyperLogLog counts are exact at these sizes (sparse encoding, well under a thousand ids)."""
    assert render('{% staste_total "tag_test_visitors" %}') == "35"
    assert render('{% staste_uniques "tag_test_visitors" %}') == "17"
    assert render('{% staste_uniques "tag_test_visitors" last="2 days" %}') == "12"  # a range: one PFCOUNT
    assert render('{% staste_uniques "tag_test_visitors" shop="books" %}') == "4"  # guest0, 3, 6, 9
    assert render('{% staste_uniques "tag_test_visitors" year=2010 %}') == "0"
    assert render('{% staste_uniques "tag_test_visitors" as people %}[{{ people }}]') == "[17]"


def test_distinct_ids_need_a_metrica_that_keeps_them(settings, guests: Metrica) -> None:
    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match="needs a metrica made with uniques=True"):
        Template('{% load staste %}{% staste_uniques "guest_visits_gender_age" %}')


def test_numbers_group_thousands() -> None:
    pocket_money.kick(value=12345, gender="boy")
    assert render('{% staste_total "pocket_money" %}') == "12,345"
    pocket_money.kick(value=0.5, gender="boy")
    assert render('{% staste_total "pocket_money" %}') == "12,345.50"


def test_number_into_a_variable(money: Metrica) -> None:
    html = render('{% staste_average "pocket_money" gender="boy" as avg %}[{{ avg|floatformat:1 }}]')
    assert html == "[51.5]"


# -- scripts -----------------------------------------------------------------------------------


def test_scripts_are_included_once_per_page(guests: Metrica) -> None:
    engine = Engine(
        loaders=[
            ("django.template.loaders.locmem.Loader", {"part.html": '{% load staste %}{% staste_chart m "pie" %}'}),
            "django.template.loaders.app_directories.Loader",
        ],
        libraries={"staste": "staste.templatetags.staste"},
    )
    page = engine.from_string(
        "{% load staste %}<head>{% staste_scripts %}</head>"
        '{% staste_chart "guest_visits_gender_age" "pie" axis="gender" %}'
        '{% include "part.html" with m="guest_visits_gender_age" %}{% staste_scripts %}'
    )
    html = page.render(Context())
    found = Page(html)
    assert found.sources() == ["/static/" + path for path in SCRIPTS]
    assert len(found.canvases) == 2
    ids = [canvas["data-staste-chart"] for canvas in found.canvases]
    assert len(set(ids)) == 2 and set(ids) == set(found.specs())
    assert_no_inline_script(html)


def test_a_chart_brings_the_scripts_when_the_page_did_not(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "pie" %}{% staste_scripts %}')
    assert Page(html).sources() == ["/static/" + path for path in SCRIPTS]
    assert html.index("chart.umd.min.js") < html.index("staste/charts.js")


def test_scripts_carry_the_csp_nonce() -> None:
    html = render("{% staste_scripts %}", {"csp_nonce": "abc123"})
    assert [attrs.get("nonce") for attrs, _ in Page(html).scripts] == ["abc123", "abc123"]


def test_id_and_height(guests: Metrica) -> None:
    html = render('{% staste_chart "guest_visits_gender_age" "pie" id="guests-pie" height=250 %}')
    page = Page(html)
    assert page.canvases[0]["data-staste-chart"] == "guests-pie"
    assert "guests-pie" in page.specs()
    assert 'data-staste-height="250px"' in html


# -- escaping ----------------------------------------------------------------------------------


def test_hostile_axis_values_and_titles_are_escaped(guests: Metrica) -> None:
    gender_age.kick(gender="boy", age=HOSTILE)
    html = render(
        '{% staste_chart "guest_visits_gender_age" "pie" axis="age" title=title %}',
        {"title": mark_safe(HOSTILE)},  # even text marked safe is data here
    )
    assert "<script>alert" not in html
    assert "<b>" not in html
    spec = Page(html).only_spec()
    assert HOSTILE in spec["labels"]
    assert spec["title"] == HOSTILE
    assert_no_inline_script(html)


# -- mistakes ----------------------------------------------------------------------------------

# @G stands for the registered metrica guest_visits_gender_age.
MISTAKES = [
    ('{% staste_chart "no_such_metrica" "pie" %}', "no metrica named 'no_such_metrica'.*registered: .*pocket_money"),
    ('{% staste_chart @G "donut" %}', "unknown chart kind 'donut'; use one of line, pie, bar"),
    ('{% staste_chart @G "pie" colour="red" %}', "unknown option colour=.*axes to filter on: gender, age"),
    ('{% staste_chart @G "pie" axis="colour" %}', "has no axis 'colour'; its axes are: gender, age"),
    ('{% staste_chart @G "pie" gender="robot" %}', "bad filter gender='robot': gender takes one of boy, girl"),
    ('{% staste_chart @G "pie" last="30 days" %}', "a breakdown over last='30 days' needs axis="),
    ('{% staste_total @G scale="day" %}', "staste_total does not take scale="),
    ('{% staste_chart @G "line" last="3 fortnights" %}', "last=: bad range"),
    ('{% staste_chart @G "line" last="3 days" year=2010 %}', "either last= or a timespan"),
    ('{% staste_chart @G "line" month=2 %}', "month= needs year="),
    ('{% staste_chart @G "line" year="soon" %}', "year= must be a whole number"),
    ('{% staste_chart @G "line" year=2010 month=13 %}', "month=13 is out of range"),
    ('{% staste_chart @G "line" scale="fortnight" %}', "scale= must be a time scale"),
    ('{% staste_chart @G "line" last="10000 days" scale="minute" %}', "more than 10,000 minutes"),
    ('{% staste_chart @G "pie" measure="average" %}', "needs an AveragedMetrica"),
    ('{% staste_chart @G "pie" limit=0 %}', "limit= must be at least 1"),
    ('{% staste_chart @G "pie" id="1 2" %}', "id= must start with a letter"),
    ('{% staste_chart @G "pie" height="tall" %}', "height= must be"),
    ("{% staste_chart @G %}", "give a metrica and a kind"),
    ('{% staste_chart @G "pie" gender %}', "expected name=value, got 'gender'"),
    ('{% staste_chart @G "pie" as chart %}', "cannot be stored with 'as'"),
    ('{% staste_total @G axis="gender" %}', "staste_total does not take axis="),
    ("{% staste_average @G %}", "not an AveragedMetrica"),
    ("{% staste_total %}", "give a metrica"),
]
MISTAKES = [(source.replace("@G", f'"{GUESTS}"'), message) for source, message in MISTAKES]


@pytest.mark.parametrize(("source", "message"), MISTAKES)
def test_mistakes_fail_at_compile_time_in_debug(settings, source: str, message: str) -> None:
    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match=message):
        Template("{% load staste %}" + source)  # compiling alone, nothing rendered


@pytest.mark.parametrize(("source", "message"), MISTAKES[:6])
def test_mistakes_render_nothing_in_production(settings, caplog, source: str, message: str) -> None:
    settings.DEBUG = False
    with caplog.at_level(logging.WARNING, logger="staste"):
        template = Template("{% load staste %}<p>" + source + "</p>")
    assert template.render(Context()) == "<p></p>"
    assert any("rendered nothing" in record.getMessage() for record in caplog.records)


def test_variables_are_checked_when_rendered(settings, guests: Metrica) -> None:
    source = "{% staste_chart name kind axis=axis gender=gender %}"
    html = render(source, {"name": GUESTS, "kind": "pie", "axis": "age", "gender": "girl"})
    spec = Page(html).only_spec()
    assert dict(zip(spec["labels"], spec["datasets"][0]["data"], strict=True)) == {"17": 0, "18": 3, "19": 1}
    assert render("{% staste_total name gender=None %}", {"name": GUESTS}) == "12"  # None: not given
    from_query = "{% staste_total name gender=request.GET.gender %}"
    assert render(from_query, {"name": GUESTS, "request": RequestFactory().get("/")}) == "12"  # unresolved: not given
    assert render(from_query, {"name": GUESTS, "request": RequestFactory().get("/?gender=girl")}) == "4"

    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match="bad filter gender='robot': gender takes one of boy, girl"):
        render(source, {"name": GUESTS, "kind": "pie", "axis": "age", "gender": "robot"})
    settings.DEBUG = False
    assert render(source, {"name": GUESTS, "kind": "pie", "axis": "age", "gender": "robot"}) == ""
    assert render(source, {"name": "nope", "kind": "pie"}) == ""


def test_an_option_name_is_checked_even_when_its_value_is_a_variable(settings) -> None:
    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match="unknown option colour="):
        Template('{% load staste %}{% staste_chart "guest_visits_gender_age" "pie" colour=c %}')


# -- other axes --------------------------------------------------------------------------------


@pytest.fixture
def referrers():
    metrica = Metrica(
        name="tag_test_referrers", axes=[("source", HierarchicalAxis()), ("n", StoredChoiceAxis(value_type=int))]
    )
    registry_module.register(metrica)
    yield metrica
    registry_module.registry.unregister(metrica)


def test_hierarchical_paths_are_written_with_slashes(referrers: Metrica) -> None:
    referrers.kick(source=("out", "se", "google"), n=1)
    referrers.kick(source=("out", "se", "bing"), n=2)
    referrers.kick(source=("out", "social"), n=2)
    html = render('{% staste_chart "tag_test_referrers" "pie" axis="source" source="out/se" %}')
    spec = Page(html).only_spec()
    assert dict(zip(spec["labels"], spec["datasets"][0]["data"], strict=True)) == {"out/se/bing": 1, "out/se/google": 1}
    assert render('{% staste_total "tag_test_referrers" source="out" n=2 %}') == "2"
    spec = Page(render('{% staste_chart "tag_test_referrers" "pie" axis="n" %}')).only_spec()
    assert spec["labels"] == ["1", "2"]


# -- Redis down --------------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.STASTE_REDIS_URL = f"redis://127.0.0.1:{port}/0"  # nothing listens there


def test_redis_down_renders_a_notice_not_an_error(redis_down, settings, caplog) -> None:
    settings.DEBUG = True  # not even in DEBUG: an outage is not a template mistake
    source = (
        '<h1>Page</h1>{% staste_chart "guest_visits_gender_age" "pie" axis="gender" %}'
        '[{% staste_total "guest_visits_gender_age" %}]{% staste_average "pocket_money" as avg %}[{{ avg }}]'
    )
    with caplog.at_level(logging.WARNING, logger="staste"):
        html = render(source)
    assert html.startswith("<h1>Page</h1>")
    assert "statistics are unavailable right now" in html
    assert "[][None]" in html
    assert not Page(html).canvases
    assert any("could not reach Redis" in record.getMessage() for record in caplog.records)
