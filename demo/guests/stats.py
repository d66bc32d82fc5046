"""The demo's metricas: the seed's guests, their pocket money, how long they stay, and how many
different guests each shop sees.

staste registers every metrica defined here when Django starts (the way the admin finds
``admin.py``), so the template tags and the admin know them by name.
"""

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.middleware import response_time_metrica

GENDERS = ["boy", "girl"]
SHOPS = ["candy", "books", "toys", "cinema", "cafe"]

#: The seed's metrica: guests by gender and age (ages are stored as they come, read back as ints).
guest_visits = Metrica(
    name="guest_visits",
    axes=[("gender", Axis(choices=GENDERS)), ("age", StoredChoiceAxis(value_type=int))],
    title="Guest visits",
    description="One kick per guest, by gender and age.",
    category="Guests",
)

#: A weighed metrica: what guests spent, by shop (in currency units, kept to the cent).
pocket_money = Metrica(
    name="pocket_money",
    axes=[("shop", StoredChoiceAxis()), ("gender", Axis(choices=GENDERS))],
    multiplier=100,
    unit="€",
    title="Pocket money spent",
    description="The sum of what guests spent, by shop and gender.",
    category="Guests",
)

#: Distinct guests as well as visits: a regular who comes twenty times is twenty visits but one
#: guest.  The ids go to HyperLogLogs (one per shop and bucket, days and coarser), so the
#: number of distinct guests of any shop and period is read back within about 1%.
shop_visitors = Metrica(
    name="shop_visitors",
    axes=[("shop", StoredChoiceAxis())],
    uniques=True,
    title="Shop visitors",
    description=(
        "Visits per shop, and the distinct guests among them (a guest who comes back counts once), "
        "estimated within about 1%."
    ),
    category="Guests",
)

#: An averaged metrica: it counts visits too, so the mean length can be read back.
visit_length = AveragedMetrica(
    name="visit_length",
    axes=[("gender", Axis(choices=GENDERS))],
    multiplier=10,
    title="Visit length",
    description="How long each guest stayed, in minutes; averaged.",
    unit="min",
    category="Guests",
)

#: What ResponseTimeMiddleware records (registered here too, so pages can chart it by name
#: even before the middleware served its first request).
response_time = response_time_metrica()


# -- Shoppers: exact users, for the funnel and retention pages (staste.cohorts) -----------------
# Each of these keeps, per day, ISO week and month, a bitmap of the demo's user accounts that
# kicked it (``kick(user=...)``): who signed up, who came back, who ordered, and where.

#: One kick per account, the day it was made.
signed_up = Metrica(
    name="signed_up",
    axes=[],
    users=True,
    title="Sign-ups",
    description="One kick per new shopper account, the day it was made (exact users: funnels, retention).",
    category="Shoppers",
)

#: One kick per day a shopper comes to a shop.
shop_visit = Metrica(
    name="shop_visit",
    axes=[("shop", Axis(choices=SHOPS))],
    users=True,
    title="Shopper visits",
    description="A shopper's visit to a shop (exact users: who comes back, in the retention table).",
    category="Shoppers",
)

#: One kick per order; its bitmaps are kept per shop too, so a funnel can end at one shop's orders.
ordered = Metrica(
    name="ordered",
    axes=[("shop", Axis(choices=SHOPS))],
    users=True,
    users_axes=["shop"],
    title="Orders",
    description="A shopper's order, by shop (exact users, also per shop: the funnel's last step).",
    category="Shoppers",
)
