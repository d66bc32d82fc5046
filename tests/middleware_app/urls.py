from django.urls import include, path

from tests.middleware_app import views

app_urls = ([path("item/<int:pk>/", views.ItemView.as_view(), name="item")], "shop")

urlpatterns = [
    path("hello/", views.hello, name="hello"),
    path("unnamed/", views.unnamed),
    path("redirect/", views.redirect, name="redirect"),
    path("boom/", views.boom, name="boom"),
    path("missing/", views.missing, name="missing"),
    path("teapot/", views.teapot, name="teapot"),
    path("async/", views.async_hello, name="async-hello"),
    path("async-boom/", views.async_boom, name="async-boom"),
    path("pid/", views.pid, name="pid"),
    path("shop/", include(app_urls)),
]
