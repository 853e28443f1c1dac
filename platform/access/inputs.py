"""What an application may ask for, checked: its purpose, the release and its columns, the
area, the duration and the people named on it. Each check raises InvalidInput naming the
first bad field; access.actions calls them before it writes."""
from __future__ import annotations

import math
import re

from django.utils.translation import gettext as _

from accounts.models import Role, User
from catalog.models import DataClass, Dataset
from corpora import grid
from kernel.errors import InvalidInput
from releases.models import ReleaseStatus

from . import licensing
from .models import PurposeCategory
from .packages import release_bbox, requestable_fields

PURPOSE_MIN, PURPOSE_MAX = 10, 4000
DURATION_MIN, DURATION_MAX, DURATION_DEFAULT = 1, 365, 90
PEOPLE_MAX = 50
FIELDS_MAX = 200
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def clean_request(
    *, actor, dataset: Dataset, release, purpose_category, purpose, fields, area, duration_days, people
) -> dict:
    """An application's fields, checked; raises InvalidInput naming the first bad one."""
    purpose_category = purpose_category or PurposeCategory.OTHER
    if purpose_category not in PurposeCategory.values:
        raise InvalidInput("purpose_category", _("choose one of %(purposecategory_values)s")
                                               % {"purposecategory_values": ', '.join(PurposeCategory.values)})
    purpose = (purpose or "").strip()
    if not PURPOSE_MIN <= len(purpose) <= PURPOSE_MAX:
        raise InvalidInput("purpose", _("state the purpose in %(purpose_min)s to %(purpose_max)s characters")
                                      % {"purpose_min": PURPOSE_MIN, "purpose_max": PURPOSE_MAX})
    if dataset.data_class == DataClass.OPEN:
        raise InvalidInput("dataset", _("%(dataset)s is open: download it without applying")
                                      % {"dataset": dataset.slug})
    if release is not None:
        if release.corpus.dataset_id != dataset.pk:
            raise InvalidInput(
                "release", _("release #%(release)s is of %(release_corpus_dataset_slug)s, not of "
                             "%(dataset)s")
                           % {"release": release.pk,
                              "release_corpus_dataset_slug": release.corpus.dataset.slug,
                              "dataset": dataset.slug}
            )
        if release.status != ReleaseStatus.PUBLISHED:
            raise InvalidInput("release", _("release #%(release)s is not published")
                                          % {"release": release.pk})
        if not release.outputs.get("geoparquet"):
            raise InvalidInput(
                "release", _("release #%(release)s has no GeoParquet output to cut packages from")
                           % {"release": release.pk}
            )
    fields = clean_fields(fields, release)
    area = clean_area(area, release)
    if duration_days is None:
        duration_days = DURATION_DEFAULT
    if (
        isinstance(duration_days, bool)
        or not isinstance(duration_days, int)
        or not (DURATION_MIN <= duration_days <= DURATION_MAX)
    ):
        raise InvalidInput("duration_days", _("a whole number of days from %(duration_min)s to "
                                              "%(duration_max)s")
                                            % {"duration_min": DURATION_MIN, "duration_max": DURATION_MAX})
    people = clean_people(actor, people)
    return {
        "release": release,
        "purpose_category": purpose_category,
        "purpose": purpose,
        "fields": fields,
        "area": area,
        "duration_days": duration_days,
        "people": people,
    }


def clean_fields(fields, release) -> list[str]:
    if fields is None:
        return []
    if isinstance(fields, str) or not isinstance(fields, (list, tuple)):
        raise InvalidInput("fields", _("a list of column names"))
    if len(fields) > FIELDS_MAX:
        raise InvalidInput("fields", _("at most %(fields_max)s columns") % {"fields_max": FIELDS_MAX})
    names = []
    for name in fields:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise InvalidInput("fields", _("%(name)r is not a column name") % {"name": name})
        if name not in names:
            names.append(name)
    if release is not None:
        offered = requestable_fields(licensing.release_source(release))
        unknown = [n for n in names if n not in offered]
        if unknown:
            raise InvalidInput(
                "fields",
                _("release #%(release)s has no column %(unknown)r; it offers %(offered)s")
                % {"release": release.pk, "unknown": unknown[0], "offered": ', '.join(offered)},
            )
    return names


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clean_area(area, release) -> dict | None:
    """{"bbox": [w, s, e, n]} or {"grid_code": "G..."}, as a box in CGCS2000 degrees."""
    if area is None:
        return None
    if not isinstance(area, dict) or len(area) != 1 or not {"bbox", "grid_code"} & set(area):
        raise InvalidInput("area", _("give either {\"bbox\": [west, south, east, north]} or "
                                     "{\"grid_code\": \"G…\"}"))
    if "bbox" in area:
        box = area["bbox"]
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_number(v) for v in box):
            raise InvalidInput("area", _("bbox is four numbers: west, south, east, north (degrees)"))
        west, south, east, north = (float(v) for v in box)
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise InvalidInput("area", _("bbox needs -180 ≤ west < east ≤ 180 and -90 ≤ south < north ≤ 90"))
        cleaned = {"bbox": [west, south, east, north]}
    else:
        code = area["grid_code"]
        try:
            if not isinstance(code, str) or len(code) < 2:
                raise ValueError(f"{code!r} is not a grid code")
            lon_min, lat_min, _h, lon_max, lat_max, _H = (float(v) for v in grid.decode(code))
        except ValueError as exc:
            raise InvalidInput("area", _("grid_code: %(exc)s") % {"exc": exc}) from None
        cleaned = {"grid_code": code, "bbox": [lon_min, lat_min, lon_max, lat_max]}
    if release is not None:
        w, s, e, n = cleaned["bbox"]
        rw, rs, re_, rn = release_bbox(licensing.release_source(release))
        if w > re_ or e < rw or s > rn or n < rs:
            raise InvalidInput("area", _("the area does not overlap release #%(release)s")
                                       % {"release": release.pk})
    return cleaned


def clean_people(actor, people) -> list:
    if people is None:
        return [actor]
    people = list(people)
    if not people:
        raise InvalidInput("people", _("name at least one person who will use the data"))
    if len(people) > PEOPLE_MAX:
        raise InvalidInput("people", _("at most %(people_max)s people") % {"people_max": PEOPLE_MAX})
    for person in people:
        if not isinstance(person, User):
            raise InvalidInput("people", _("%(person)r is not a user") % {"person": person})
        if person.organisation_id != actor.organisation_id:
            raise InvalidInput("people", _("%(person_username)s is not in %(actor_organisation)s")
                                         % {"person_username": person.username,
                                            "actor_organisation": actor.organisation})
        if not person.is_active or person.role != Role.APPLICANT:
            raise InvalidInput("people", _("%(person_username)s is not an active applicant")
                                         % {"person_username": person.username})
    return list({p.pk: p for p in people}.values())
