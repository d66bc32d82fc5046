"""The admin's forms for annotations and alerts: names picked from the registered metricas,
and an alert's rule checked against its metrica before it is saved."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.validators import URLValidator
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from staste import formats
from staste.alerts.rules import RuleError, check, measures_of
from staste.formats import QUICK_RANGES
from staste.models import Alert, Annotation
from staste.registration import registry


def metrica_choices(*keep: str) -> list[tuple[str, str]]:
    """The registered metricas as a select offers them ("Guest visits (guest_visits)"), and
    ``keep``: names saved before their metrica went away, so the form still shows them."""
    found = {m.name: f"{m.title} ({m.name})" if str(m.title) != m.name else m.name for m in registry}
    for name in keep:
        if name and name not in found:
            found[name] = name
    return sorted(found.items(), key=lambda item: item[1].lower())


def measure_choices(*keep: str) -> list[tuple[str, str]]:
    """Every measure a registered metrica offers (each rule is checked against its own)."""
    names: list[str] = []
    for metrica in registry:
        names += [name for name in measures_of(metrica) if name not in names]
    names += [name for name in keep if name and name not in names]
    return [(name, formats.measure_label(name)) for name in names]


class AnnotationForm(forms.ModelForm):
    metricas = forms.MultipleChoiceField(
        label=capfirst(gettext_lazy("metricas")),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("The charts that show it; none chosen means every chart."),
    )

    class Meta:
        model = Annotation
        fields = ["time", "text", "kind", "metricas"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.MultipleChoiceField, self.fields["metricas"]).choices = metrica_choices(
            *(self.instance.metricas or [])
        )

    def clean_metricas(self) -> list[str]:
        return sorted(self.cleaned_data["metricas"])


class AlertForm(forms.ModelForm):
    """An alert, its rule checked as the metrica's admin page reads the same query string."""

    metrica = forms.ChoiceField(label=capfirst(gettext_lazy("metrica")))
    measure = forms.ChoiceField(label=capfirst(gettext_lazy("measure")))
    # A plain field with an http(s) validator: the model's URLField would also take ftp://.
    webhook = forms.CharField(
        label=capfirst(gettext_lazy("webhook")),
        required=False,
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        widget=forms.URLInput(attrs={"size": 60}),
        help_text=Alert._meta.get_field("webhook").help_text,
    )

    class Meta:
        model = Alert
        fields = [
            "name", "enabled", "metrica", "filters", "measure", "window",
            "above", "below", "change", "min_count", "recipients", "webhook",
        ]  # fmt: skip
        widgets = {
            "filters": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "recipients": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "window": forms.TextInput(attrs={"list": "staste-windows", "size": 16}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["metrica"]).choices = [
            ("", "---------"),
            *metrica_choices(self.instance.metrica),
        ]
        cast(forms.ChoiceField, self.fields["measure"]).choices = measure_choices(self.instance.measure)
        self.fields["metrica"].help_text = Alert._meta.get_field("metrica").help_text
        self.fields["measure"].help_text = _("What the metrica offers: the measures of its admin page.")
        self.fields["window"].help_text = _("The last N units, as the admin's ranges: %(examples)s.") % {
            "examples": ", ".join(f"“{text}”" for text in QUICK_RANGES)
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        above, below, change = data.get("above"), data.get("below"), data.get("change")
        if above is None and below is None and change is None and not self.has_error("above"):
            self.add_error(None, _("Give at least one condition: above, below or a change."))
        if above is not None and below is not None and below >= above:
            self.add_error(
                "below",
                _("With both, the alert fires outside the band between them: below must be less than above."),
            )
        if change == 0:
            self.add_error("change", _("A change of 0% would always fire: give a percent, e.g. 50 or -50."))
        if all(name in data for name in ("metrica", "filters", "measure", "window")):
            try:
                state = check(data["metrica"], data["filters"], data["measure"], data["window"])
            except RuleError as exc:
                self.add_error(exc.field, str(exc))
            else:
                data["window"] = state.last  # as the admin writes it
        return data
