from django.urls import path

from staste.charts.views import PieChart
from tests.insight_app import views

urlpatterns = [
    path("none/", views.none, name="none"),
    path("same/", views.same, name="same"),
    path("distinct/", views.distinct, name="distinct"),
    path("n-plus-one/", views.n_plus_one, name="n-plus-one"),
    path("raw/", views.raw, name="raw"),
    path("thread/", views.in_thread, name="thread"),
    path("async-same/", views.async_same, name="async-same"),
    path("cached/", views.cached, name="cached"),
    path("async-cached/", views.async_cached, name="async-cached"),
    path("failing/", views.failing, name="failing"),
    # staste's own chart view, on a project's page: the site's traffic, not staste's admin.
    path("chart/", PieChart.as_view(metrica="guest_visits_gender_age", axis_keyword="gender"), name="chart"),
]
