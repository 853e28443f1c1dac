from django.contrib import admin

from provenance.admin import RecordedModelAdmin

from .models import Challenge, Scenario, ScenarioInterest, ShowcaseItem, Submission, Team, TeamInvitation


@admin.register(Scenario)
class ScenarioAdmin(RecordedModelAdmin):
    """Read-only: scenarios, challenges and the rest change through their actions."""

    list_display = ["slug", "title", "bureau", "status", "created_at"]


@admin.register(ScenarioInterest)
class ScenarioInterestAdmin(RecordedModelAdmin):
    list_display = ["scenario", "user", "organisation", "kind", "created_at"]


@admin.register(Challenge)
class ChallengeAdmin(RecordedModelAdmin):
    list_display = ["slug", "title", "scenario", "task", "opens_at", "final_at", "closes_at", "closed_at"]
    exclude = ["spec"]  # it holds the split's salt


@admin.register(Team)
class TeamAdmin(RecordedModelAdmin):
    list_display = ["name", "challenge", "captain", "ladder_score"]


@admin.register(TeamInvitation)
class TeamInvitationAdmin(RecordedModelAdmin):
    list_display = ["team", "invitee", "invited_by", "status", "created_at"]


@admin.register(Submission)
class SubmissionAdmin(RecordedModelAdmin):
    list_display = ["pk", "challenge", "team", "kind", "status", "displayed_score", "private_score", "created_at"]
    list_filter = ["status", "kind"]


@admin.register(ShowcaseItem)
class ShowcaseItemAdmin(RecordedModelAdmin):
    list_display = ["pk", "title", "challenge", "team", "licence", "published_at"]
