"""Reads of the crowd-innovation data that the API, the portal and the actions share: a
challenge's ladder, its finals and leaderboards, a shared result's card, and the innovation
figures."""
from __future__ import annotations

from django.db.models import Count, Q

from kernel.events import EventType
from provenance.models import LineageEvent
from provenance.recorder import subject_of

from sandbox import challenge as evaluation
from sandbox import tasks as sandbox_tasks

from .ladder import Ladder
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


def ladder_of(challenge: Challenge) -> Ladder:
    task = sandbox_tasks.task_named(challenge.task)
    return Ladder(step=challenge.ladder_step, higher_is_better=evaluation.higher_is_better(task))


def finals(challenge: Challenge) -> list[Submission]:
    """Each team's final: the one it chose, else its best exact public score (earliest first)."""
    higher = evaluation.higher_is_better(sandbox_tasks.task_named(challenge.task))
    chosen = []
    for team in challenge.teams.all():
        scored = list(team.submissions.filter(status=SubmissionStatus.SCORED).order_by("created_at"))
        if not scored:
            continue
        final = next((s for s in scored if s.final), None)
        if final is None:
            final = (max if higher else min)(scored, key=lambda s: s.public_score)
        chosen.append(final)
    return chosen


def card_of(item: ShowcaseItem) -> dict:
    """The shared result's model card: what it is, how it scored, where it came from."""
    submission, challenge, team = item.submission, item.challenge, item.team
    task = sandbox_tasks.task_named(challenge.task)
    rank = None
    if submission.private_score is not None:
        rank = 1 + sum(1 for s in finals(challenge) if s.private_score is not None and s.pk != submission.pk and (
            s.private_score > submission.private_score if evaluation.higher_is_better(task)
            else s.private_score < submission.private_score))
    return {
        "name": item.title,
        "task": task.describe(),
        "kind": submission.kind,
        "challenge": {"slug": challenge.slug, "title": challenge.title, "scenario": challenge.scenario.slug},
        "team": {"name": team.name, "members": sorted(m.username for m in team.members.all()),
                 "organisations": sorted({m.organisation.code for m in team.members.all()})},
        "scores": {"metric": task.metric, "public_board": submission.displayed_score,
                   "private": submission.private_score, "rank": rank, "teams": challenge.teams.count()},
        "evaluation": {"hidden_dataset": challenge.hidden_corpus.dataset.slug,
                       "hidden_version": challenge.hidden_corpus.version,
                       "hidden_sha256": challenge.hidden_corpus.sha256,
                       "private_rows": challenge.spec["private_rows"]},
        "privacy": "scored on a compute-only hidden test set inside the sandbox; the submission never saw its rows",
        "intended_use": item.summary,
        "licence": item.licence,
        "lineage": {"submission": subject_of(submission), "challenge": subject_of(challenge),
                    "hidden_corpus": subject_of(challenge.hidden_corpus)},
        "weights": {"sha256": submission.sha256, "bytes": submission.size} if submission.kind == "weights" else None,
    }


def board(challenge: Challenge, which: str) -> list[dict]:
    """A challenge's leaderboard rows: `public` (each team's best score on the public split, the
    ladder's order) or `private` (the finals' scores and ranks after the close)."""
    higher = ladder_of(challenge).higher_is_better
    rows = []
    if which == "public":
        teams = challenge.teams.exclude(ladder_score=None).annotate(
            n=Count("submissions", filter=Q(submissions__status=SubmissionStatus.SCORED)))
        for team in teams:
            rows.append({"team": team.name, "score": team.ladder_score, "submissions": team.n,
                         "organisations": sorted({m.organisation.code for m in team.members.all()})})
        rows.sort(key=lambda r: -r["score"] if higher else r["score"])
    else:
        chosen = Submission.objects.filter(challenge=challenge, pk__in=[s.pk for s in finals(challenge)])
        for submission in chosen.select_related("team"):
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
