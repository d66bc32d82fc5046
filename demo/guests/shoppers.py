"""The demo's shoppers: user accounts that sign up, come back (less and less) and order, kicked
into ``signed_up``, ``shop_visit`` and ``ordered`` with ``user=``, so that the admin's Funnel and
Retention pages tell a story, and their drop-offs link to real accounts in the admin.

The story, over the last ``DAYS`` days: about ``PER_DAY`` sign-ups a day; most visit a shop on
their first day, and each later day a shopper returns with a chance that halves every
``HALF_LIFE`` days; a visit to the candy shop ends in an order more often than one to the books
shop, and a shopper who signed up through the newsletter (the last ``NEWSLETTER_DAYS`` days,
after the note on the charts) is keener.  Seeded: every run tells the same story.
"""

from __future__ import annotations

import datetime
import random

from django.contrib.auth import get_user_model

from guests import stats
from staste import buffer, conf

DAYS = 56
PER_DAY = 14
HALF_LIFE = 10
NEWSLETTER_DAYS = 3
#: The chance that a visit to each shop ends in an order.
ORDER_RATE = {"candy": 0.35, "books": 0.08, "toys": 0.2, "cinema": 0.25, "cafe": 0.3}
PREFIX = "shopper"


def fill(seed: int = 5) -> tuple[int, int]:
    """Make the shopper accounts (once) and kick their story; (accounts, kicks)."""
    rng = random.Random(seed)
    today = conf.local().replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - datetime.timedelta(days=DAYS - 1)
    User = get_user_model()
    signups: list[tuple[str, datetime.datetime]] = []
    for day in range(DAYS):
        newsletter = day >= DAYS - NEWSLETTER_DAYS
        for _ in range(rng.randint(PER_DAY // 2, PER_DAY * 3 // 2) * (2 if newsletter else 1)):
            moment = first_day + datetime.timedelta(days=day, minutes=rng.randint(8 * 60, 22 * 60))
            signups.append((f"{PREFIX}{len(signups) + 1:04d}", moment))
    existing = set(User.objects.filter(username__startswith=PREFIX).values_list("username", flat=True))
    User.objects.bulk_create(
        [User(username=name, is_active=True) for name, _ in signups if name not in existing], batch_size=500
    )
    ids = dict(User.objects.filter(username__startswith=PREFIX).values_list("username", "pk"))
    kicks = 0
    for name, joined in signups:
        user = ids[name]
        stats.signed_up.kick(date=joined, user=user, buffered=True)
        kicks += 1
        keen = 1.5 if joined >= today - datetime.timedelta(days=NEWSLETTER_DAYS) else 1.0
        favourite = rng.choice(list(ORDER_RATE))
        day = joined
        chance = 0.9
        while day <= conf.local():
            if rng.random() < min(1.0, chance * keen):
                shop = favourite if rng.random() < 0.7 else rng.choice(list(ORDER_RATE))
                visit = day + datetime.timedelta(minutes=rng.randint(0, 90))
                if visit > conf.local():
                    break
                stats.shop_visit.kick(date=visit, user=user, buffered=True, shop=shop)
                kicks += 1
                if rng.random() < ORDER_RATE[shop] * keen:
                    order = min(visit + datetime.timedelta(minutes=rng.randint(5, 40)), conf.local())
                    stats.ordered.kick(date=order, user=user, buffered=True, shop=shop)
                    kicks += 1
            day = (day + datetime.timedelta(days=1)).replace(hour=rng.randint(8, 21))
            chance = 0.45 * 0.5 ** ((day - joined).days / HALF_LIFE)
    buffer.flush()
    return len(signups), kicks
