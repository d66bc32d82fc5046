"""Charts of metricas: ``staste.charts.spec`` turns queries into the JSON chart specs that
``staste/static/staste/charts.js`` draws; the admin, the template tags and the generic views
all build their charts with it, so one metrica looks the same everywhere."""
