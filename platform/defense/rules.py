"""Who sees and handles the active defense's risk alerts."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from kernel.errors import Refused
from kernel.roles import Role, has_role, reads_everything, require_role


def visible_alerts(user, qs: QuerySet) -> QuerySet:
    """Auditors and admins: every alert; stewards: their bureau's; nobody else."""
    if reads_everything(user):
        return qs
    if has_role(user, Role.STEWARD):
        return qs.filter(bureau_id=user.organisation_id)
    return qs.none()


def check_handle_alert(user, alert) -> None:
    require_role(user, Role.STEWARD, doing=_("handling a risk alert"))
    if alert.bureau_id != user.organisation_id:
        raise Refused(_("alert #%(alert)s is for %(alert_bureau)s, not your bureau")
                      % {"alert": alert.pk, "alert_bureau": alert.bureau})
