"""Crowd-innovation pages (众智众创): scenarios and their challenges, a challenge's page
(timeline, starter kit, team, submissions, boards), the showcase with its provenance badge,
and the bureau's metrics. Forms post to the same actions as the API."""
from __future__ import annotations

import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Organisation
from catalog.models import Dataset
from corpora.models import CorpusVersion
from innovation import actions
from innovation import queries as innovation_queries
from innovation import rules as innovation_rules
from innovation.queries import board, metrics
from innovation.models import (
    Challenge,
    InterestKind,
    Licence,
    Phase,
    Scenario,
    ShowcaseItem,
    Submission,
    SubmissionKind,
    SubmissionStatus,
    Team,
    TeamInvitation,
)
from kernel import roles
from kernel.errors import ActionError, Refused
from provenance import rules as provenance_rules
from sandbox.tasks import TASKS


def _done(request, message: str, to: str, **kwargs):
    messages.success(request, message)
    return redirect(to, **kwargs)


@login_required
def home(request):
    return render(request, "portal/innovation.html", {
        "scenarios": Scenario.objects.select_related("bureau").prefetch_related("challenges"),
        "challenges": Challenge.objects.select_related("scenario"),
        "showcase": ShowcaseItem.objects.select_related("team", "challenge")[:50],
        "may_open": roles.allowed(innovation_rules.check_open_scenario, request.user),
        "own_datasets": Dataset.objects.filter(owner_id=request.user.organisation_id).order_by("slug"),
        "sees_metrics": roles.allowed(innovation_rules.check_read_innovation_metrics, request.user),
    })


@login_required
@require_POST
def open_scenario(request):
    post = request.POST
    try:
        scenario = actions.open_scenario(
            actor=request.user, slug=post.get("slug", ""), title=post.get("title", ""),
            background=post.get("background", ""), contact=post.get("contact", ""),
            datasets=list(Dataset.objects.filter(slug__in=post.getlist("datasets"))))
    except ActionError as exc:
        messages.error(request, exc.message)
        return redirect("innovation")
    return _done(request, _("场景已开放。"), "scenario-page", slug=scenario.slug)


@login_required
def scenario_page(request, slug: str):
    scenario = get_object_or_404(Scenario.objects.select_related("bureau"), slug=slug)
    may_manage = roles.allowed(innovation_rules.check_manage_scenario, request.user, scenario)
    return render(request, "portal/scenario.html", {
        "scenario": scenario, "may_manage": may_manage,
        "may_follow": roles.allowed(innovation_rules.check_follow_scenario, request.user),
        "following": scenario.interests.filter(user=request.user).values_list("kind", flat=True),
        "followers": scenario.interests.filter(kind=InterestKind.FOLLOW).count(),
        "interested": scenario.interests.filter(kind=InterestKind.INTEREST).select_related("organisation"),
        "tasks": TASKS.values(),
        "training_datasets": Dataset.objects.order_by("slug"),
        "hidden_corpora": CorpusVersion.objects.filter(
            dataset__data_class="compute_only", dataset__owner_id=scenario.bureau_id).select_related("dataset"),
        "now": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
    })


@login_required
@require_POST
def scenario_action(request, slug: str, what: str):
    scenario = get_object_or_404(Scenario, slug=slug)
    post = request.POST
    try:
        if what in ("follow", "interest"):
            actions.follow_scenario(actor=request.user, scenario=scenario, kind=what, note=post.get("note", ""))
            messages.success(request, _("已关注。") if what == "follow" else _("已提交意向。"))
        elif what == "deploy":
            actions.mark_deployed(actor=request.user, scenario=scenario, note=post.get("note", ""))
            messages.success(request, _("已标记为落地。"))
        elif what == "challenge":
            challenge = actions.open_challenge(
                actor=request.user, scenario=scenario, slug=post.get("slug", ""), title=post.get("title", ""),
                task=post.get("task", ""),
                training_dataset=get_object_or_404(Dataset, slug=post.get("training_dataset", "")),
                hidden_corpus=get_object_or_404(CorpusVersion, pk=_int(post.get("hidden_corpus"), "hidden_corpus")),
                rules=post.get("rules", ""), opens_at=_when(post, "opens_at"), final_at=_when(post, "final_at"),
                closes_at=_when(post, "closes_at"), daily_limit=_int(post.get("daily_limit"), "daily_limit"),
                max_submission_bytes=_int(post.get("max_submission_bytes"), "max_submission_bytes"),
                ladder_step=post.get("ladder_step", ""))
            return _done(request, _("挑战赛已开放。"), "challenge-page", slug=challenge.slug)
        else:
            raise Http404(what)
    except Refused:
        raise  # the 403 page: miliao.middleware.ActionErrorPageMiddleware
    except ActionError as exc:
        messages.error(request, exc.message)
    return redirect("scenario-page", slug=slug)


def _int(value, field: str) -> int:
    from kernel.errors import InvalidInput

    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, _("a whole number")) from None


def _when(post, field: str) -> datetime.datetime:
    from kernel.errors import InvalidInput

    value = parse_datetime(post.get(field, "") or "")
    if value is None:
        raise InvalidInput(field, _("a date and time"))
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _by_name(board: list[dict]) -> list[dict]:
    """The public board as a page shows it: organisations by name (the API keeps their codes)."""
    codes = {code for row in board for code in row["organisations"]}
    names = {o.code: str(o) for o in Organisation.objects.filter(code__in=codes)}
    return [{**row, "organisations": [names.get(code, code) for code in row["organisations"]]} for row in board]


@login_required
def challenge_page(request, slug: str):
    challenge = get_object_or_404(Challenge.objects.select_related("scenario__bureau", "training_dataset",
                                                                   "hidden_corpus__dataset"), slug=slug)
    team = Team.objects.filter(challenge=challenge, members=request.user).first()
    submissions = Submission.objects.filter(team=team).order_by("-created_at") if team else []
    shareable = [s for s in submissions if s.status == SubmissionStatus.SCORED and not hasattr(s, "showcase")]
    phase = challenge.phase()
    return render(request, "portal/challenge.html", {
        "challenge": challenge, "phase": phase, "Phase": Phase,
        "ladder": innovation_queries.ladder_of(challenge).describe(),
        "board": _by_name(board(challenge, "public")),
        "private_board": board(challenge, "private") if challenge.closed_at else None,
        "team": team, "submissions": submissions, "shareable": shareable if challenge.closed_at else [],
        "may_leave": team is not None and team.captain_id != request.user.pk and phase in (Phase.UPCOMING, Phase.OPEN),
        "invitations": TeamInvitation.objects.filter(team__challenge=challenge, invitee=request.user,
                                                     status="pending").select_related("team"),
        "may_join": roles.allowed(innovation_rules.check_join_challenge, request.user, challenge),
        "may_manage": roles.allowed(innovation_rules.check_manage_scenario, request.user, challenge.scenario),
        "sees_exact": innovation_rules.sees_exact_scores(request.user, challenge),
        "licences": Licence.choices,
    })


@login_required
@require_POST
def challenge_action(request, slug: str, what: str):
    challenge = get_object_or_404(Challenge, slug=slug)
    post = request.POST
    try:
        if what == "team":
            actions.register_team(actor=request.user, challenge=challenge, name=post.get("name", ""))
            messages.success(request, _("参赛队已注册。"))
        elif what == "invite":
            team = get_object_or_404(Team, challenge=challenge, members=request.user)
            actions.invite(actor=request.user, team=team, username=post.get("username", ""))
            messages.success(request, _("邀请已发送。"))
        elif what == "leave":
            team = get_object_or_404(Team, challenge=challenge, members=request.user)
            actions.leave_team(actor=request.user, team=team)
            messages.success(request, _("已退出参赛队。"))
        elif what in ("accept", "decline"):
            invitation = get_object_or_404(TeamInvitation, pk=_int(post.get("invitation"), "invitation"),
                                           invitee=request.user)
            actions.answer_invitation(actor=request.user, invitation=invitation, accept=what == "accept")
            messages.success(request, _("已回复邀请。"))
        elif what == "submit":
            kind = post.get("kind", "")
            if kind == SubmissionKind.WEIGHTS:
                upload = request.FILES.get("file")
                content = upload.read(challenge.max_submission_bytes + 1) if upload else b""
            else:
                content = post.get("code", "").encode()
            actions.submit(actor=request.user, challenge=challenge, kind=kind, content=content,
                           note=post.get("note", ""))
            messages.success(request, _("已提交，评测中。"))
        elif what == "final":
            submission = get_object_or_404(Submission, pk=_int(post.get("submission"), "submission"),
                                           challenge=challenge)
            actions.choose_final(actor=request.user, submission=submission)
            messages.success(request, _("已选为终评提交。"))
        elif what == "close":
            actions.close_challenge(actor=request.user, challenge=challenge)
            messages.success(request, _("提交已截止，正在私有测试集上终评。"))
        elif what == "share":
            submission = get_object_or_404(Submission, pk=_int(post.get("submission"), "submission"),
                                           challenge=challenge)
            item = actions.share_result(actor=request.user, submission=submission, title=post.get("title", ""),
                                        summary=post.get("summary", ""), licence=post.get("licence", ""),
                                        report=post.get("report", ""), demo_url=post.get("demo_url", ""))
            return _done(request, _("成果已发布到路演。"), "showcase-page", pk=item.pk)
        else:
            raise Http404(what)
    except Refused:
        raise  # the 403 page: miliao.middleware.ActionErrorPageMiddleware
    except ActionError as exc:
        messages.error(request, exc.message)
    return redirect("challenge-page", slug=slug)


@login_required
def showcase_page(request, pk: int):
    item = get_object_or_404(ShowcaseItem.objects.select_related("challenge", "team", "submission"), pk=pk)
    return render(request, "portal/showcase.html", {
        "item": item, "card": item.card, "reuses": item.derived_jobs.count(),
        "sees_lineage": roles.allowed(provenance_rules.check_view_events, request.user),
    })


@login_required
def metrics_page(request):
    innovation_rules.check_read_innovation_metrics(request.user)
    bureau = request.user.organisation if roles.has_role(request.user, "steward") else None
    return render(request, "portal/innovation_metrics.html", {"metrics": metrics(bureau), "bureau": bureau})
