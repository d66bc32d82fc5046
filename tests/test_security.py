"""The access rules of docs/security.md, checked on every URL staste adds to the admin (found by
walking the admin's URL patterns, so a URL added later is checked too)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import URLPattern, URLResolver

from staste import keys
from staste.admin import SectionAdmin
from staste.metrica import NAME_PATTERN, Metrica
from tests.statsapp.stats import gender_age

pytestmark = pytest.mark.django_db


def staste_urls() -> list[str]:
    """Every admin view of staste, filled in with a registered metrica's name (and a view's name
    for a view's Performance page).  (The Metrica
    model's own admin URLs include no view: staste's pages stand in for its changelist.)"""
    found = []
    for pattern in admin.site.get_urls():
        if isinstance(pattern, URLPattern) and (pattern.name or "").startswith("staste_"):
            route = str(pattern.pattern).replace("<str:name>", gender_age.name)
            if route.startswith("staste/performance/view/"):
                route += "?view=x"  # a view's Performance page says which view in its query string
            found.append("/admin/" + route)
        elif isinstance(pattern, URLResolver) and str(pattern.pattern).startswith("staste/"):
            # Only the pages of staste's own models (annotations, alerts), which Django's admin
            # protects, and staste's SectionAdmin with staste.view_metrica on top.
            protected = {
                f"staste/{model._meta.model_name}/"
                for model, model_admin in admin.site._registry.items()
                if isinstance(model_admin, SectionAdmin)
            }
            assert not pattern.url_patterns or str(pattern.pattern) in protected, f"{pattern}: not protected"
    return sorted(set(found))


def user(name: str, *, staff: bool, permitted: bool, active: bool = True, superuser: bool = False) -> Client:
    account = User.objects.create_user(name, is_staff=staff, is_active=active, is_superuser=superuser)
    if permitted:
        account.user_permissions.add(Permission.objects.get(content_type__app_label="staste", codename="view_metrica"))
    client = Client()
    client.force_login(account)
    return client


def test_staste_adds_its_urls_to_the_admin() -> None:
    urls = staste_urls()
    assert "/admin/staste/" in urls
    assert f"/admin/staste/{gender_age.name}/" in urls
    assert len(urls) >= 4  # the dashboard, a metrica's page and its JSON and CSV


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", "login"),
        ("staff without the permission", 403),
        ("permitted but not staff", "login"),
        ("permitted staff, inactive", "login"),
        ("permitted staff", 200),
        ("superuser", 200),
    ],
)
def test_every_staste_url_requires_active_staff_with_the_view_permission(who, expected) -> None:
    gender_age.kick(gender="girl", age=18)
    clients = {
        "anonymous": lambda: Client(),
        "staff without the permission": lambda: user("plain", staff=True, permitted=False),
        "permitted but not staff": lambda: user("outsider", staff=False, permitted=True),
        "permitted staff, inactive": lambda: user("gone", staff=True, permitted=True, active=False),
        "permitted staff": lambda: user("viewer", staff=True, permitted=True),
        "superuser": lambda: user("root", staff=True, permitted=False, superuser=True),
    }
    client = clients[who]()
    for url in staste_urls():
        response = client.get(url)
        if expected == "login":
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url
        elif url.endswith("/funnel/lost.csv") and expected == 200:
            # (staste.cohorts) past the section's permission, the ids of users need the user
            # model's view permission (403) and the funnel's query (400 without one)
            assert response.status_code == (400 if who == "superuser" else 403), (url, response.status_code)
        else:
            assert response.status_code == expected, (url, response.status_code)
        if response.status_code == 200 and url.endswith((".json", ".csv")):
            assert response["X-Content-Type-Options"] == "nosniff"


def test_the_admin_index_lists_statistics_only_for_those_allowed() -> None:
    assert "/admin/staste/" in user("viewer", staff=True, permitted=True).get("/admin/").content.decode()
    assert "/admin/staste/" not in user("plain", staff=True, permitted=False).get("/admin/").content.decode()


def test_no_admin_url_names_a_redis_key() -> None:
    """A metrica page is found through the registry; an unknown or key-like name is a 404."""
    client = user("viewer", staff=True, permitted=True)
    for name in ("nosuch", "guest_visits_gender_age}:all", "*", "..", "staste:{x}:all"):
        assert client.get(f"/admin/staste/{name}/").status_code == 404


@pytest.mark.parametrize("name", ["a}b", "{x}", "a b", "x" * 201, "", "é", "a/b", "a:b"])
def test_metrica_names_cannot_reach_outside_their_own_keys(name) -> None:
    assert not NAME_PATTERN.match(name)
    with pytest.raises(ValueError, match="metrica name"):
        Metrica(name=name, axes=[])


def test_user_values_live_in_fields_and_members_never_in_key_names() -> None:
    base = keys.metrica_base("staste", "m")
    for hostile in ("}|*", "a/b", "\\p", "=x", "!", "\n"):
        part = keys.value_part(hostile)
        assert "|" not in part and "/" not in part  # cannot fake another axis or a path level
        assert keys.decode_part(part) == hostile
    assert keys.choices_key(base, "axis") == "staste:{m}:choices:axis"  # axis names come from code


# -- the least-privilege Redis user of docs/deployment.md -------------------------------------------

#: ACL SETUSER rules for staste's Redis user (documented in docs/deployment.md): its own keys
#: only, data and script commands, no admin or dangerous commands (INFO for `manage.py staste check`).
ACL_RULES = (
    "on", ">s3cret", "resetkeys", "~{prefix}:*", "resetchannels", "-@all",
    "+@read", "+@write", "+@scripting", "+@connection", "-@dangerous",
    "+info", "+cluster|slots", "+cluster|shards", "+cluster|nodes", "+cluster|info",
)  # fmt: skip


def exercise(url: str, settings) -> dict[str, object]:
    """Kick (synchronously and buffered) and read back through staste as the restricted user."""
    import datetime

    from staste import buffer, connection
    from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
    from staste.metrica import AveragedMetrica

    settings.STASTE_REDIS_URL = url
    connection.reset()
    buffer.reset()
    metrica = AveragedMetrica(
        name="restricted", axes=[("a", Axis(choices=["x", "y"])), ("b", StoredChoiceAxis()), ("c", HierarchicalAxis())]
    )
    metrica.kick(3, datetime.datetime(2024, 1, 1), a="x", b="q", c=("p", "q"))
    metrica.kick(5, datetime.datetime(2024, 1, 2), a="y", b="r", c=("p",), buffered=True)
    buffer.flush()  # (or the background thread did)
    assert buffer.stats()["pending"] == 0 and buffer.stats()["dropped"] == 0
    found = {
        "total": metrica.total(),
        "years": metrica.iterate(),
        "b": metrica.iterate("b"),
        "c": metrica.filter(c=("p",)).iterate("c"),
        "days": [v for _, v in metrica.timeserie(datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 2), "day")],
    }
    connection.reset()
    return found


EXPECTED = {"total": 8, "years": [(2024, 8)], "b": [("q", 3), ("r", 5)], "c": [(("p", "q"), 3)], "days": [3, 5]}


def test_the_documented_acl_is_enough_on_one_server(settings, prefix) -> None:
    import redis

    from staste.testing import RedisServer

    with RedisServer() as server:
        admin_client = redis.Redis(port=server.port)
        admin_client.execute_command("ACL", "SETUSER", "staste", *(rule.format(prefix=prefix) for rule in ACL_RULES))
        assert exercise(f"redis://staste:s3cret@127.0.0.1:{server.port}/0", settings) == EXPECTED
        refused = admin_client.execute_command("ACL", "LOG")
        # Nothing was refused but redis-py's optional CLIENT SETINFO on connect (Redis 6.2 files it
        # under @dangerous; 7.0 does not know it; either way redis-py carries on without it) and
        # the buffer's CONFIG GET of hash-max-*-entries (then Redis' default is assumed).
        optional = (b"client", b"config|get", b"config")
        assert [entry for entry in refused if entry[b"object"] not in optional] == []
        config = [entry for entry in refused if entry[b"object"] in (b"config|get", b"config")]
        assert sum(int(entry[b"count"]) for entry in config) <= 1  # asked once per client
        restricted = redis.Redis(port=server.port, username="staste", password="s3cret")
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.set("elsewhere", "1")  # keys outside its prefix
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.flushall()


def test_the_documented_acl_is_enough_on_a_cluster(settings, prefix) -> None:
    import redis

    from staste.testing import RedisCluster, cluster_support

    if cluster_support():
        pytest.skip(cluster_support())
    with RedisCluster() as cluster:
        for node in cluster.nodes:
            client = redis.Redis(port=node.port)
            client.execute_command("ACL", "SETUSER", "staste", *(rule.format(prefix=prefix) for rule in ACL_RULES))
            client.close()
        assert exercise(cluster.url.replace("://", "://staste:s3cret@"), settings) == EXPECTED
