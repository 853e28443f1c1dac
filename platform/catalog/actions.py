"""State changes for datasets; each appends its lineage event."""
from __future__ import annotations

import re

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils.translation import gettext as _

from accounts.models import Organisation, OrganisationKind
from kernel.errors import InvalidInput
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of

from . import rules
from .models import DataClass, Dataset, Theme

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{2,79}$")
# Paths under /api/datasets/ that are not datasets: a dataset with such a slug would be unreachable.
RESERVED_SLUGS = frozenset({"dcat"})
MAX_KEYWORDS, MAX_KEYWORD_CHARS = 20, 50
# What update_dataset_metadata may change; slug, class, owner and holders stay fixed there.
METADATA_FIELDS = ("title", "title_en", "description", "description_en", "theme", "district", "keywords")


def clean_metadata(fields: dict) -> dict:
    """The descriptive fields, stripped and checked; raises InvalidInput naming the field."""
    unknown = sorted(set(fields) - set(METADATA_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], _("is not dataset metadata; change one of %(metadata_fields)s")
                                       % {"metadata_fields": ', '.join(METADATA_FIELDS)})
    clean = {}
    for name, value in fields.items():
        if name == "keywords":
            clean[name] = _keywords(value)
            continue
        if not isinstance(value, str):
            raise InvalidInput(name, _("must be text"))
        clean[name] = value.strip()
    if "title" in clean and not clean["title"]:
        raise InvalidInput("title", _("a dataset needs a title"))
    if "theme" in clean and clean["theme"] not in Theme.values:
        raise InvalidInput("theme", _("must be one of %(theme_values)s")
                                    % {"theme_values": ', '.join(Theme.values)})
    for name, limit in (("title", 200), ("title_en", 200), ("district", 100)):
        if len(clean.get(name, "")) > limit:
            raise InvalidInput(name, _("use at most %(limit)s characters") % {"limit": limit})
    return clean


def _keywords(value) -> list[str]:
    """A list of distinct keywords, in the order given."""
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("keywords", _("must be a list of words"))
    words = list(dict.fromkeys(k.strip() for k in value if k.strip()))
    if len(words) > MAX_KEYWORDS:
        raise InvalidInput("keywords", _("use at most %(max_keywords)s keywords")
                                       % {"max_keywords": MAX_KEYWORDS})
    long = [k for k in words if len(k) > MAX_KEYWORD_CHARS]
    if long:
        raise InvalidInput("keywords", _("%(long)r… is longer than %(max_keyword_chars)s characters")
                                       % {"long": long[0][:20], "max_keyword_chars": MAX_KEYWORD_CHARS})
    return words


@transaction.atomic(durable=True)
def register_dataset(
    *,
    actor,
    slug: str,
    title: str,
    data_class: str,
    title_en: str = "",
    description: str = "",
    description_en: str = "",
    theme: str = Theme.OTHER,
    district: str = "",
    keywords: list[str] | None = None,
    holders: list[Organisation] | None = None,
) -> Dataset:
    """A steward registers a dataset for their own bureau."""
    rules.check_register_dataset(actor, actor.organisation)
    if not _SLUG.match(slug or ""):
        raise InvalidInput("slug", _("use 3-80 lowercase letters, digits and hyphens"))
    if slug in RESERVED_SLUGS:
        raise InvalidInput("slug", _("%(slug)r is reserved for the catalog's own pages") % {"slug": slug})
    if Dataset.objects.filter(slug=slug).exists():
        raise InvalidInput("slug", _("a dataset with slug %(slug)r already exists") % {"slug": slug})
    metadata = clean_metadata({
        "title": title or "", "title_en": title_en, "description": description,
        "description_en": description_en, "theme": theme, "district": district, "keywords": list(keywords or []),
    })
    if data_class not in DataClass.values:
        raise InvalidInput("data_class", _("must be one of %(dataclass_values)s")
                                         % {"dataclass_values": ', '.join(DataClass.values)})
    holders = list(holders or [])
    for holder in holders:
        if holder.kind != OrganisationKind.DISTRICT:
            raise InvalidInput("holders", _("%(holder_code)s is not a district data holder")
                                          % {"holder_code": holder.code})
    dataset = Dataset.objects.create(slug=slug, data_class=data_class, owner=actor.organisation, **metadata)
    dataset.holders.set(holders)
    record(
        EventType.CATALOG_DATASET_REGISTERED,
        actor=actor_of(actor),
        subject=subject_of(dataset),
        payload={
            "slug": slug,
            "data_class": data_class,
            "owner": actor.organisation.code,
            "holders": sorted(h.code for h in holders),
            "theme": metadata["theme"],
            "district": metadata["district"],
        },
    )
    return dataset


@transaction.atomic(durable=True)
def update_dataset_metadata(*, actor, dataset: Dataset, **fields) -> Dataset:
    """A steward of the owning bureau changes a dataset's descriptive metadata (METADATA_FIELDS).
    The event holds the fields that changed, before and after; a call that changes nothing
    records nothing."""
    rules.check_manage_dataset(actor, dataset)
    clean = clean_metadata(fields)
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    changed = {name: value for name, value in clean.items() if getattr(dataset, name) != value}
    if not changed:
        return dataset
    before = {name: getattr(dataset, name) for name in changed}
    for name, value in changed.items():
        setattr(dataset, name, value)
    dataset.save(update_fields=sorted(changed))
    record(
        EventType.CATALOG_METADATA_UPDATED,
        actor=actor_of(actor),
        subject=subject_of(dataset),
        payload={"slug": dataset.slug, "before": before, "after": changed},
    )
    return dataset


def next_version(dataset: Dataset, versions: QuerySet) -> int:
    """The next version number among a dataset's `versions` (corpus versions, policies).

    Locks the dataset row first, so two writers in concurrent transactions cannot take the
    same number; call it inside the action's transaction."""
    Dataset.objects.select_for_update().get(pk=dataset.pk)
    return (versions.aggregate(v=Max("version"))["v"] or 0) + 1
