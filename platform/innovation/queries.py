"""Reads of the crowd-innovation data that the API and the portal both show: a challenge's
leaderboards and the innovation figures."""
from __future__ import annotations

from django.db.models import Count, Q

from kernel.events import EventType
from provenance.models import LineageEvent
from provenance.recorder import subject_of

from . import actions
from .models import (
    Challenge,
    InterestKind,
    Phase,
    Scenario,
    ScenarioStatus,
    ShowcaseItem,
    Submission,
    SubmissionStatus,
    Team,
)


def board(challenge: Challenge, which: str) -> list[dict]:
    """A challenge's leaderboard rows: `public` (each team's best score on the public split, the
    ladder's order) or `private` (the finals' scores and ranks after the close)."""
    higher = actions.ladder_of(challenge).higher_is_better
    rows = []
    if which == "public":
        teams = challenge.teams.exclude(ladder_score=None).annotate(
            n=Count("submissions", filter=Q(submissions__status=SubmissionStatus.SCORED)))
        for team in teams:
            rows.append({"team": team.name, "score": team.ladder_score, "submissions": team.n,
                         "organisations": sorted({m.organisation.code for m in team.members.all()})})
        rows.sort(key=lambda r: -r["score"] if higher else r["score"])
    else:
        finals = Submission.objects.filter(challenge=challenge, pk__in=[s.pk for s in actions.finals(challenge)])
        for submission in finals.select_related("team"):
            rows.append({"rank": submission.private_rank, "team": submission.team.name,
                         "score": submission.private_score, "submission": submission.pk, "sha256": submission.sha256})
        rows.sort(key=lambda r: r["rank"] or 10**9)
    return rows


def metrics(bureau=None) -> dict:
    """Participants, submissions, reuse and scenarios that reached deployment."""
    scenarios = Scenario.objects.all()
    challenges = Challenge.objects.all()
    if bureau is not None:
        scenarios = scenarios.filter(bureau=bureau)
        challenges = challenges.filter(scenario__bureau=bureau)
    teams = Team.objects.filter(challenge__in=challenges)
    members = teams.values_list("members", flat=True).distinct()
    from accounts.models import User

    people = User.objects.filter(pk__in=members)
    submissions = Submission.objects.filter(challenge__in=challenges)
    items = ShowcaseItem.objects.filter(challenge__in=challenges)
    return {
        "scenarios": scenarios.count(),
        "scenarios_deployed": scenarios.filter(status=ScenarioStatus.DEPLOYED).count(),
        "followers": scenarios.aggregate(n=Count("interests", filter=Q(interests__kind=InterestKind.FOLLOW)))["n"],
        "interested_organisations": scenarios.filter(interests__kind=InterestKind.INTEREST)
        .values("interests__organisation").distinct().count(),
        "challenges": challenges.count(),
        "challenges_open": sum(1 for c in challenges if c.phase() == Phase.OPEN),
        "teams": teams.count(),
        "participants": people.count(),
        "participating_organisations": people.values("organisation").distinct().count(),
        "submissions": submissions.count(),
        "submissions_scored": submissions.filter(status=SubmissionStatus.SCORED).count(),
        "shared_results": items.count(),
        "reuse_jobs": items.aggregate(n=Count("derived_jobs"))["n"],  # jobs fine-tuned from them
        "reuse_downloads": LineageEvent.objects.filter(
            event_type=EventType.INNOVATION_RESULT_DOWNLOADED, subject__in=[subject_of(i) for i in items]).count(),
    }
