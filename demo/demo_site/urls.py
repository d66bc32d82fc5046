"""The demo's pages: the public page, the form, the pages with database work (an N+1, a slow query,
a cached page), the seed's generic chart views, the admin."""

from django.contrib import admin
from django.urls import path
from guests import stats, views
from guests.csp import strict_csp

from staste.charts.views import LatestCountAndAverageChart, PieChart, TimelineChart, TimeserieChart

urlpatterns = [
    path("", views.public, name="home"),
    path("visit/", views.visit, name="visit"),
    path("shops/", views.shops, name="shops"),
    path("report/", views.report, name="report"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    # The seed's generic views, configured as the seed's README shows.
    path(
        "charts/gender/",
        strict_csp(PieChart.as_view(metrica=stats.guest_visits, axis_keyword="gender")),
        name="chart-gender",
    ),
    path(
        "charts/shops/",
        strict_csp(PieChart.as_view(metrica="pocket_money", axis_keyword="shop")),  # by registered name
        name="chart-shops",
    ),
    path("charts/timeline/", strict_csp(TimelineChart.as_view(metrica=stats.guest_visits)), name="chart-timeline"),
    path(
        "charts/ages/",
        strict_csp(TimeserieChart.as_view(metrica=stats.guest_visits, axis_keyword="gender", last="30 days")),
        name="chart-lines",
    ),
    path(
        "charts/speed/",
        strict_csp(LatestCountAndAverageChart.as_view(metrica=stats.response_time, axis_keyword="view")),
        name="chart-speed",
    ),
    path("admin/", admin.site.urls),
]
