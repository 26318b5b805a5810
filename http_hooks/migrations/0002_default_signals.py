from django.db import migrations

MODEL_SIGNALS = [
    f"django.db.models.signals.{name}"
    for name in (
        "pre_init",
        "post_init",
        "pre_save",
        "post_save",
        "pre_delete",
        "post_delete",
        "m2m_changed",
    )
]


def create_signals(apps, schema_editor):
    Signal = apps.get_model("http_hooks", "Signal")
    db = schema_editor.connection.alias
    for path in MODEL_SIGNALS:
        Signal.objects.using(db).get_or_create(signal=path)


def remove_signals(apps, schema_editor):
    Signal = apps.get_model("http_hooks", "Signal")
    Signal.objects.using(schema_editor.connection.alias).filter(
        signal__in=MODEL_SIGNALS, hooks__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("http_hooks", "0001_initial")]

    operations = [migrations.RunPython(create_signals, remove_signals)]
