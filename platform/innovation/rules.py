"""Who opens and manages scenarios and challenges, takes part in teams, sees scores, and
shares, reuses and downloads results."""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from accounts.models import OrganisationKind
from kernel.errors import Refused
from kernel.roles import Role, has_role, reads_everything, require_login, require_role, role_of

from .models import NO_DERIVATIVES, NON_COMMERCIAL

# Organisations that use results commercially: a non-commercial licence refuses them.
COMMERCIAL_KINDS = {OrganisationKind.STARTUP}


def check_open_scenario(user) -> None:
    """Scenarios and their challenges come from a bureau's plan: its stewards open them."""
    require_role(user, Role.STEWARD, doing=_("opening a scenario or a challenge"))


def check_manage_scenario(user, scenario) -> None:
    require_role(user, Role.STEWARD, doing=_("changing a scenario or its challenges"))
    if scenario.bureau_id != user.organisation_id:
        raise Refused(_("scenario %(scenario_slug)s belongs to %(scenario_bureau)s, not to your bureau")
                      % {"scenario_slug": scenario.slug, "scenario_bureau": scenario.bureau})


def check_follow_scenario(user) -> None:
    """Startups and researchers follow scenarios and say they are interested."""
    require_role(user, Role.APPLICANT, doing=_("following a scenario"))


def check_join_challenge(user, challenge) -> None:
    """Teams are people of startups and labs (any organisation but the challenge's bureau,
    which holds the hidden test set)."""
    require_role(user, Role.APPLICANT, doing=_("taking part in a challenge"))
    if user.organisation_id == challenge.scenario.bureau_id:
        raise Refused(_("%(user_organisation)s opened this challenge and holds its hidden test set: it "
                        "cannot compete")
                      % {"user_organisation": user.organisation})


def check_team_member(user, team) -> None:
    require_login(user)
    if not team.members.filter(pk=user.pk).exists():
        raise Refused(_("you are not a member of team %(team_name)s") % {"team_name": team.name})


def check_invite(user, team) -> None:
    check_team_member(user, team)
    if team.captain_id != user.pk:
        raise Refused(_("only the captain of %(team_name)s invites members") % {"team_name": team.name})


def check_answer_invitation(user, invitation) -> None:
    """An invitation is answered by the person it invites only."""
    if invitation.invitee_id != user.pk:
        raise Refused(_("this invitation is someone else's"))


def visible_submissions(user, qs: QuerySet) -> QuerySet:
    """A team's submissions: its members, the challenge's bureau's stewards, auditors and admins."""
    if role_of(user) is None:
        return qs.none()
    if reads_everything(user):
        return qs
    mine = Q(team__members=user)
    if has_role(user, Role.STEWARD):
        mine |= Q(challenge__scenario__bureau_id=user.organisation_id)
    return qs.filter(mine).distinct()


def sees_exact_scores(user, challenge) -> bool:
    """Exact public scores are never shown to teams (the Ladder releases theirs): only the
    bureau's stewards, auditors and admins see them."""
    if reads_everything(user):
        return True
    return has_role(user, Role.STEWARD) and user.organisation_id == challenge.scenario.bureau_id


def check_share_result(user, submission) -> None:
    """A team shares its own scored result on the showcase once the challenge has closed."""
    require_role(user, Role.APPLICANT, doing=_("sharing a result"))
    check_team_member(user, submission.team)


def check_reuse_result(user, item) -> None:
    """Building on a shared result (fine-tuning its weights) is what its licence allows: never
    under a no-derivatives licence, and not by a startup under a non-commercial one."""
    if item.licence in NO_DERIVATIVES:
        raise Refused(_("showcase #%(item)s is shared under %(item_licence)s: no derivatives")
                      % {"item": item.pk, "item_licence": item.licence})
    if item.licence in NON_COMMERCIAL and user.organisation.kind in COMMERCIAL_KINDS:
        raise Refused(_("showcase #%(item)s is shared under %(item_licence)s: not for commercial use "
                        "by a startup")
                      % {"item": item.pk, "item_licence": item.licence})


def check_download_result(user) -> None:
    """Shared results are for anyone logged in."""
    require_login(user)


def check_read_innovation_metrics(user) -> None:
    require_role(user, Role.STEWARD, Role.AUDITOR, Role.ADMIN, doing=_("reading the crowd-innovation metrics"))
