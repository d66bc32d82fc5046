from decimal import Decimal

from django import forms

from guests.stats import GENDERS, SHOPS


class GuestForm(forms.Form):
    """One guest's visit: what the host notes at the door."""

    gender = forms.ChoiceField(choices=[(g, g) for g in GENDERS])
    age = forms.IntegerField(min_value=0, max_value=130, initial=18)
    shop = forms.ChoiceField(choices=[(s, s) for s in SHOPS], label="Where the pocket money went")
    spent = forms.DecimalField(min_value=Decimal(0), max_value=Decimal(10_000), decimal_places=2, initial=Decimal(5))
    minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=45, label="Minutes stayed")
    card = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        label="Guest card number (optional)",
        help_text="A guest who shows the same card again is one guest among the shop's visitors. Empty: a new guest.",
    )
