"""Put the append-only triggers back: on SQLite, 0003's field changes rebuild the event
table (create, copy, drop, rename), and a dropped table takes its triggers with it."""
import importlib

from django.db import migrations

append_only = importlib.import_module("provenance.migrations.0002_append_only")


def reinstall(apps, schema_editor):
    append_only.uninstall(apps, schema_editor)
    append_only.install(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("provenance", "0003_anchoring")]
    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
