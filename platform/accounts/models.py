"""Organisations and users. Only accounts.actions writes these."""
from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from kernel.roles import Role
from kernel.i18n import localized


class OrganisationKind(models.TextChoices):
    STARTUP = "startup", _("初创企业")
    RESEARCH_LAB = "research_lab", _("研究机构")
    BUREAU = "bureau", _("规划资源局")
    DISTRICT = "district", _("区级数据持有方")
    AUDIT_OFFICE = "audit_office", _("审计机构")


# Which organisation kinds each role may belong to. A steward works for a bureau,
# a data holder for a district, an auditor for an audit office.
ROLE_ORGANISATION_KINDS: dict[str, set[str]] = {
    Role.APPLICANT: {
        OrganisationKind.STARTUP,
        OrganisationKind.RESEARCH_LAB,
        OrganisationKind.BUREAU,
        OrganisationKind.DISTRICT,
    },
    Role.STEWARD: {OrganisationKind.BUREAU},
    Role.DATA_HOLDER: {OrganisationKind.DISTRICT},
    Role.AUDITOR: {OrganisationKind.AUDIT_OFFICE},
    Role.ADMIN: {OrganisationKind.BUREAU},
}


class Organisation(models.Model):
    code = models.SlugField(_("代码"), max_length=60, unique=True)
    name = models.CharField(_("名称"), max_length=200, unique=True)
    name_en = models.CharField(_("英文名称"), max_length=200, blank=True)
    kind = models.CharField(_("类型"), max_length=20, choices=OrganisationKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("组织")
        verbose_name_plural = _("组织")

    def __str__(self) -> str:
        return self.local_name

    @property
    def local_name(self) -> str:
        """The name in the reader's language: the English name in English, where there is one."""
        return localized(self.name, self.name_en)


class User(AbstractUser):
    role = models.CharField(_("角色"), max_length=20, choices=Role.choices)
    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("组织"),
        on_delete=models.PROTECT,
        related_name="members",
        null=True,  # only for a bootstrap superuser made by createsuperuser
        blank=True,
    )

    class Meta:
        ordering = ["username"]
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    @property
    def actor_label(self) -> str:
        """How this user appears in provenance events."""
        return f"user:{self.pk}:{self.username}"
