"""Who may register and change datasets, and what of the catalogue each reader sees."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.models import OrganisationKind
from kernel.errors import Refused
from kernel.roles import Role, require_role, role_of

from .models import DataClass

# The two catalogues (catalog_audience).
MEMBERS, PUBLIC = "members", "public"


def check_register_dataset(user, owner) -> None:
    require_role(user, Role.STEWARD, doing=_("registering a dataset"))
    if owner.kind != OrganisationKind.BUREAU:
        raise Refused(_("datasets are owned by a bureau; %(owner)s is not one") % {"owner": owner})
    if owner.pk != user.organisation_id:
        raise Refused(_("stewards register datasets for their own bureau only, not for %(owner)s")
                      % {"owner": owner})


def check_manage_dataset(user, dataset) -> None:
    require_role(user, Role.STEWARD, doing=_("changing a dataset"))
    if dataset.owner_id != user.organisation_id:
        raise Refused(_("dataset %(dataset)s belongs to %(dataset_owner)s, not to your bureau")
                      % {"dataset": dataset.slug, "dataset_owner": dataset.owner})


def check_read_catalog(user) -> None:
    """Every logged-in role reads the catalogue: metadata, schema, DCAT and dataset pages."""
    require_role(user, *Role.values, doing=_("reading the catalogue"))


def catalog_audience(user) -> str:
    """Which catalogue a reader sees: "members" (anyone logged in: every dataset) or "public"
    (anonymous readers: the open-data catalogue that harvesters fetch). The catalogue's kept
    answers (discovery.answers) are shared within an audience, so nothing else about the reader
    may change what catalog_datasets returns."""
    return MEMBERS if role_of(user) is not None else PUBLIC


def catalog_datasets(user, qs: QuerySet) -> QuerySet:
    """The catalogue's entries a reader's audience sees (catalog_audience)."""
    return qs if catalog_audience(user) == MEMBERS else qs.filter(data_class=DataClass.OPEN)


def shows_real_rows(user, dataset) -> bool:
    """Whether a dataset page may show `user` real rows: only open data, and then only rows of
    a published release, which anyone logged in may download anyway. Anonymous visitors (the
    public catalogue) download nothing, conditional rows need a licence and compute-only rows
    never leave, so those pages show the schema and synthetic mock rows instead."""
    return role_of(user) is not None and dataset.data_class == DataClass.OPEN
