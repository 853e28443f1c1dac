"""State changes for datasets; each appends its lineage event."""
from __future__ import annotations

import re

from django.db import transaction
from django.db.models import Max, QuerySet

from accounts import permissions
from accounts.models import Organisation, OrganisationKind
from miliao.errors import InvalidInput
from provenance.recorder import actor_of, record, subject_of

from .models import DataClass, Dataset

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{2,79}$")


@transaction.atomic(durable=True)
def register_dataset(
    *,
    actor,
    slug: str,
    title: str,
    data_class: str,
    title_en: str = "",
    description: str = "",
    holders: list[Organisation] | None = None,
) -> Dataset:
    """A steward registers a dataset for their own bureau."""
    permissions.check_register_dataset(actor, actor.organisation)
    if not _SLUG.match(slug or ""):
        raise InvalidInput("slug", "use 3-80 lowercase letters, digits and hyphens")
    if Dataset.objects.filter(slug=slug).exists():
        raise InvalidInput("slug", f"a dataset with slug {slug!r} already exists")
    if not (title or "").strip():
        raise InvalidInput("title", "a dataset needs a title")
    if data_class not in DataClass.values:
        raise InvalidInput("data_class", f"must be one of {', '.join(DataClass.values)}")
    holders = list(holders or [])
    for holder in holders:
        if holder.kind != OrganisationKind.DISTRICT:
            raise InvalidInput("holders", f"{holder.code} is not a district data holder")
    dataset = Dataset.objects.create(
        slug=slug,
        title=title.strip(),
        title_en=title_en.strip(),
        description=description.strip(),
        data_class=data_class,
        owner=actor.organisation,
    )
    dataset.holders.set(holders)
    record(
        "catalog.dataset_registered",
        actor=actor_of(actor),
        subject=subject_of(dataset),
        payload={
            "slug": slug,
            "data_class": data_class,
            "owner": actor.organisation.code,
            "holders": sorted(h.code for h in holders),
        },
    )
    return dataset


def next_version(dataset: Dataset, versions: QuerySet) -> int:
    """The next version number among a dataset's `versions` (corpus versions, policies).

    Locks the dataset row first, so two writers in concurrent transactions cannot take the
    same number; call it inside the action's transaction."""
    Dataset.objects.select_for_update().get(pk=dataset.pk)
    return (versions.aggregate(v=Max("version"))["v"] or 0) + 1
