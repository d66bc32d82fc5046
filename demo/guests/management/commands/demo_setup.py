"""``manage.py demo_setup``: what ``make demo`` runs after ``migrate``; safe to run again.

1. Creates a superuser (``admin``) with a generated password, prints it, and keeps it in
   ``<STASTE_DATA_DIR>/demo-login.txt`` so later runs can print it again;
2. fills a year of sample data when the demo's metricas are empty (``--no-data`` skips it),
   a month of sample requests and job runs for the admin's Performance pages, and the shops and
   visits the demo's own pages query, and shopper accounts who sign up, visit and order (the
   Funnel and Retention pages);
3. adds a note on the charts three days ago and an alert on ``guest_visits`` (once), and prints
   how to see the alert fire.
"""

import datetime
import random
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from guests import shoppers, stats, traffic
from staste import annotations, conf, connection, timed
from staste.exceptions import RedisUnavailable
from staste.models import Alert, Annotation

#: The demo's alert: quiet with the sample data (a few 18-year-old boys a day), firing once the
#: guest form, whose defaults are a boy of 18, is sent four times within an hour.
ALERT = {
    "name": "More than 3 boys of 18 in an hour",
    "metrica": "guest_visits",
    "filters": {"gender": "boy", "age": 18},
    "measure": "total",
    "window": "60 minutes",
    "above": 3,
    "recipients": "",  # the ADMINS: printed on the terminal by the console e-mail backend
}
NOTE = "Newsletter sent"
#: The demo's funnel: sign-up, a visit, an order from the candy shop, within two weeks.
FUNNEL = "/admin/staste/funnel/?step=signed_up&step=shop_visit&step=ordered%3Ashop%3Dcandy&within=14"


def login_file() -> Path:
    return conf.data_dir() / "demo-login.txt"


class Command(BaseCommand):
    help = "Prepare the demo: a staff login and, when there is none yet, a year of sample data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None, help="default: a generated one, printed")
        parser.add_argument("--no-data", action="store_true", help="do not fill sample data")
        parser.add_argument("--days", type=int, default=365, help="days of sample data to fill (default 365)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        guests = self.count_guests()  # first, so that a Redis that cannot be reached stops everything
        username, password = self.ensure_login(options["username"], options["password"])
        if not options["no_data"]:
            self.ensure_data(guests, options["days"], options["no_progress"])
        self.ensure_watching()
        self.stdout.write("")
        url = settings.DEMO_URL
        self.stdout.write(self.style.SUCCESS(f"The demo is ready: {url}/"))
        self.stdout.write(f"  admin: {url}/admin/staste/  user: {username}  password: {password}")
        self.stdout.write(
            f"  alert: send the form at {url}/visit/ four times as it is (a boy of 18), then run\n"
            "         .venv/bin/python demo/manage.py staste alerts\n"
            f"         and see {ALERT['name']!r} fire: its mail is printed on the terminal."
        )
        self.stdout.write(f"  funnel: {url}{FUNNEL}  (who signed up, came, ordered sweets)")
        self.stdout.write(f"  retention: {url}/admin/staste/retention/?first=signed_up&then=shop_visit")

    def ensure_watching(self) -> None:
        """The demo's alert and a note on its charts, once (running again changes nothing)."""
        if not Alert.objects.filter(name=ALERT["name"]).exists():
            Alert.objects.create(**ALERT)
            self.stdout.write(f"Created the alert {ALERT['name']!r} (admin: /admin/staste/alert/).")
        if not Annotation.objects.filter(text=NOTE).exists():
            annotations.annotate(NOTE, when=conf.local() - datetime.timedelta(days=3, hours=5))

    def ensure_login(self, username: str, password: str | None) -> tuple[str, str]:
        """Create the superuser once; later runs print the password kept then (if still valid)."""
        User = get_user_model()
        saved = login_file()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = password or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(f"{username}\n{password}\n", encoding="utf-8")
            saved.chmod(0o600)
            self.stdout.write(f"Created the staff superuser {username!r}.")
            return username, password
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
            return username, password
        known = saved.read_text(encoding="utf-8").split("\n") if saved.is_file() else []
        if len(known) >= 2 and known[0] == username and user.check_password(known[1]):
            self.stdout.write(f"The staff superuser {username!r} exists already.")
            return username, known[1]
        self.stdout.write(f"The user {username!r} exists with a password of its own.")
        return username, f"(unchanged; set one with `python demo/manage.py changepassword {username}`)"

    def count_guests(self) -> int:
        try:
            return stats.guest_visits.total()
        except RedisUnavailable as exc:
            raise CommandError(
                f"{exc}\nStart that Redis server, or unset STASTE_REDIS_URL to use the embedded one."
            ) from None

    def ensure_data(self, guests: int, days: int, no_progress: bool) -> None:
        self.ensure_traffic()
        self.ensure_shoppers()
        if guests:
            self.stdout.write(
                f"{connection.describe()} holds {guests:,} guests already; add more with "
                "`python demo/manage.py staste_fake_data`."
            )
            return
        self.stdout.write(f"Filling {days} days of sample data into {connection.describe()}...")
        call_command("staste_fake_data", days=days, no_progress=no_progress, stdout=self.stdout, stderr=self.stderr)

    def ensure_shoppers(self) -> None:
        """Shopper accounts and their sign-ups, visits and orders, for the Funnel and Retention pages (once)."""
        if stats.signed_up.total():
            return
        accounts, kicks = shoppers.fill()
        self.stdout.write(
            f"Added {accounts:,} shopper accounts and {kicks:,} of their sign-ups, visits and orders "
            "(Funnel and Retention pages)."
        )

    def ensure_traffic(self) -> None:
        """The shops the pages query, and a month of sample requests and jobs (once)."""
        seeded = traffic.seed_database(random.Random(7))
        if seeded:
            self.stdout.write(f"Added {len(traffic.fakedata.SHOPS)} shops and {seeded} visits to the database.")
        if stats.response_time.count():
            return
        with timed("demo.sample_traffic"):  # a timed job of its own, on the Jobs page
            writer = traffic.fill(days=30, seed=11)
        self.stdout.write(
            f"Added a month of sample requests and job runs for the Performance pages ({writer.kicks:,} kicks)."
        )
