"""Ingesting a corpus version, from an upload or from the synthetic district generator.

Both run as a tracked Celery task: the work writes the version's file under a name of its
own, and the commit creates the CorpusVersion row and its event in one transaction."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from catalog import rules as catalog_rules
from catalog.actions import next_version
from catalog.models import Dataset
from kernel.errors import InvalidInput
from kernel.events import EventType
from kernel.paths import state_path
from progress.actions import by_name, queue_task
from progress.models import TaskProgress
from provenance.recorder import actor_of, record, subject_of

from .models import CorpusVersion
from .store import COVER_LEVEL, schema_fields

INGEST_TASK_KIND = "corpora.ingest"
MAX_GENERATED_ROOMS = 2_000_000


def corpus_dir() -> Path:
    return state_path("corpora")


def start_upload_ingest(*, actor, dataset: Dataset, upload, declared_crs: str = "") -> TaskProgress:
    """Keep the uploaded file and queue its ingest. `upload` is a Django UploadedFile."""
    catalog_rules.check_manage_dataset(actor, dataset)
    name = Path(upload.name).name
    if not name:
        raise InvalidInput("file", _("choose a file to upload"))
    incoming = corpus_dir() / "incoming" / f"{uuid.uuid4().hex}-{name}"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    with open(incoming, "wb") as f:
        for chunk in upload.chunks():
            f.write(chunk)
    return _queue(actor, dataset, {"upload": str(incoming), "name": name, "declared_crs": declared_crs.strip() or None})


def start_generated_ingest(*, actor, dataset: Dataset, seed: int, rooms: int) -> TaskProgress:
    catalog_rules.check_manage_dataset(actor, dataset)
    if not 100 <= rooms <= MAX_GENERATED_ROOMS:
        raise InvalidInput("rooms", _("generate between 100 and %(max_generated_rooms)s rooms")
                                    % {"max_generated_rooms": f"{MAX_GENERATED_ROOMS:,}"})
    if not 0 <= seed < 2**32:
        raise InvalidInput("seed", _("use a seed between 0 and 2**32 - 1"))
    return _queue(actor, dataset, {"generator": {"seed": seed, "rooms": rooms}})


def _queue(actor, dataset: Dataset, source: dict) -> TaskProgress:
    return queue_task(
        INGEST_TASK_KIND,
        label=gettext_noop("导入数据 %(dataset)s"),
        label_args={"dataset": dataset.slug},
        actor=actor,
        dispatch=by_name("corpora.ingest", dataset.pk, source),
    )


def ingest_lost(task, reason: str) -> None:
    """The worker of an ingest died (progress.recover_lost_tasks): its half-written file goes;
    no version was recorded, and the steward imports again."""
    for partial in corpus_dir().glob(f"*/task-{task.pk}.parquet"):
        partial.unlink(missing_ok=True)


def record_corpus_version(*, actor, dataset: Dataset, file: Path, source: str, source_crs: str, summary) -> CorpusVersion:
    """Called inside the transaction that finishes the ingest task."""
    with transaction.atomic():
        version = next_version(dataset, dataset.versions.all())
        final = corpus_dir() / dataset.slug / f"v{version}.parquet"
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(file, final)
        corpus = CorpusVersion.objects.create(
            dataset=dataset,
            version=version,
            source=source,
            source_crs=source_crs,
            units=summary.units,
            kinds=summary.kinds,
            extent=[round(v, 7) for v in summary.extent],
            cell_level=COVER_LEVEL,
            cells=sorted(summary.cells),
            fields=schema_fields(final),
            sha256=summary.sha256,
            path=str(final.relative_to(settings.STATE_DIR)),
            created_by=actor,
        )
        record(
            EventType.CORPORA_VERSION_INGESTED,
            actor=actor_of(actor),
            subject=subject_of(corpus),
            payload={
                "dataset": dataset.slug,
                "version": version,
                "source": source,
                "source_crs": source_crs,
                "units": summary.units,
                "kinds": summary.kinds,
                "sha256": summary.sha256,
            },
            inputs=[subject_of(dataset)],
        )
    return corpus
