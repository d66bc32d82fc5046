from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="Shop",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name="Visit",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("guest", models.PositiveIntegerField()),
                ("spent", models.DecimalField(decimal_places=2, max_digits=8)),
                ("at", models.DateTimeField(db_index=True)),
                (
                    "shop",
                    models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="visits", to="guests.shop"),
                ),
            ],
            options={"ordering": ["-at"]},
        ),
    ]
