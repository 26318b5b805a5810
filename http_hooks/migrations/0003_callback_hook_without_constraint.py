import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("http_hooks", "0002_default_signals")]

    operations = [
        migrations.AlterField(
            model_name="callback",
            name="hook",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="callbacks",
                to="http_hooks.hook",
                verbose_name="hook",
            ),
        ),
    ]
