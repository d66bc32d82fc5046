from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("mw/", include("tests.middleware_app.urls")),
    path("perf/", include("tests.insight_app.urls")),
]
