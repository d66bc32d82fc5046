"""The shop's own database, small on purpose: shops, and the visits noted in them.

The demo's statistics live in Redis; these tables exist so that its pages run real SQL, which
staste's database instrumentation counts per view (the Performance pages in the admin).
"""

from django.db import models


class Shop(models.Model):
    name = models.CharField(max_length=40, unique=True)

    def __str__(self) -> str:
        return self.name


class Visit(models.Model):
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="visits")
    guest = models.PositiveIntegerField()
    spent = models.DecimalField(max_digits=8, decimal_places=2)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"guest {self.guest} at {self.shop_id}"
