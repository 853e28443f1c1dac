"""Crowd innovation's state changes: scenarios, challenges, teams, submissions and their
scores, the close and its private board, and the showcase. Each checks its rule, writes and
appends its lineage event in one transaction. Scoring events are anchored with the rest of
the log, so a team can prove its score and rank with an inclusion proof."""
from __future__ import annotations

import datetime
import hashlib
import secrets
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import Role, User
from catalog.models import Dataset
from corpora.models import CorpusVersion
from kernel.errors import Conflict, InvalidInput, Refused
from kernel.events import EventType
from kernel.inputs import text, whole
from kernel.paths import state_path
from progress.actions import by_name, queue_task
from provenance.recorder import actor_of, record, subject_of
from sandbox import challenge as evaluation
from sandbox import tasks as sandbox_tasks

from . import rules as innovation_rules
from .ladder import Ladder
from .models import (
    Challenge,
    InterestKind,
    InvitationStatus,
    Licence,
    Phase,
    Scenario,
    ScenarioInterest,
    ScenarioStatus,
    ShowcaseItem,
    Submission,
    SubmissionKind,
    SubmissionStatus,
    Team,
    TeamInvitation,
)
from .queries import card_of, finals, ladder_of

TEXT_MAX = 20_000
TITLE_MAX = 200
CODE_MAX_BYTES = 200_000
DAILY_LIMIT_MAX = 100
SUBMISSION_BYTES_MAX = 100_000_000




def submissions_dir() -> Path:
    return state_path("innovation") / "submissions"


# --- scenarios ---------------------------------------------------------------------------


@transaction.atomic(durable=True)
def open_scenario(*, actor, slug: str, title: str, background: str, contact: str, datasets: list[Dataset],
                  title_en: str = "") -> Scenario:
    """A bureau opens a problem of its plan, with the datasets it offers for it."""
    innovation_rules.check_open_scenario(actor)
    slug = text(slug, "slug", limit=80)
    if Scenario.objects.filter(slug=slug).exists():
        raise Conflict(gettext("a scenario %(slug)r exists already") % {"slug": slug})
    foreign = [d.slug for d in datasets if d.owner_id != actor.organisation_id]
    if foreign:
        raise InvalidInput("datasets", gettext("%(foreign)s belong to another bureau")
                                       % {"foreign": ', '.join(foreign)})
    scenario = Scenario.objects.create(
        slug=slug, bureau=actor.organisation, title=text(title, "title", limit=TITLE_MAX),
        title_en=text(title_en, "title_en", limit=TITLE_MAX, required=False),
        background=text(background, "background", limit=TEXT_MAX), contact=text(contact, "contact", limit=TITLE_MAX),
        created_by=actor)
    scenario.datasets.set(datasets)
    record(EventType.INNOVATION_SCENARIO_OPENED, actor=actor_of(actor), subject=subject_of(scenario),
           payload={"slug": slug, "title": scenario.title, "datasets": sorted(d.slug for d in datasets)},
           inputs=[subject_of(d) for d in datasets])
    return scenario


@transaction.atomic(durable=True)
def follow_scenario(*, actor, scenario: Scenario, kind: str = InterestKind.FOLLOW, note: str = "") -> ScenarioInterest:
    innovation_rules.check_follow_scenario(actor)
    if kind not in InterestKind.values:
        raise InvalidInput("kind", gettext("one of %(interestkind_values)s")
                                   % {"interestkind_values": ', '.join(InterestKind.values)})
    note = text(note, "note", limit=2000, required=kind == InterestKind.INTEREST)
    if ScenarioInterest.objects.filter(scenario=scenario, user=actor, kind=kind).exists():
        message = (gettext("you already follow %(scenario)s") if kind == InterestKind.FOLLOW
                   else gettext("you already expressed interest in %(scenario)s"))
        raise Conflict(message % {"scenario": scenario.slug})
    interest = ScenarioInterest.objects.create(scenario=scenario, user=actor, organisation=actor.organisation,
                                               kind=kind, note=note)
    record(EventType.INNOVATION_SCENARIO_FOLLOWED if kind == InterestKind.FOLLOW
           else EventType.INNOVATION_SCENARIO_INTEREST,
           actor=actor_of(actor), subject=subject_of(scenario),
           payload={"organisation": actor.organisation.code, "note": note})
    return interest


@transaction.atomic(durable=True)
def mark_deployed(*, actor, scenario: Scenario, note: str) -> Scenario:
    """The scenario's result went into the bureau's work: what the metrics count as reached."""
    innovation_rules.check_manage_scenario(actor, scenario)
    scenario = Scenario.objects.select_for_update().get(pk=scenario.pk)
    if scenario.status == ScenarioStatus.DEPLOYED:
        raise Conflict(gettext("scenario %(scenario_slug)s is already marked deployed")
                       % {"scenario_slug": scenario.slug})
    scenario.status, scenario.deployment_note = ScenarioStatus.DEPLOYED, text(note, "note", limit=TEXT_MAX)
    scenario.save(update_fields=["status", "deployment_note"])
    record(EventType.INNOVATION_SCENARIO_DEPLOYED, actor=actor_of(actor), subject=subject_of(scenario),
           payload={"note": scenario.deployment_note})
    return scenario


# --- challenges ----------------------------------------------------------------------------


@transaction.atomic(durable=True)
def open_challenge(*, actor, scenario: Scenario, slug: str, title: str, task: str, training_dataset: Dataset,
                   hidden_corpus: CorpusVersion, rules: str, opens_at: datetime.datetime,
                   final_at: datetime.datetime, closes_at: datetime.datetime, daily_limit: int = 5,
                   max_submission_bytes: int = 5_000_000, ladder_step: float = 0.01) -> Challenge:
    """A challenge on the scenario: its task and metric, training data (any class), a hidden
    test set that must be compute-only, its timeline, rules and limits. The hidden rooms'
    split into public and private parts is fixed here, by a secret salt."""
    innovation_rules.check_manage_scenario(actor, scenario)
    slug = text(slug, "slug", limit=80)
    if Challenge.objects.filter(slug=slug).exists():
        raise Conflict(gettext("a challenge %(slug)r exists already") % {"slug": slug})
    try:
        built_in = sandbox_tasks.task_named(task)
    except ValueError as exc:
        raise InvalidInput("task", str(exc).partition(": ")[2]) from None
    hidden = hidden_corpus.dataset
    if hidden.data_class != "compute_only":
        raise InvalidInput("hidden_corpus", gettext("%(hidden_slug)s is %(hidden_data_class)s: a hidden "
                                                    "test set must be compute-only, so no team ever sees "
                                                    "its rows")
                                            % {"hidden_slug": hidden.slug,
                                               "hidden_data_class": hidden.get_data_class_display()})
    if hidden.owner_id != scenario.bureau_id:
        raise InvalidInput("hidden_corpus", gettext("%(hidden_slug)s belongs to another bureau")
                                            % {"hidden_slug": hidden.slug})
    if hidden.held_by == "districts":
        raise InvalidInput("hidden_corpus", gettext("%(hidden_slug)s is held by its districts' nodes: challenges "
                                                    "are scored on bureau-held data only")
                                            % {"hidden_slug": hidden.slug})
    if not opens_at < final_at <= closes_at:
        raise InvalidInput("final_at", gettext("the timeline runs opens_at < final_at (the submission "
                                               "deadline) <= closes_at"))
    ladder = _ladder_step(ladder_step)
    table = pq.read_table(state_path(hidden_corpus.path), columns=sandbox_tasks.COLUMNS)
    rooms = evaluation.hidden_rooms(table, built_in)
    salt = secrets.token_hex(16)
    public, private = evaluation.split(rooms, salt)
    if min(public.num_rows, private.num_rows) < 50:
        raise InvalidInput("hidden_corpus", gettext("%(hidden_slug)s v%(hidden_corpus_version)s has "
                                                    "%(rooms_num_rows)s rooms with %(built_in_target)s: "
                                                    "too few for a public and a private test part")
                                            % {"hidden_slug": hidden.slug,
                                               "hidden_corpus_version": hidden_corpus.version,
                                               "rooms_num_rows": rooms.num_rows,
                                               "built_in_target": built_in.target})
    spec = {"task": task, "metric": built_in.metric, "neighbourhoods": sandbox_tasks.vocabulary(table), "salt": salt,
            "public_rows": public.num_rows, "private_rows": private.num_rows}
    challenge = Challenge.objects.create(
        slug=slug, scenario=scenario, title=text(title, "title", limit=TITLE_MAX), task=task,
        training_dataset=training_dataset,
        hidden_corpus=hidden_corpus, rules=text(rules, "rules", limit=TEXT_MAX), opens_at=opens_at,
        final_at=final_at, closes_at=closes_at, daily_limit=whole(daily_limit, "daily_limit", 1, DAILY_LIMIT_MAX),
        max_submission_bytes=whole(max_submission_bytes, "max_submission_bytes", 1_000, SUBMISSION_BYTES_MAX),
        ladder_step=ladder, spec=spec, created_by=actor)
    record(EventType.INNOVATION_CHALLENGE_OPENED, actor=actor_of(actor), subject=subject_of(challenge),
           payload={"slug": slug, "task": task, "metric": built_in.metric, "training_dataset": training_dataset.slug,
                    "hidden": {"dataset": hidden.slug, "version": hidden_corpus.version,
                               "sha256": hidden_corpus.sha256, "public_rows": public.num_rows,
                               "private_rows": private.num_rows,
                               "salt_sha256": hashlib.sha256(salt.encode()).hexdigest()},
                    "timeline": [opens_at.isoformat(), final_at.isoformat(), closes_at.isoformat()],
                    "daily_limit": challenge.daily_limit, "ladder_step": ladder},
           inputs=[subject_of(scenario), subject_of(hidden_corpus), subject_of(training_dataset)])
    return challenge


def _ladder_step(value) -> float:
    try:
        return Ladder(step=float(value), higher_is_better=True).step
    except (TypeError, ValueError):
        raise InvalidInput("ladder_step", gettext("a step in (0, 1), not %(value)r")
                                          % {"value": value}) from None


# --- teams ---------------------------------------------------------------------------------


def _team_of(user, challenge: Challenge) -> Team | None:
    return Team.objects.filter(challenge=challenge, members=user).first()


@transaction.atomic(durable=True)
def register_team(*, actor, challenge: Challenge, name: str) -> Team:
    innovation_rules.check_join_challenge(actor, challenge)
    if challenge.phase() == Phase.CLOSED:
        raise Conflict(gettext("challenge %(challenge_slug)s has closed")
                       % {"challenge_slug": challenge.slug})
    name = text(name, "name", limit=100)
    if _team_of(actor, challenge) is not None:
        raise Conflict(gettext("you are already in a team of %(challenge_slug)s")
                       % {"challenge_slug": challenge.slug})
    if Team.objects.filter(challenge=challenge, name=name).exists():
        raise Conflict(gettext("a team called %(name)r is already registered for %(challenge_slug)s")
                       % {"name": name, "challenge_slug": challenge.slug})
    team = Team.objects.create(challenge=challenge, name=name, captain=actor)
    team.members.add(actor)
    record(EventType.INNOVATION_TEAM_REGISTERED, actor=actor_of(actor), subject=subject_of(team),
           payload={"challenge": challenge.slug, "name": name, "organisation": actor.organisation.code},
           inputs=[subject_of(challenge)])
    return team


@transaction.atomic(durable=True)
def invite(*, actor, team: Team, username: str) -> TeamInvitation:
    """The captain invites someone, of any organisation, to the team."""
    innovation_rules.check_invite(actor, team)
    invitee = User.objects.filter(username=text(username, "username", limit=150)).select_related(
        "organisation").first()
    if invitee is None or not invitee.is_active:
        raise InvalidInput("username", gettext("no active user %(username)r") % {"username": username})
    if invitee.role != Role.APPLICANT:
        raise InvalidInput("username", gettext("%(invitee_username)s is a %(invitee)s: teams are of "
                                               "applicants")
                                       % {"invitee_username": invitee.username,
                                          "invitee": invitee.get_role_display()})
    if invitee.organisation_id == team.challenge.scenario.bureau_id:
        raise InvalidInput("username", gettext("%(invitee_username)s works for the bureau that holds the "
                                               "hidden test set")
                                       % {"invitee_username": invitee.username})
    if _team_of(invitee, team.challenge) is not None:
        raise Conflict(gettext("%(invitee_username)s is already in a team of %(team_challenge_slug)s")
                       % {"invitee_username": invitee.username, "team_challenge_slug": team.challenge.slug})
    if team.invitations.filter(invitee=invitee, status=InvitationStatus.PENDING).exists():
        raise Conflict(gettext("%(invitee_username)s already has a pending invitation to %(team_name)s")
                       % {"invitee_username": invitee.username, "team_name": team.name})
    invitation = TeamInvitation.objects.create(team=team, invitee=invitee, invited_by=actor)
    record(EventType.INNOVATION_MEMBER_INVITED, actor=actor_of(actor), subject=subject_of(team),
           payload={"invitee": invitee.username, "organisation": invitee.organisation.code})
    return invitation


@transaction.atomic(durable=True)
def answer_invitation(*, actor, invitation: TeamInvitation, accept: bool) -> TeamInvitation:
    invitation = TeamInvitation.objects.select_for_update().select_related("team__challenge").get(pk=invitation.pk)
    innovation_rules.check_answer_invitation(actor, invitation)
    if invitation.status != InvitationStatus.PENDING:
        raise Conflict(gettext("the invitation was already %(invitation_status)s")
                       % {"invitation_status": invitation.get_status_display()})
    team = invitation.team
    if accept:
        innovation_rules.check_join_challenge(actor, team.challenge)
        if _team_of(actor, team.challenge) is not None:
            raise Conflict(gettext("you are already in a team of %(team_challenge_slug)s")
                           % {"team_challenge_slug": team.challenge.slug})
        team.members.add(actor)
    invitation.status = InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED
    invitation.decided_at = timezone.now()
    invitation.save(update_fields=["status", "decided_at"])
    record(EventType.INNOVATION_MEMBER_JOINED if accept else EventType.INNOVATION_INVITATION_DECLINED, actor=actor_of(actor),
           subject=subject_of(team), payload={"member": actor.username, "organisation": actor.organisation.code})
    return invitation


@transaction.atomic(durable=True)
def leave_team(*, actor, team: Team) -> Team:
    """A member leaves while submissions are open (then the team is fixed for its final). What
    the team submitted stays the team's; the captain, who answers for it, stays."""
    innovation_rules.check_team_member(actor, team)
    team = Team.objects.select_for_update().select_related("challenge").get(pk=team.pk)
    if team.captain_id == actor.pk:
        raise Conflict(gettext("the captain stays with %(team_name)s: captains cannot leave their team")
                       % {"team_name": team.name})
    phase = team.challenge.phase()
    if phase not in (Phase.UPCOMING, Phase.OPEN):
        raise Conflict(gettext("%(team_challenge_slug)s is %(phase)s: teams are fixed once submissions "
                               "have ended")
                       % {"team_challenge_slug": team.challenge.slug, "phase": Phase(phase).label})
    team.members.remove(actor)
    record(EventType.INNOVATION_MEMBER_LEFT, actor=actor_of(actor), subject=subject_of(team),
           payload={"member": actor.username, "organisation": actor.organisation.code})
    return team


# --- submissions ---------------------------------------------------------------------------


def _local_day_start(now: datetime.datetime) -> datetime.datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def submit(*, actor, challenge: Challenge, kind: str, content: bytes, note: str = "") -> Submission:
    """Model weights for the challenge's task, or a prediction script. Refused, with nothing
    stored, from someone in no registered team, outside the submission window, over the
    team's daily limit, too large, or malformed.

    The content is written and checked in a staging folder before the transaction (so no
    lock is held while weights load), and renamed into the submissions folder once the
    transaction has committed; a refusal, or a commit that fails, stores nothing."""
    _admissible(actor, challenge, kind, content)
    staging = submissions_dir() / ".staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        staged = staging / (evaluation.WEIGHTS_FILE if kind == SubmissionKind.WEIGHTS else "predict.py")
        staged.write_bytes(content)
        try:
            _validate(kind, staged, challenge)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise InvalidInput("file" if kind == SubmissionKind.WEIGHTS else "code", message or str(exc)) from None
        return _record_submission(actor=actor, challenge=challenge, kind=kind, staged=staged,
                                  digest=hashlib.sha256(content).hexdigest(), size=len(content), note=note)
    except BaseException:  # refused, or the commit failed: nothing is stored
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _admissible(actor, challenge: Challenge, kind: str, content: bytes | None, *, locked: bool = False):
    """The refusals of `submit`, in order; returns the team and its submissions of today. With
    `locked`, the team's row is locked first (one submission of a team at a time)."""
    innovation_rules.check_join_challenge(actor, challenge)
    team = _team_of(actor, challenge)
    if team is None:
        raise Refused(gettext("you are in no team registered for %(challenge_slug)s: register one or "
                              "accept an invitation")
                      % {"challenge_slug": challenge.slug})
    if locked:
        team = Team.objects.select_for_update().get(pk=team.pk)
    now = timezone.now()
    phase = challenge.phase(now)
    if phase == Phase.UPCOMING:
        opens = timezone.localtime(challenge.opens_at)
        raise Conflict(gettext("%(challenge_slug)s opens for submissions at %(opens)s")
                       % {"challenge_slug": challenge.slug, "opens": f"{opens:%Y-%m-%d %H:%M}"})
    if phase != Phase.OPEN:
        raise Conflict(gettext("the submission deadline of %(challenge_slug)s passed at "
                               "%(final_at)s")
                       % {"challenge_slug": challenge.slug,
                          "final_at": f"{timezone.localtime(challenge.final_at):%Y-%m-%d %H:%M:%S}"})
    today = Submission.objects.filter(team=team, created_at__gte=_local_day_start(now)).count()
    if today >= challenge.daily_limit:
        raise Conflict(gettext("team %(team_name)s has made its %(challenge_daily_limit)s submissions of "
                               "today (%(today)s); the limit resets at midnight")
                       % {"team_name": team.name,
                          "challenge_daily_limit": challenge.daily_limit,
                          "today": f"{timezone.localtime(now):%Y-%m-%d}"})
    if kind not in SubmissionKind.values:
        raise InvalidInput("kind", gettext("one of %(submissionkind_values)s")
                                   % {"submissionkind_values": ', '.join(SubmissionKind.values)})
    if content is not None:
        if not content:
            raise InvalidInput("file" if kind == SubmissionKind.WEIGHTS else "code", gettext("is empty"))
        limit = min(challenge.max_submission_bytes, CODE_MAX_BYTES) if kind == SubmissionKind.CODE \
            else challenge.max_submission_bytes
        if len(content) > limit:
            raise InvalidInput("file" if kind == SubmissionKind.WEIGHTS else "code",
                               gettext("larger than %(limit)s bytes, the most this challenge takes")
                               % {"limit": limit})
    return team, today


@transaction.atomic(durable=True)
def _record_submission(*, actor, challenge: Challenge, kind: str, staged: Path, digest: str, size: int,
                       note: str) -> Submission:
    team, today = _admissible(actor, challenge, kind, None, locked=True)  # again, under the team's lock
    submission = Submission.objects.create(challenge=challenge, team=team, submitted_by=actor, kind=kind, path="",
                                           sha256=digest, size=size,
                                           note=text(note, "note", limit=TITLE_MAX, required=False))
    target = submissions_dir() / str(submission.pk) / staged.name
    transaction.on_commit(lambda: _store(staged, target))  # before the scoring task is dispatched
    progress = queue_task("innovation.score", label=gettext_noop("评测提交 #%(submission)s"),
                          label_args={"submission": submission.pk}, actor=actor,
                          dispatch=by_name("innovation.score", submission.pk))
    submission.path = str(target.relative_to(settings.STATE_DIR))
    submission.task_id = progress.pk
    submission.save(update_fields=["path", "task_id"])
    record(EventType.INNOVATION_SUBMITTED, actor=actor_of(actor), subject=subject_of(submission),
           payload={"challenge": challenge.slug, "team": team.name, "kind": kind, "sha256": digest,
                    "size": size, "today": today + 1},
           inputs=[subject_of(team), subject_of(challenge)])
    return submission


def _store(staged: Path, target: Path) -> None:
    """After the commit: the staged submission into its folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(target)
    staged.parent.rmdir()


def _validate(kind: str, path: Path, challenge: Challenge) -> None:
    """Malformed submissions are refused before they are stored: weights that are not a
    state_dict of the task's model, code that does not compile."""
    if kind == SubmissionKind.CODE:
        try:
            compile(path.read_text(), "predict.py", "exec")
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"code: does not compile: {getattr(exc, 'msg', exc)} "
                             f"(line {getattr(exc, 'lineno', '?')})") from None
        return
    inspect_weights(path, challenge)


_INSPECTED: dict[tuple, dict] = {}  # (sha256, task, neighbourhoods): what a file that passed holds
_INSPECTED_MAX = 256


def inspect_weights(path: Path, challenge: Challenge) -> dict:
    """Weights checked in the jail (sandbox.challenge.inspect_weights): this process reads
    only the archive's directory, never an applicant's tensors. A file that passed for the
    same features is not checked again (the check is deterministic; a jail run costs seconds)."""
    import tempfile

    from sandbox.isolation import IsolationUnavailable

    spec = {"task": challenge.task, "neighbourhoods": challenge.spec["neighbourhoods"]}
    key = (hashlib.sha256(Path(path).read_bytes()).hexdigest(), spec["task"], tuple(spec["neighbourhoods"]))
    if key in _INSPECTED:
        return dict(_INSPECTED[key])
    try:
        with tempfile.TemporaryDirectory(prefix="miliao-weights-") as scratch:
            found = evaluation.inspect_weights(path, spec, work=Path(scratch))
    except IsolationUnavailable as exc:
        raise Conflict(gettext("weights cannot be checked on this platform now: %(exc)s")
                       % {"exc": exc}) from None
    if len(_INSPECTED) >= _INSPECTED_MAX:
        _INSPECTED.pop(next(iter(_INSPECTED)))
    _INSPECTED[key] = found
    return dict(found)


@transaction.atomic
def record_score(*, submission_id: int, score: float) -> Submission:
    """The exact public score of a finished evaluation, and what the Ladder releases of it."""
    submission = Submission.objects.select_for_update().select_related("challenge", "team").get(pk=submission_id)
    if submission.status != SubmissionStatus.SCORING:
        return submission
    team = Team.objects.select_for_update().get(pk=submission.team_id)
    ladder = ladder_of(submission.challenge)
    released = ladder.release(team.ladder_score, score)
    moved = released != team.ladder_score
    team.ladder_score = released
    team.save(update_fields=["ladder_score"])
    submission.status, submission.public_score, submission.displayed_score = SubmissionStatus.SCORED, score, released
    submission.scored_at = timezone.now()
    submission.save(update_fields=["status", "public_score", "displayed_score", "scored_at"])
    record(EventType.INNOVATION_SUBMISSION_SCORED, actor="system", subject=subject_of(submission),
           payload={"challenge": submission.challenge.slug, "team": team.name, "sha256": submission.sha256,
                    "board_score": released, "board_moved": moved, "ladder": ladder.describe(),
                    # a commitment to the exact score, which stays unpublished until the audit
                    "score_commitment": _commit(submission, score)},
           inputs=[subject_of(submission.challenge.hidden_corpus)])
    return submission


def _commit(submission: Submission, score: float) -> str:
    return hashlib.sha256(f"{submission.sha256}|{score!r}|{submission.challenge.spec['salt']}".encode()).hexdigest()


@transaction.atomic
def fail_submission(*, submission_id: int, reason: str) -> Submission:
    submission = Submission.objects.select_for_update().get(pk=submission_id)
    if submission.status != SubmissionStatus.SCORING:
        return submission
    submission.status, submission.status_reason = SubmissionStatus.FAILED, reason[:2000]
    submission.scored_at = timezone.now()
    submission.save(update_fields=["status", "status_reason", "scored_at"])
    record(EventType.INNOVATION_SUBMISSION_FAILED, actor="system", subject=subject_of(submission),
           payload={"reason": submission.status_reason})
    return submission


def scoring_lost(task, reason: str) -> None:
    """The worker scoring a submission died (progress.recover_lost_tasks): it fails, and the
    team may submit again."""
    submission = Submission.objects.filter(task_id=task.pk).first()
    if submission is not None:
        fail_submission(submission_id=submission.pk, reason=reason)


@transaction.atomic(durable=True)
def choose_final(*, actor, submission: Submission) -> Submission:
    """The team picks which of its scored submissions the private board scores."""
    innovation_rules.check_team_member(actor, submission.team)
    submission = Submission.objects.select_for_update().select_related("challenge", "team").get(pk=submission.pk)
    challenge = submission.challenge
    if challenge.phase() not in (Phase.OPEN, Phase.FINAL):
        raise Conflict(gettext("%(challenge_slug)s is %(phase)s: finals are chosen before it closes")
                       % {"challenge_slug": challenge.slug, "phase": Phase(challenge.phase()).label})
    if submission.status != SubmissionStatus.SCORED:
        raise Conflict(gettext("submission #%(submission)s is %(submission_status)s: only a scored one can "
                               "be the final")
                       % {"submission": submission.pk, "submission_status": submission.get_status_display()})
    Submission.objects.filter(team=submission.team).update(final=False)
    Submission.objects.filter(pk=submission.pk).update(final=True)
    record(EventType.INNOVATION_FINAL_CHOSEN, actor=actor_of(actor), subject=subject_of(submission),
           payload={"team": submission.team.name, "sha256": submission.sha256})
    submission.refresh_from_db()
    return submission


# --- the close and the private board -------------------------------------------------------


@transaction.atomic(durable=True)
def close_challenge(*, actor, challenge: Challenge) -> Challenge:
    """End submissions (now, if the deadline has not passed) and score each team's final on
    the private part, on a worker; `record_private_board` publishes the result."""
    innovation_rules.check_manage_scenario(actor, challenge.scenario)
    challenge = Challenge.objects.select_for_update().get(pk=challenge.pk)
    now = timezone.now()
    if challenge.phase(now) in (Phase.UPCOMING, Phase.CLOSED):
        raise Conflict(gettext("%(challenge_slug)s is %(phase)s: only a challenge that has opened and not "
                               "closed can be closed")
                       % {"challenge_slug": challenge.slug, "phase": Phase(challenge.phase(now)).label})
    if challenge.close_task_id is not None:
        raise Conflict(gettext("%(challenge_slug)s is already being closed")
                       % {"challenge_slug": challenge.slug})
    return _start_close(challenge, now=now, owner=actor, actor=actor_of(actor))


def close_due_challenges() -> list[str]:
    """Run by Celery beat: close each challenge whose `closes_at` has passed and that nobody
    closed. Each is closed once this way; after a failed close (`close_failed_at`, which its
    event also records) the steward closes it by hand. Returns the slugs it started closing."""
    now = timezone.now()
    started = []
    for pk in Challenge.objects.filter(closes_at__lte=now, closed_at__isnull=True,
                                       close_task_id__isnull=True).values_list("pk", flat=True):
        with transaction.atomic():
            challenge = Challenge.objects.select_for_update(skip_locked=True).filter(
                pk=pk, closed_at__isnull=True, close_task_id__isnull=True).first()
            if challenge is None or challenge.close_failed_at is not None:
                continue
            _start_close(challenge, now=now, owner=challenge.created_by, actor="system")
            started.append(challenge.slug)
    return started


def _start_close(challenge: Challenge, *, now, owner, actor: str) -> Challenge:
    """Queue the private scoring (its progress row is `owner`'s) and record who ended it."""
    progress = queue_task("innovation.close", label=gettext_noop("终评 %(challenge)s"),
                          label_args={"challenge": challenge.slug}, actor=owner,
                          dispatch=by_name("innovation.close", challenge.pk))
    challenge.final_at = min(challenge.final_at, now)
    challenge.close_task_id = progress.pk
    challenge.save(update_fields=["final_at", "close_task_id"])
    record(EventType.INNOVATION_CHALLENGE_CLOSING, actor=actor, subject=subject_of(challenge),
           payload={"submissions_ended_at": challenge.final_at.isoformat(),
                    "finals": [s.sha256 for s in finals(challenge)],
                    "by": "schedule" if actor == "system" else "steward"})
    return challenge


@transaction.atomic
def record_private_board(*, challenge_id: int, scores: dict[int, float | None]) -> Challenge:
    """Each final's private score (by submission id; None where it failed to run, which
    ranks last), the ranks, and the board's event."""
    challenge = Challenge.objects.select_for_update().get(pk=challenge_id)
    if challenge.closed_at is not None:
        return challenge
    higher = evaluation.higher_is_better(sandbox_tasks.task_named(challenge.task))
    board = []
    for submission in Submission.objects.filter(pk__in=scores).select_related("team"):
        submission.private_score = scores[submission.pk]
        submission.save(update_fields=["private_score"])
        board.append(submission)
    board.sort(key=lambda s: (s.private_score is None,
                              0 if s.private_score is None else (-s.private_score if higher else s.private_score),
                              s.created_at))
    for rank, submission in enumerate(board, 1):
        submission.private_rank = rank
        submission.save(update_fields=["private_rank"])
        record(EventType.INNOVATION_FINAL_SCORED, actor="system", subject=subject_of(submission),
               payload={"challenge": challenge.slug, "team": submission.team.name, "sha256": submission.sha256,
                        "private_score": submission.private_score, "rank": rank, "of": len(board)},
               inputs=[subject_of(challenge.hidden_corpus)])
    challenge.closed_at = timezone.now()
    challenge.save(update_fields=["closed_at"])
    record(EventType.INNOVATION_CHALLENGE_CLOSED, actor="system", subject=subject_of(challenge),
           payload={"board": [{"rank": r, "team": s.team.name, "sha256": s.sha256, "private_score": s.private_score}
                              for r, s in enumerate(board, 1)]},
           inputs=[subject_of(s) for s in board])
    return challenge


@transaction.atomic(durable=True)
def fail_close(*, challenge_id: int, reason: str) -> Challenge:
    """The private scoring failed: the challenge can be closed again."""
    challenge = Challenge.objects.select_for_update().get(pk=challenge_id)
    challenge.close_task_id, challenge.close_failed_at = None, timezone.now()
    challenge.save(update_fields=["close_task_id", "close_failed_at"])
    record(EventType.INNOVATION_CHALLENGE_CLOSE_FAILED, actor="system", subject=subject_of(challenge),
           payload={"reason": reason[:2000]})
    return challenge


def close_lost(task, reason: str) -> None:
    """The worker scoring the finals died (progress.recover_lost_tasks): the close fails, and
    the steward closes the challenge again."""
    challenge = Challenge.objects.filter(close_task_id=task.pk, closed_at__isnull=True).first()
    if challenge is not None:
        fail_close(challenge_id=challenge.pk, reason=reason)


# --- showcase and reuse --------------------------------------------------------------------


@transaction.atomic(durable=True)
def share_result(*, actor, submission: Submission, title: str, summary: str, licence: str, report: str = "",
                 demo_url: str = "") -> ShowcaseItem:
    """A team puts a scored result of a closed challenge on the showcase, under a licence."""
    innovation_rules.check_share_result(actor, submission)
    submission = Submission.objects.select_for_update().select_related("challenge", "team").get(pk=submission.pk)
    challenge = submission.challenge
    if challenge.closed_at is None:
        raise Conflict(gettext("%(challenge_slug)s has not closed: results are shared once the final board "
                               "is out")
                       % {"challenge_slug": challenge.slug})
    if submission.status != SubmissionStatus.SCORED:
        raise Conflict(gettext("submission #%(submission)s is %(submission_status)s: only scored results "
                               "are shared")
                       % {"submission": submission.pk, "submission_status": submission.get_status_display()})
    if ShowcaseItem.objects.filter(submission=submission).exists():
        raise Conflict(gettext("submission #%(submission)s is already on the showcase")
                       % {"submission": submission.pk})
    if licence not in Licence.values:
        raise InvalidInput("licence", gettext("one of %(licence_values)s")
                                      % {"licence_values": ', '.join(Licence.values)})
    if demo_url and not demo_url.startswith(("https://", "http://")):
        raise InvalidInput("demo_url", gettext("an http(s) address"))
    item = ShowcaseItem.objects.create(
        challenge=challenge, team=submission.team, submission=submission, title=text(title, "title", limit=TITLE_MAX),
        summary=text(summary, "summary", limit=2000), report=text(report, "report", limit=TEXT_MAX, required=False),
        demo_url=demo_url, licence=licence, published_by=actor)
    item.card = card_of(item)
    item.save(update_fields=["card"])
    record(EventType.INNOVATION_RESULT_SHARED, actor=actor_of(actor), subject=subject_of(item),
           payload={"challenge": challenge.slug, "team": submission.team.name, "sha256": submission.sha256,
                    "licence": licence, "card": item.card},
           inputs=[subject_of(submission), subject_of(challenge)])
    return item


def reuse_base(*, actor, item: ShowcaseItem, task: str) -> dict:
    """Check that `actor` may build on a shared result (fine-tune its weights in a sandbox
    job) and say what the derivation records: the weights' path and the attribution."""
    if item.submission.kind != SubmissionKind.WEIGHTS:
        raise InvalidInput("params.base_model", gettext("showcase #%(item)s is code, not weights to "
                                                        "fine-tune")
                                                % {"item": item.pk})
    if item.challenge.task != task:
        raise InvalidInput("params.base_model", gettext("showcase #%(item)s is a %(item_challenge_task)s "
                                                        "model, not %(task)s")
                                                % {"item": item.pk,
                                                   "item_challenge_task": item.challenge.task,
                                                   "task": task})
    innovation_rules.check_reuse_result(actor, item)
    return {"showcase": item.pk, "title": item.title, "team": item.team.name, "licence": item.licence,
            "organisations": item.card.get("team", {}).get("organisations", []), "sha256": item.submission.sha256,
            "path": item.submission.path}


@transaction.atomic(durable=True)
def record_result_download(*, actor, item: ShowcaseItem) -> ShowcaseItem:
    innovation_rules.check_download_result(actor)
    if item.submission.kind != SubmissionKind.WEIGHTS:
        raise Conflict(gettext("showcase #%(item)s has no weights to download") % {"item": item.pk})
    record(EventType.INNOVATION_RESULT_DOWNLOADED, actor=actor_of(actor), subject=subject_of(item),
           payload={"licence": item.licence, "sha256": item.submission.sha256,
                    "organisation": actor.organisation.code if actor.organisation_id else ""})
    return item
