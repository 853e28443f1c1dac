"""Pages. Each view parses the form, calls an action and reports the outcome; the
rules themselves live in each app's rules.py."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from access import actions as access_actions
from access import rules as access_rules
from access.models import Application, ApplicationStatus, Licence, PurposeCategory
from accounts import actions as account_actions
from accounts.models import Organisation, OrganisationKind, Role, User
from catalog.models import DataClass, Dataset
from corpora.actions import INGEST_TASK_KIND
from defense import rules as defense_rules
from defense.models import Alert
from federation.queries import visible_nodes
from jobs import rules as jobs_rules
from jobs.models import Job, JobStatus
from kernel import roles
from kernel.errors import ActionError, InvalidInput
from kernel.events import EventType
from portal import readable
from progress import rules as progress_rules
from provenance import rules as provenance_rules

from . import forms
from .node_views import node_rows
from progress.models import TaskProgress
from provenance import actions as provenance_actions
from provenance.anchoring import ledger_status
from provenance.models import LineageEvent
from releases.actions import BUILD_TASK_KIND
from releases.models import Release


def _applications(user):
    return access_rules.visible_applications(
        user, Application.objects.select_related("dataset__owner", "organisation", "applicant")
    )


def _tasks(user):
    return progress_rules.visible_tasks(user, TaskProgress.objects.select_related("started_by"))[:10]


# Rows per page of a dashboard list: no page grows with the catalogue or the log.
PAGE_SIZE = 25


def _page(request, rows, param: str, per_page: int = PAGE_SIZE):
    """One page of an ordered queryset, chosen by the query parameter `param` (a bad or
    too-large number gives the first or last page), with links to its neighbours that keep
    the other parameters (each list on a dashboard pages on its own)."""
    page = Paginator(rows, per_page).get_page(request.GET.get(param))

    def link(number: int) -> str:
        query = request.GET.copy()
        query[param] = str(number)
        return "?" + query.urlencode()

    page.previous_url = link(page.previous_page_number()) if page.has_previous() else ""
    page.next_url = link(page.next_page_number()) if page.has_next() else ""
    return page


def _section(anchor: str, label: str, count: int | None = None) -> dict:
    """One entry of a dashboard's section bar: the card's anchor, its heading and how many
    rows it holds (None where a count means nothing, e.g. a form)."""
    return {"id": anchor, "label": label, "count": count}


def _open_alerts(user) -> int:
    return defense_rules.visible_alerts(user, Alert.objects.filter(status="open")).count()


def _licences(user) -> int:
    licences = access_rules.visible_licences(user, Licence.objects.all())
    if roles.has_role(user, Role.STEWARD):
        licences = licences.filter(release__corpus__dataset__owner_id=user.organisation_id)
    return licences.count()


def _jobs(user, **filters):
    return jobs_rules.visible_jobs(user, Job.objects.filter(**filters).select_related("dataset", "organisation"))


@login_required
def dashboard(request):
    user = request.user
    role = roles.role_of(user)
    context = {"role": role, "tasks": _tasks(user)}
    if role == Role.APPLICANT:
        context["applications"] = _applications(user)[:50]
        context["datasets"] = _page(request, Dataset.objects.select_related("owner").order_by("slug"), "page")
        # The application form offers every dataset that needs an application (open data needs
        # none), whichever catalogue page is shown: one narrow query, no row objects per version.
        context["apply_datasets"] = (Dataset.objects.exclude(data_class=DataClass.OPEN)
                                     .only("slug", "title", "title_en", "data_class").order_by("slug"))
        context["purpose_categories"] = PurposeCategory.choices
        jobs = _jobs(user)
        context["jobs"] = jobs[:10]
        context["sections"] = [
            _section("catalog", _("数据目录"), context["datasets"].paginator.count),
            _section("apply", _("提交申请")),
            _section("applications", _("本组织的申请"), _applications(user).count()),
            _section("licences", _("数据许可"), _licences(user)),
            _section("jobs", _("隐私计算作业"), jobs.count()),
            _section("budgets", _("隐私预算")),
        ]
    elif role == Role.STEWARD:
        owned = Dataset.objects.filter(owner_id=user.organisation_id)
        queue = _page(request, _applications(user).filter(
            dataset__owner_id=user.organisation_id, status=ApplicationStatus.SUBMITTED
        ), "queue_page")
        context["datasets"] = _page(request, owned.prefetch_related("holders").order_by("slug"), "page")
        context["queue_page"] = queue
        context["queue"] = [
            (app, roles.allowed(access_rules.check_decide_application, user, app)) for app in queue
        ]
        context["decided"] = _applications(user).filter(dataset__owner_id=user.organisation_id).exclude(
            status=ApplicationStatus.SUBMITTED
        )[:20]
        context["events"] = LineageEvent.objects.order_by("-seq")[:10]
        context["ledger"] = ledger_status()
        # Jobs waiting for this bureau: to approve before they run, or their held output to review.
        review = _jobs(user, status__in=[JobStatus.SUBMITTED, JobStatus.REVIEW],
                       dataset__owner_id=user.organisation_id).order_by("-pk")
        context["review_jobs"] = review[:20]
        releases = Release.objects.filter(corpus__dataset__owner_id=user.organisation_id)
        context["releases"] = releases.select_related("corpus__dataset", "task").order_by("-pk")[:10]
        context["sections"] = [
            _section("queue", _("待审核的申请"), queue.paginator.count),
            _section("review-jobs", _("待处理的作业"), review.count()),
            _section("releases", _("本局的发布"), releases.count()),
            _section("alerts", _("风险告警"), _open_alerts(user)),
            _section("datasets", _("本局数据集"), context["datasets"].paginator.count),
            _section("licences", _("数据许可"), _licences(user)),
            _section("events", _("最近的溯源事件")),
        ]
    elif role == Role.DATA_HOLDER:
        context["held"] = _page(
            request, Dataset.objects.filter(holders=user.organisation_id).select_related("owner").order_by("slug"),
            "page",
        )
        context["applications"] = _applications(user)[:20]
        context["nodes"] = node_rows(visible_nodes(user))  # the district's own, with their state now
        context["sections"] = [
            _section("nodes", _("本区节点"), len(context["nodes"])),
            _section("held", _("本节点持有的数据分区"), context["held"].paginator.count),
            _section("applications", _("本组织的申请"), _applications(user).count()),
            _section("tasks", _("后台任务"), len(context["tasks"])),
        ]
    elif role == Role.AUDITOR:
        context["events"] = LineageEvent.objects.order_by("-seq")[:15]
        context["event_count"] = LineageEvent.objects.count()
        context["last_verification"] = (
            LineageEvent.objects.filter(event_type=EventType.LEDGER_EVENTS_VERIFIED).order_by("-seq").first()
        )
        context["applications"] = _applications(user)[:20]
        context["ledger"] = ledger_status()
        context["sections"] = [
            _section("verify", _("事件链校验"), context["event_count"]),
            _section("applications", _("全部申请"), _applications(user).count()),
            _section("alerts", _("风险告警"), _open_alerts(user)),
            _section("licences", _("数据许可"), _licences(user)),
            _section("events", _("最近的溯源事件")),
        ]
    elif role == Role.ADMIN:
        context["organisations"] = Organisation.objects.all()
        context["users"] = User.objects.select_related("organisation").order_by("organisation__code", "username")
        context["event_count"] = LineageEvent.objects.count()
        context["kinds"] = OrganisationKind.choices
        context["roles"] = Role.choices
        context["sections"] = [
            _section("organisations", _("组织"), len(context["organisations"])),
            _section("users", _("用户"), len(context["users"])),
            _section("new-organisation", _("新建组织")),
            _section("new-user", _("新建用户")),
        ]
    else:
        raise PermissionDenied(_("您的账户没有角色，请联系平台管理员。"))
    return render(request, f"portal/dashboard_{role}.html", context)


@login_required
def submit_application(request):
    """The application form (from the dashboard or a dataset page, the dataset chosen), read
    with the API's ApplicationSerializer; an error shows the form again as it was typed."""
    from access.api import REQUEST_FIELDS, ApplicationSerializer

    access_rules.check_submit_application(request.user, None)
    errors = {}
    if request.method == "POST":
        try:
            data = forms.validated(ApplicationSerializer, request.POST)
            application = access_actions.submit_application(
                actor=request.user, dataset=data["dataset"], **{n: data[n] for n in REQUEST_FIELDS if n in data})
        except ActionError as exc:
            errors = forms.errors_of(exc)
        else:
            messages.success(request, _("申请 #%(pk)s 已提交，等待审核。") % {"pk": application.pk})
            return redirect("dashboard")
    values = request.POST if request.method == "POST" else {
        "dataset": request.GET.get("dataset", ""), "duration_days": "90", "purpose_category": ""}
    return render(request, "portal/apply.html", {
        "values": values, "errors": errors, "purpose_categories": PurposeCategory.choices,
        "apply_datasets": Dataset.objects.exclude(data_class=DataClass.OPEN).only("slug", "title", "title_en", "data_class")
        .order_by("slug"),
    }, status=400 if errors else 200)


@login_required
@require_POST
def decide_application(request, pk: int):
    application = get_object_or_404(_applications(request.user), pk=pk)
    decision = request.POST.get("decision")
    decide = {
        "approve": access_actions.approve_application,
        "reject": access_actions.reject_application,
        "changes": access_actions.request_changes,
    }.get(decision)
    if decide is None:
        messages.error(request, _("未知的审核决定。"))
        return redirect("dashboard")
    if decision == "reject" and roles.allowed(access_rules.check_decide_application, request.user, application):
        asked = forms.confirmation(request, title=_("驳回申请 #%(pk)s？") % {"pk": pk}, consequence=_(
            "驳回是最终决定：申请方须重新提交一份新申请。若只需修改，请选择“要求修改”。"))
        if asked is not None:
            return asked
    from access.api import ApprovalSerializer, DecisionSerializer

    try:  # approving takes the licence's download limit and a budget's ε and δ, each optional
        terms = forms.validated(ApprovalSerializer if decision == "approve" else DecisionSerializer, request.POST)
        decide(actor=request.user, application=application, **terms)
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("申请 #%(pk)s 已处理。") % {"pk": pk})
    return redirect("dashboard")


@login_required
def events(request):
    provenance_rules.check_view_events(request.user)
    from provenance.api import EventFilterSerializer

    filters = EventFilterSerializer(data=request.GET)
    valid = filters.is_valid()
    events = filters.filter(LineageEvent.objects.all()) if valid else LineageEvent.objects.none()
    return render(
        request,
        "portal/events.html",
        {
            "events": _page(request, events.order_by("-seq"), "page", per_page=50),
            "values": {name: request.GET.get(name, "") for name in filters.fields},
            "errors": {field: " ".join(str(m) for m in found) for field, found in filters.errors.items()},
            "event_types": LineageEvent.objects.order_by("event_type").values_list("event_type", flat=True).distinct(),
            "can_verify": roles.allowed(provenance_rules.check_verify_events, request.user),
        },
        status=200 if valid else 400,
    )


@login_required
@require_POST
def start_verification(request):
    task = provenance_actions.start_event_log_verification(actor=request.user)
    return redirect("task-page", pk=task.pk)


@login_required
def task_detail(request, pk):
    task = progress_rules.visible_tasks(request.user, TaskProgress.objects.filter(pk=pk)).first()
    if task is None:
        raise Http404
    # Where the work's outcome is shown, once it is done.
    args = task.label_args or {}
    outcome = {INGEST_TASK_KIND: ("dataset-page", {"slug": args.get("dataset")}),
               BUILD_TASK_KIND: ("release-page", {"pk": args.get("release")})}.get(task.kind)
    next_url = reverse(outcome[0], kwargs=outcome[1]) if outcome and all(outcome[1].values()) else ""
    summary = readable.task_summary(task) if task.finished else {"lines": []}
    # Opened straight from the form that started it (?follow=1), the page goes on to the
    # outcome even when the task ended before the page loaded.
    return render(request, "portal/task.html", {
        "task": task, "next_url": next_url, "summary": summary, "follow": request.GET.get("follow") == "1",
    })


@login_required
def account(request):
    from rest_framework.authtoken.models import Token

    token = Token.objects.filter(user=request.user).first()
    return render(request, "portal/account.html", {"token": token})


@login_required
@require_POST
def rotate_token(request):
    account_actions.issue_api_token(user=request.user, rotate=True)
    messages.success(request, _("已生成新的 API 令牌，旧令牌已失效。"))
    return redirect("account")


@login_required
@require_POST
def create_organisation(request):
    form = request.POST
    try:
        org = account_actions.create_organisation(
            actor=request.user,
            code=form.get("code", "").strip(),
            name=form.get("name", ""),
            name_en=form.get("name_en", ""),
            kind=form.get("kind", ""),
        )
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("组织 %(name)s 已创建。") % {"name": org.name})
    return redirect("dashboard")


@login_required
@require_POST
def create_user(request):
    form = request.POST
    organisation = Organisation.objects.filter(code=form.get("organisation", "")).first()
    try:
        if organisation is None:
            raise InvalidInput("organisation", _("choose an existing organisation"))
        user = account_actions.create_user(
            actor=request.user,
            username=form.get("username", "").strip(),
            password=form.get("password", ""),
            role=form.get("role", ""),
            organisation=organisation,
            email=form.get("email", "").strip(),
            display_name=form.get("display_name", "").strip(),
        )
    except ActionError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("用户 %(username)s 已创建。") % {"username": user.username})
    return redirect("dashboard")
