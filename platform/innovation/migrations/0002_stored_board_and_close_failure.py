"""The private board's ranks and a challenge's failed close become state (they were read back
from the event log); existing ones are taken from the events that recorded them."""
import json

from django.db import migrations, models


def from_events(apps, schema_editor):
    LineageEvent = apps.get_model("provenance", "LineageEvent")
    Submission = apps.get_model("innovation", "Submission")
    Challenge = apps.get_model("innovation", "Challenge")
    for event in LineageEvent.objects.filter(event_type="innovation.final_scored").order_by("seq"):
        pk = event.subject.partition(":")[2]
        rank = json.loads(event.payload).get("rank")
        if pk.isdigit() and rank is not None:
            Submission.objects.filter(pk=int(pk)).update(private_rank=rank)
    for event in LineageEvent.objects.filter(event_type="innovation.challenge_close_failed").order_by("seq"):
        pk = event.subject.partition(":")[2]
        if pk.isdigit():
            Challenge.objects.filter(pk=int(pk)).update(close_failed_at=event.recorded_at)


class Migration(migrations.Migration):

    dependencies = [
        ('innovation', '0001_initial'),
        ('provenance', '0005_hash_version'),
    ]

    operations = [
        migrations.AddField(
            model_name='challenge',
            name='close_failed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='submission',
            name='private_rank',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(from_events, migrations.RunPython.noop),
    ]
