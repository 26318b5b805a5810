from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("http_hooks", "0014_events"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="hook",
            index=models.Index(fields=["update_datetime"], name="hook_updated_idx"),
        ),
    ]
