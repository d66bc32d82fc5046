"""The demo's pages: a public page made only of staste's template tags, and a form that kicks."""

import logging
import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from guests import stats
from guests.csp import strict_csp
from guests.forms import GuestForm
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
