"""Who builds and publishes releases of which data, who sees them, and whose pages may draw a
release's own geometry."""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from catalog.models import DataClass
from catalog.rules import check_manage_dataset
from kernel.errors import Refused
from kernel.roles import Role, allowed, has_role, reads_everything, require_role, role_of

from .models import ReleaseStatus
from .pipeline import UNSHIFTED


def visible_releases(user, qs: QuerySet) -> QuerySet:
    """Published releases are for everyone; unpublished ones for their bureau and auditors."""
    if reads_everything(user):
        return qs
    published = Q(status=ReleaseStatus.PUBLISHED)
    if has_role(user, Role.STEWARD):
        return qs.filter(published | Q(corpus__dataset__owner_id=user.organisation_id))
    return qs.filter(published)


def sees_release_geometry(user, release) -> bool:
    """Whether a page may draw a release's own geometry for ``user``: only what they could
    download. Anyone logged in downloads a published open release; the owning bureau's
    stewards have the release's files. A licence holder sees their own fingerprinted package
    instead (access.licensing.licence_to_view); everyone else, where the release lies, to
    the grid cell."""
    if role_of(user) is None:
        return False
    dataset = release.corpus.dataset
    if dataset.data_class == DataClass.OPEN and release.status == ReleaseStatus.PUBLISHED:
        return True
    return allowed(check_manage_dataset, user, dataset)


def check_release_work(user) -> None:
    """Release policies, previews and builds are stewards' work: asked before a request is
    parsed; which dataset's is asked (check_build_release, check_manage_dataset) once it is."""
    require_role(user, Role.STEWARD, doing=gettext("writing release policies and building releases"))


def check_leaves_the_platform(dataset) -> None:
    """Compute-only rows never become a release file, whoever asks."""
    if dataset.data_class == DataClass.COMPUTE_ONLY:
        raise Refused(
            f"{dataset.slug} is compute-only (可用不可见): its rows never become a release file; "
            "jobs read them in the privacy sandbox"
        )


def check_build_release(user, dataset) -> None:
    """Building a release: stewards of the owning bureau, of data that may leave the platform."""
    check_manage_dataset(user, dataset)
    check_leaves_the_platform(dataset)


def check_publish_release(user, release) -> None:
    """Publishing: as building, and only a shifted release (its report says how)."""
    check_build_release(user, release.corpus.dataset)
    if ((release.report or {}).get("shift") or {}).get("mode") == UNSHIFTED:
        raise Refused(gettext("release #%(release)s is not shifted; a release file that leaves the "
                              "platform always is")
                      % {"release": release.pk})
