"""Make the event table append-only in the database itself, so that even SQL that bypasses
Django cannot quietly change history. (A database superuser can still drop or disable the
triggers, or TRUNCATE the table, which test teardown needs; the hash chain detects the
former and anchoring the chain head on a blockchain the latter.)"""
from django.db import migrations

POSTGRES = [
    """
    CREATE OR REPLACE FUNCTION provenance_lineage_event_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'lineage events are append-only: % is refused', TG_OP;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER lineage_event_append_only
    BEFORE UPDATE OR DELETE ON provenance_lineageevent
    FOR EACH ROW EXECUTE FUNCTION provenance_lineage_event_append_only();
    """,
]
SQLITE = [
    """
    CREATE TRIGGER lineage_event_no_update BEFORE UPDATE ON provenance_lineageevent
    BEGIN SELECT RAISE(ABORT, 'lineage events are append-only: UPDATE is refused'); END;
    """,
    """
    CREATE TRIGGER lineage_event_no_delete BEFORE DELETE ON provenance_lineageevent
    BEGIN SELECT RAISE(ABORT, 'lineage events are append-only: DELETE is refused'); END;
    """,
]


def install(apps, schema_editor):
    statements = POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in statements:
        schema_editor.execute(sql, params=None)  # None: no placeholder parsing of plpgsql's %


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS lineage_event_append_only ON provenance_lineageevent")
        schema_editor.execute("DROP FUNCTION IF EXISTS provenance_lineage_event_append_only()")
    else:
        schema_editor.execute("DROP TRIGGER IF EXISTS lineage_event_no_update")
        schema_editor.execute("DROP TRIGGER IF EXISTS lineage_event_no_delete")


class Migration(migrations.Migration):
    dependencies = [("provenance", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
