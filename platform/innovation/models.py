"""Crowd innovation (众智众创): scenarios a bureau opens, challenges on hidden compute-only
test sets, teams, submissions and their scores, and the showcase of shared results. Only
innovation.actions writes these."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from catalog.models import Dataset
from corpora.models import CorpusVersion
from kernel.i18n import localized


class ScenarioStatus(models.TextChoices):
    OPEN = "open", _("开放中")
    DEPLOYED = "deployed", _("已落地")
    ARCHIVED = "archived", _("已归档")


class Scenario(models.Model):
    """A problem from a bureau's plan, opened to startups (场景开放)."""

    slug = models.SlugField(_("代码"), max_length=80, unique=True)
    bureau = models.ForeignKey(Organisation, verbose_name=_("发布机构"), on_delete=models.PROTECT,
                               related_name="scenarios")
    title = models.CharField(_("名称"), max_length=200)
    title_en = models.CharField(_("英文名称"), max_length=200, blank=True)
    background = models.TextField(_("背景"))
    contact = models.CharField(_("联系人"), max_length=200)
    datasets = models.ManyToManyField(Dataset, verbose_name=_("数据集"), related_name="scenarios", blank=True)
    status = models.CharField(_("状态"), max_length=20, choices=ScenarioStatus.choices, default=ScenarioStatus.OPEN)
    deployment_note = models.TextField(_("落地说明"), blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("开放场景")
        verbose_name_plural = _("开放场景")

    def __str__(self) -> str:
        return self.local_title

    @property
    def local_title(self) -> str:
        """The title in the reader's language: the English title in English, where there is one."""
        return localized(self.title, self.title_en)


class InterestKind(models.TextChoices):
    FOLLOW = "follow", _("关注")
    INTEREST = "interest", _("意向")


class ScenarioInterest(models.Model):
    """A user following a scenario, or their organisation expressing interest in it."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="interests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=InterestKind.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scenario", "user", "kind"], name="one_interest_per_kind")]


class Phase(models.TextChoices):
    UPCOMING = "upcoming", _("未开始")
    OPEN = "open", _("提交中")
    FINAL = "final", _("终评中")
    CLOSED = "closed", _("已结束")


class Challenge(models.Model):
    """A task on a scenario, scored on a hidden compute-only test set: its public part ranks
    the public leaderboard through the Ladder, its private part the final board at close."""

    slug = models.SlugField(_("代码"), max_length=80, unique=True)
    scenario = models.ForeignKey(Scenario, verbose_name=_("场景"), on_delete=models.PROTECT,
                                 related_name="challenges")
    title = models.CharField(_("名称"), max_length=200)
    task = models.CharField(_("任务"), max_length=40)  # sandbox.tasks name
    training_dataset = models.ForeignKey(Dataset, verbose_name=_("训练数据"), on_delete=models.PROTECT,
                                         related_name="training_challenges")
    hidden_corpus = models.ForeignKey(CorpusVersion, verbose_name=_("隐藏测试集"), on_delete=models.PROTECT,
                                      related_name="challenges")
    rules = models.TextField(_("规则"))
    opens_at = models.DateTimeField(_("开始"))
    final_at = models.DateTimeField(_("提交截止"))
    closes_at = models.DateTimeField(_("结束"))
    daily_limit = models.PositiveIntegerField(_("每队每日提交上限"), default=5)
    max_submission_bytes = models.PositiveIntegerField(_("提交大小上限"), default=5_000_000)
    ladder_step = models.FloatField(_("阶梯步长 η"), default=0.01)
    spec = models.JSONField(default=dict)  # vocabulary, split salt, rows: fixed at creation
    closed_at = models.DateTimeField(null=True, blank=True)  # the private board was computed
    close_task_id = models.UUIDField(null=True, blank=True)
    # The last close whose private scoring failed: the beat closes a challenge once, the steward again.
    close_failed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("挑战赛")
        verbose_name_plural = _("挑战赛")

    def __str__(self) -> str:
        return self.title

    def phase(self, now=None) -> str:
        now = now or timezone.now()
        if self.closed_at is not None:
            return Phase.CLOSED
        if now < self.opens_at:
            return Phase.UPCOMING
        if now < self.final_at:
            return Phase.OPEN
        return Phase.FINAL


class Team(models.Model):
    """A team registered for a challenge; its members may come from several organisations."""

    challenge = models.ForeignKey(Challenge, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(_("队名"), max_length=100)
    captain = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams")
    # The Ladder's state: the best released score (None before the first scored submission).
    ladder_score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["challenge", "name"], name="unique_team_name")]
        verbose_name = _("参赛队")
        verbose_name_plural = _("参赛队")

    def __str__(self) -> str:
        return self.name


class InvitationStatus(models.TextChoices):
    PENDING = "pending", _("待回复")
    ACCEPTED = "accepted", _("已接受")
    DECLINED = "declined", _("已拒绝")


class TeamInvitation(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="team_invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)


class SubmissionKind(models.TextChoices):
    WEIGHTS = "weights", _("模型权重")
    CODE = "code", _("代码")


class SubmissionStatus(models.TextChoices):
    SCORING = "scoring", _("评测中")
    SCORED = "scored", _("已评分")
    FAILED = "failed", _("失败")


class Submission(models.Model):
    """Model weights for the challenge's built-in task, or a prediction script; evaluated in
    the jail on the hidden test set's features, scored outside it against the labels."""

    challenge = models.ForeignKey(Challenge, on_delete=models.PROTECT, related_name="submissions")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="submissions")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("类型"), max_length=20, choices=SubmissionKind.choices)
    path = models.CharField(max_length=500)  # relative to STATE_DIR
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    note = models.CharField(_("说明"), max_length=200, blank=True)
    status = models.CharField(_("状态"), max_length=20, choices=SubmissionStatus.choices,
                              default=SubmissionStatus.SCORING)
    status_reason = models.TextField(blank=True)
    public_score = models.FloatField(null=True, blank=True)  # exact: never shown to teams
    displayed_score = models.FloatField(null=True, blank=True)  # what the Ladder released
    private_score = models.FloatField(null=True, blank=True)  # at close, for the team's final
    private_rank = models.PositiveIntegerField(null=True, blank=True)  # on the private board, at close
    final = models.BooleanField(_("终评提交"), default=False)
    task_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("提交")
        verbose_name_plural = _("提交")


class Licence(models.TextChoices):
    CC_BY = "CC-BY-4.0", "CC BY 4.0"
    APACHE = "Apache-2.0", "Apache 2.0"
    CC_BY_NC = "CC-BY-NC-4.0", "CC BY-NC 4.0"
    CC_BY_ND = "CC-BY-ND-4.0", "CC BY-ND 4.0"


NO_DERIVATIVES = {Licence.CC_BY_ND}
NON_COMMERCIAL = {Licence.CC_BY_NC}


class ShowcaseItem(models.Model):
    """A released result on the roadshow (路演) page: a team's scored submission with its
    model card, report and demo, under a licence that says how others may reuse it."""

    challenge = models.ForeignKey(Challenge, on_delete=models.PROTECT, related_name="showcase")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="showcase")
    submission = models.OneToOneField(Submission, on_delete=models.PROTECT, related_name="showcase")
    title = models.CharField(_("名称"), max_length=200)
    summary = models.TextField(_("简介"))
    report = models.TextField(_("报告"), blank=True)
    demo_url = models.URLField(_("演示"), blank=True)
    licence = models.CharField(_("许可"), max_length=40, choices=Licence.choices)
    card = models.JSONField(default=dict)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-published_at"]
        verbose_name = _("路演成果")
        verbose_name_plural = _("路演成果")

    def __str__(self) -> str:
        return self.title
