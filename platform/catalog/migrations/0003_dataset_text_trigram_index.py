"""A trigram index over the catalogue's searched text (PostgreSQL only), so that `q` is one
indexed LIKE instead of five sequential ones. Trigrams need no tokenizer, so Chinese text is
indexed as it is. On SQLite (the demo) nothing is created and the same query scans.

The indexed expression is UPPER() of discovery.metadata.SearchText, as Django's icontains
writes it; it is frozen here, as a migration should be."""
from django.db import migrations

INDEX = "catalog_dataset_text_trgm"
TEXT = ('UPPER(("title" || chr(31) || "title_en" || chr(31) || "description" || chr(31) '
        '|| "description_en" || chr(31) || ("keywords")::text))')


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(f'CREATE INDEX "{INDEX}" ON "catalog_dataset" USING gin ({TEXT} gin_trgm_ops)')


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_dataset_metadata"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
