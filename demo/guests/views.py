"""The demo's pages: a public page made only of staste's template tags, a form that kicks, and three
pages that give the Performance section of the admin something to show: one with an N+1, one
with a slow query, one cached."""

import logging
import uuid

from django.contrib import messages
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from guests import stats
from guests.csp import strict_csp
from guests.forms import GuestForm
from guests.models import Shop, Visit
from staste.exceptions import RedisUnavailable

logger = logging.getLogger(__name__)


@strict_csp
def public(request: HttpRequest) -> HttpResponse:
    """Everything on this page comes from {% staste_chart %} and friends in the template."""
    return render(request, "guests/index.html")


@strict_csp
@require_http_methods(["GET", "POST"])
def visit(request: HttpRequest) -> HttpResponse:
    """Note a guest: one kick of each metrica (each one Redis round trip).

    ``shop_visitors`` counts the guest by card number (the fake data's guest ids are card
    numbers too), so a guest noted twice with one card is one distinct guest; a guest with
    no card is a new one, with an id of its own that nobody can give again.
    """
    form = GuestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        guest = form.cleaned_data
        card = guest["card"]
        guest_id = card if card is not None else f"walk-in-{uuid.uuid4().hex}"
        try:
            stats.guest_visits.kick(gender=guest["gender"], age=guest["age"])
            stats.pocket_money.kick(value=guest["spent"], shop=guest["shop"], gender=guest["gender"])
            stats.visit_length.kick(value=guest["minutes"], gender=guest["gender"])
            stats.shop_visitors.kick(shop=guest["shop"], unique=guest_id)
        except RedisUnavailable as exc:
            logger.warning("guest not recorded: %s", exc)
            messages.error(request, "The guest could not be recorded: the statistics server is unavailable.")
        else:
            card_text = f" (card {card})" if card is not None else ""
            age = guest["age"]
            article = "an" if age in (8, 11, 18) or 80 <= age <= 89 else "a"  # "an 18-year-old"
            messages.success(request, f"Recorded {article} {age}-year-old {guest['gender']}{card_text}.")
        return redirect("visit")
    return render(request, "guests/visit.html", {"form": form})


#: How many recent visits the shops page lists.
RECENT = 25


@strict_csp
def shops(request: HttpRequest) -> HttpResponse:
    """The latest visits and their shop, written the naive way on purpose: one query for the
    visits, then one per visit for its shop (an N+1, which ``select_related("shop")`` would
    fold into one query).  Its admin Performance page shows the repeated statement."""
    visits = [(visit.at, visit.shop.name, visit.spent) for visit in Visit.objects.all()[:RECENT]]
    return render(request, "guests/shops.html", {"visits": visits, "shops": Shop.objects.count()})


#: Rows the slow report walks (a recursive query: SQLite takes a noticeable time over it).
REPORT_ROWS = 400_000


@strict_csp
def report(request: HttpRequest) -> HttpResponse:
    """A slow query: a recursive SQL series summed row by row, as a careless report would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE series(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM series WHERE n < %s) "
            "SELECT count(*), sum(n %% 7) FROM series",
            [REPORT_ROWS],
        )
        rows, checksum = cursor.fetchone()
    return render(request, "guests/report.html", {"rows": rows, "checksum": checksum})


#: Seconds the leaderboard is cached for.
LEADERBOARD_SECONDS = 60


def _leaderboard() -> list[dict]:
    return list(
        Shop.objects.annotate(visits_count=Count("visits"), spent_total=Sum("visits__spent")).order_by("-spent_total")
    )


@strict_csp
def leaderboard(request: HttpRequest) -> HttpResponse:
    """The shops ranked by what was spent in them, cached for a minute: most requests are one
    cache hit and no query; one a minute misses, runs the query and writes the cache."""
    ranking = cache.get_or_set("guests:leaderboard", _leaderboard, LEADERBOARD_SECONDS)
    return render(request, "guests/leaderboard.html", {"ranking": ranking, "seconds": LEADERBOARD_SECONDS})
