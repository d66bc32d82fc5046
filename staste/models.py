"""staste keeps its data in Redis, not in the database; this model has no table.

It exists so that the admin lists "Statistics" like any other app (the admin groups its
index and sidebar by registered models) and so that Django creates the permission
``staste.view_metrica`` that opens the staste section of the admin to staff.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Metrica(models.Model):
    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = _("metrica")
        verbose_name_plural = _("metricas")

    def __str__(self) -> str:
        return str(self.pk)
