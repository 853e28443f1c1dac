"""Each event says which canonical JSON its hash is computed over. Events already in the
log were hashed under version 1 (Python's json.dumps); new ones are written under version 2
(RFC 8785) by the recorder, which always names the version, so the field has no default.
On SQLite the added column rebuilds the table, which takes the append-only triggers with it:
they are put back with 0004's function."""
import importlib

from django.db import migrations, models

reinstall = importlib.import_module("provenance.migrations.0004_append_only_again").reinstall

class Migration(migrations.Migration):
    dependencies = [("provenance", "0004_append_only_again")]
    operations = [
        migrations.AddField(
            model_name="lineageevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(default=1, verbose_name="哈希版本"),
            preserve_default=False,
        ),
        migrations.RunPython(reinstall, migrations.RunPython.noop),
    ]
