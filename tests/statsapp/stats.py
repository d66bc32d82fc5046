"""Metricas registered through autodiscovery, as a project's app would define them."""

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica

gender_age = Metrica(
    name="guest_visits_gender_age",
    axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis())],
    title="Guest visits",
    category="Guests",
)

pocket_money = AveragedMetrica(
    name="pocket_money",
    axes=[("gender", Axis(choices=["boy", "girl"]))],
    multiplier=100,
    category="Guests",
)
