"""API for crowd innovation: scenarios, challenges (starter kit, leaderboards, close), teams
and invitations, submissions (with their inclusion proofs), the showcase (with its
provenance badge) and the bureau's metrics.

Scenarios, challenges, boards and the showcase are read by anyone logged in; teams see their
own submissions and the Ladder's scores, never the exact public scores."""
from __future__ import annotations

import json

from django.http import FileResponse, HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Dataset
from corpora.models import CorpusVersion
from kernel import roles
from kernel.errors import Conflict
from kernel.events import EventType
from kernel.paths import state_path
from progress.models import TaskProgress
from provenance import lineage
from provenance.api import InclusionProofSerializer, LineageReportSerializer
from provenance.models import LineageEvent
from provenance.recorder import subject_of

from . import actions, kit, queries, rules
from .models import (
    Challenge,
    InterestKind,
    Licence,
    Scenario,
    ShowcaseItem,
    Submission,
    SubmissionKind,
    Team,
    TeamInvitation,
)


def _progress(task_id) -> dict | None:
    task = TaskProgress.objects.filter(pk=task_id).first() if task_id else None
    return None if task is None else {"id": str(task.pk), "percent": task.percent, "stage": task.stage_text(),
                                      "status": task.status}


class ProgressRefSerializer(serializers.Serializer):
    """The worker task behind it: follow it at /api/tasks/{id}/."""

    id = serializers.CharField()
    percent = serializers.FloatField()
    stage = serializers.CharField()
    status = serializers.CharField()


# --- scenarios ---------------------------------------------------------------------------


class ScenarioSerializer(serializers.ModelSerializer):
    bureau = serializers.SlugRelatedField(slug_field="code", read_only=True)
    datasets = serializers.SlugRelatedField(slug_field="slug", many=True, queryset=Dataset.objects.all(),
                                            required=False)
    followers = serializers.SerializerMethodField()
    interested = serializers.SerializerMethodField()
    challenges = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = Scenario
        fields = ["slug", "bureau", "title", "title_en", "background", "contact", "datasets", "status",
                  "deployment_note", "followers", "interested", "challenges", "created_at"]
        read_only_fields = ["bureau", "status", "deployment_note", "followers", "interested", "challenges",
                            "created_at"]

    def get_followers(self, obj) -> int:
        return obj.interests.filter(kind=InterestKind.FOLLOW).count()

    def get_interested(self, obj) -> list[str]:
        return sorted({i.organisation.code for i in obj.interests.filter(kind=InterestKind.INTEREST)
                       .select_related("organisation")})


class FollowSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=InterestKind.choices, default=InterestKind.FOLLOW)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(allow_blank=True)


class ScenarioViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):
    """Scenarios a bureau opens from its plan (场景开放): follow them, say you are interested."""

    serializer_class = ScenarioSerializer
    lookup_field = "slug"
    queryset = Scenario.objects.select_related("bureau").prefetch_related("datasets", "challenges")

    def perform_create(self, serializer):
        body = serializer.validated_data
        serializer.instance = actions.open_scenario(
            actor=self.request.user, slug=body["slug"], title=body["title"], title_en=body.get("title_en", ""),
            background=body["background"], contact=body["contact"], datasets=body.get("datasets", []))

    @extend_schema(request=FollowSerializer, responses={201: ScenarioSerializer})
    @action(detail=True, methods=["post"])
    def follow(self, request, slug=None):
        """Follow the scenario (kind=follow), or say your organisation is interested (kind=interest, a note)."""
        body = FollowSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        scenario = self.get_object()
        actions.follow_scenario(actor=request.user, scenario=scenario, **body.validated_data)
        return Response(ScenarioSerializer(scenario).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=NoteSerializer, responses=ScenarioSerializer)
    @action(detail=True, methods=["post"])
    def deploy(self, request, slug=None):
        """The bureau's stewards mark the scenario's result as deployed in their work."""
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        scenario = actions.mark_deployed(actor=request.user, scenario=self.get_object(),
                                         note=body.validated_data["note"])
        return Response(ScenarioSerializer(scenario).data)


# --- challenges ----------------------------------------------------------------------------


class LadderSerializer(serializers.Serializer):
    mechanism = serializers.CharField()
    step = serializers.FloatField()
    higher_is_better = serializers.BooleanField()
    rule = serializers.CharField()


class ChallengeSerializer(serializers.ModelSerializer):
    scenario = serializers.SlugRelatedField(slug_field="slug", queryset=Scenario.objects.all())
    training_dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    hidden_corpus = serializers.PrimaryKeyRelatedField(queryset=CorpusVersion.objects.all(),
                                                       help_text="a version of a compute-only dataset")
    phase = serializers.SerializerMethodField()
    metric = serializers.SerializerMethodField()
    leaderboard = serializers.SerializerMethodField()
    teams = serializers.SerializerMethodField()

    class Meta:
        model = Challenge
        fields = ["slug", "scenario", "title", "task", "metric", "training_dataset", "hidden_corpus", "rules",
                  "opens_at", "final_at", "closes_at", "phase", "daily_limit", "max_submission_bytes",
                  "ladder_step", "leaderboard", "teams", "closed_at", "created_at"]
        read_only_fields = ["metric", "phase", "leaderboard", "teams", "closed_at", "created_at"]

    def get_phase(self, obj) -> str:
        return obj.phase()

    def get_metric(self, obj) -> str:
        return obj.spec.get("metric", "")

    @extend_schema_field(LadderSerializer)
    def get_leaderboard(self, obj) -> dict:
        return queries.ladder_of(obj).describe()

    def get_teams(self, obj) -> int:
        return obj.teams.count()


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    organisation = serializers.CharField(allow_blank=True)


class TeamSerializer(serializers.ModelSerializer):
    challenge = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    captain = serializers.SlugRelatedField(slug_field="username", read_only=True)
    members = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "challenge", "name", "captain", "members", "ladder_score", "created_at"]
        read_only_fields = ["id", "challenge", "captain", "members", "ladder_score", "created_at"]

    @extend_schema_field(MemberSerializer(many=True))
    def get_members(self, obj) -> list[dict]:
        return [{"username": m.username, "organisation": m.organisation.code if m.organisation_id else ""}
                for m in obj.members.select_related("organisation").order_by("username")]


class PublicRowSerializer(serializers.Serializer):
    team = serializers.CharField()
    score = serializers.FloatField()
    submissions = serializers.IntegerField()
    organisations = serializers.ListField(child=serializers.CharField())


class PublicBoardSerializer(serializers.Serializer):
    """The public board: each team's score as the Ladder released it."""

    mechanism = LadderSerializer()
    phase = serializers.CharField()
    rows = PublicRowSerializer(many=True)


class PrivateRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True)
    team = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    submission = serializers.IntegerField()
    sha256 = serializers.CharField()


class PrivateBoardSerializer(serializers.Serializer):
    """The final ranking on the private part of the test set."""

    closed_at = serializers.DateTimeField()
    rows = PrivateRowSerializer(many=True)


class ClosingChallengeSerializer(ChallengeSerializer):
    """The challenge, closed, with the scoring task to follow."""

    progress = ProgressRefSerializer(allow_null=True, read_only=True)

    class Meta(ChallengeSerializer.Meta):
        fields = [*ChallengeSerializer.Meta.fields, "progress"]


class ChallengeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       viewsets.GenericViewSet):
    """Challenges: a task on a scenario, scored on a hidden compute-only test set."""

    serializer_class = ChallengeSerializer
    lookup_field = "slug"
    queryset = Challenge.objects.select_related("scenario", "training_dataset", "hidden_corpus")

    def perform_create(self, serializer):
        body = serializer.validated_data
        serializer.instance = actions.open_challenge(actor=self.request.user, **body)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="starter-kit")
    def starter_kit(self, request, slug=None):
        """Mock data, the schema, templates of both submission formats and a local scorer."""
        challenge = self.get_object()
        response = HttpResponse(kit.starter_kit(challenge), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{challenge.slug}-starter-kit.zip"'
        return response

    @extend_schema(responses={200: PublicBoardSerializer})
    @action(detail=True, methods=["get"])
    def leaderboard(self, request, slug=None):
        """The public board: each team's score as the Ladder released it, with its parameters."""
        challenge = self.get_object()
        return Response({"mechanism": queries.ladder_of(challenge).describe(), "phase": challenge.phase(),
                         "rows": queries.board(challenge, "public")})

    @extend_schema(responses={200: PrivateBoardSerializer, 409: OpenApiResponse(
        description="The challenge has not closed: the private board comes at the close.")})
    @action(detail=True, methods=["get"], url_path="private-board")
    def private_board(self, request, slug=None):
        """The final ranking on the private part, once the challenge has closed."""
        challenge = self.get_object()
        if challenge.closed_at is None:
            raise Conflict(_("%(challenge_slug)s has not closed: the private board comes at the close")
                           % {"challenge_slug": challenge.slug})
        return Response({"closed_at": challenge.closed_at, "rows": queries.board(challenge, "private")})

    @extend_schema(request=None, responses={202: ClosingChallengeSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, slug=None):
        """End submissions and score each team's final on the private part (a worker task)."""
        challenge = actions.close_challenge(actor=request.user, challenge=self.get_object())
        data = ChallengeSerializer(challenge).data
        data["progress"] = _progress(challenge.close_task_id)
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(methods=["GET"], summary="The registered teams", responses=TeamSerializer(many=True))
    @extend_schema(methods=["POST"], summary="Register your team, with you as captain", request=TeamSerializer,
                   responses={201: TeamSerializer})
    @action(detail=True, methods=["get", "post"])
    def teams(self, request, slug=None):
        """The registered teams; POST {name} registers yours, with you as captain."""
        challenge = self.get_object()
        if request.method == "GET":
            return Response(TeamSerializer(challenge.teams.select_related("captain"), many=True).data)
        body = TeamSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = actions.register_team(actor=request.user, challenge=challenge, name=body.validated_data["name"])
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class InvitationSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", read_only=True)
    challenge = serializers.CharField(source="team.challenge.slug", read_only=True)
    invitee = serializers.SlugRelatedField(slug_field="username", read_only=True)
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TeamInvitation
        fields = ["id", "team", "challenge", "invitee", "invited_by", "status", "created_at", "decided_at"]
        read_only_fields = fields


class InviteSerializer(serializers.Serializer):
    username = serializers.CharField()


class TeamViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TeamSerializer
    queryset = Team.objects.select_related("challenge", "captain")

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer})
    @action(detail=True, methods=["post"])
    def invite(self, request, pk=None):
        """The captain invites a person of any organisation."""
        body = InviteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = actions.invite(actor=request.user, team=self.get_object(),
                                    username=body.validated_data["username"])
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=TeamSerializer)
    @action(detail=True, methods=["post"])
    def leave(self, request, pk=None):
        """A member (not the captain) leaves the team while submissions are open."""
        team = actions.leave_team(actor=request.user, team=self.get_object())
        return Response(TeamSerializer(team).data)


class InvitationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your invitations to teams."""

    serializer_class = InvitationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TeamInvitation.objects.none()
        return TeamInvitation.objects.filter(invitee=self.request.user).select_related("team__challenge").order_by(
            "-created_at")

    def _answer(self, request, pk, accept: bool):
        invitation = self.get_object()  # DRF's lookup: an id that is not a number is a 404, not a 500
        invitation = actions.answer_invitation(actor=request.user, invitation=invitation, accept=accept)
        return Response(InvitationSerializer(invitation).data)

    @extend_schema(request=None, responses=InvitationSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        return self._answer(request, pk, True)

    @extend_schema(request=None, responses=InvitationSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        return self._answer(request, pk, False)


# --- submissions ---------------------------------------------------------------------------


class SubmissionSerializer(serializers.ModelSerializer):
    challenge = serializers.SlugRelatedField(slug_field="slug", queryset=Challenge.objects.all())
    team = serializers.CharField(source="team.name", read_only=True)
    submitted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    file = serializers.FileField(write_only=True, required=False, help_text="model weights (torch.save state_dict)")
    code = serializers.CharField(write_only=True, required=False, trim_whitespace=False,
                                 help_text="a prediction script: python predict.py FEATURES.parquet")
    progress = serializers.SerializerMethodField()
    public_score = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = ["id", "challenge", "team", "submitted_by", "kind", "file", "code", "note", "sha256", "size",
                  "status", "status_reason", "displayed_score", "public_score", "private_score", "final", "progress",
                  "created_at", "scored_at"]
        read_only_fields = ["id", "team", "submitted_by", "sha256", "size", "status", "status_reason",
                            "displayed_score", "public_score", "private_score", "final", "progress", "created_at",
                            "scored_at"]

    @extend_schema_field(ProgressRefSerializer(allow_null=True))
    def get_progress(self, obj) -> dict | None:
        return _progress(obj.task_id)

    def get_public_score(self, obj) -> float | None:
        """Exact: for the bureau's stewards and auditors only (teams see the Ladder's score)."""
        request = self.context.get("request")
        if request is not None and rules.sees_exact_scores(request.user, obj.challenge):
            return obj.public_score
        return None


class ScoringEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    hash = serializers.CharField()
    payload = serializers.DictField()
    proof = InclusionProofSerializer(allow_null=True, help_text="null while the event is not anchored yet")


class SubmissionProofSerializer(serializers.Serializer):
    """A submission's scoring events, each with its inclusion proof on the chain."""

    submission = serializers.IntegerField()
    events = ScoringEventSerializer(many=True)


class SubmissionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        viewsets.GenericViewSet):
    """Submissions: weights (multipart `file`) or code (`code`) for a challenge you have a team in."""

    serializer_class = SubmissionSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Submission.objects.none()
        qs = rules.visible_submissions(self.request.user, Submission.objects.select_related(
            "challenge__scenario", "team", "submitted_by"))
        if self.request.query_params.get("challenge"):
            qs = qs.filter(challenge__slug=self.request.query_params["challenge"])
        return qs

    def perform_create(self, serializer):
        body = serializer.validated_data
        kind = body.get("kind")
        if kind == SubmissionKind.WEIGHTS:
            upload = body.get("file")
            limit = body["challenge"].max_submission_bytes
            content = upload.read(limit + 1) if upload is not None else b""
        else:
            content = body.get("code", "").encode()
        serializer.instance = actions.submit(actor=self.request.user, challenge=body["challenge"], kind=kind,
                                             content=content, note=body.get("note", ""))

    @extend_schema(request=None, responses=SubmissionSerializer)
    @action(detail=True, methods=["post"])
    def final(self, request, pk=None):
        """Choose this scored submission as your team's final for the private board."""
        submission = actions.choose_final(actor=request.user, submission=self.get_object())
        return Response(SubmissionSerializer(submission, context={"request": request}).data)

    @extend_schema(responses={200: SubmissionProofSerializer, 404: OpenApiResponse(
        description="No such submission, or it has no score yet.")})
    @action(detail=True, methods=["get"])
    def proof(self, request, pk=None):
        """The submission's scoring events with their inclusion proofs on the chain: what a team
        shows to prove its score and rank."""
        submission = self.get_object()
        events = LineageEvent.objects.filter(subject=subject_of(submission), event_type__in=[
            EventType.INNOVATION_SUBMISSION_SCORED, EventType.INNOVATION_FINAL_SCORED]).order_by("seq")
        if not events:
            return Response({"detail": f"submission #{submission.pk} has no score yet"},
                            status=status.HTTP_404_NOT_FOUND)
        return Response({"submission": submission.pk, "events": [
            {"seq": e.seq, "event_type": e.event_type, "hash": e.hash, "payload": json.loads(e.payload),
             "proof": lineage.inclusion_proof(e.seq)} for e in events]})


# --- showcase ------------------------------------------------------------------------------


class ShowcaseSerializer(serializers.ModelSerializer):
    challenge = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True)
    submission = serializers.PrimaryKeyRelatedField(queryset=Submission.objects.all())
    licence = serializers.ChoiceField(choices=Licence.choices)
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reuses = serializers.SerializerMethodField()

    class Meta:
        model = ShowcaseItem
        fields = ["id", "challenge", "team", "submission", "title", "summary", "report", "demo_url", "licence",
                  "card", "reuses", "published_by", "published_at"]
        read_only_fields = ["id", "challenge", "team", "card", "reuses", "published_by", "published_at"]

    def get_reuses(self, obj) -> int:
        return obj.derived_jobs.count()


class ShowcaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):
    """The roadshow (路演): shared results with their model cards, verifiable on the chain."""

    serializer_class = ShowcaseSerializer
    queryset = ShowcaseItem.objects.select_related("challenge", "team", "submission", "published_by")

    def perform_create(self, serializer):
        body = serializer.validated_data
        serializer.instance = actions.share_result(
            actor=self.request.user, submission=body["submission"], title=body["title"], summary=body["summary"],
            licence=body["licence"], report=body.get("report", ""), demo_url=body.get("demo_url", ""))

    @extend_schema(responses={200: LineageReportSerializer})
    @action(detail=True, methods=["get"])
    def verify(self, request, pk=None):
        """The provenance badge: every event of the result's lineage recomputed and checked
        against its anchor on the chain (read-only, for anyone logged in)."""
        item = self.get_object()
        report = lineage.verify_lineage(subject_of(item))
        return Response(report.to_dict())

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def weights(self, request, pk=None):
        """The shared weights, under the result's licence (each download is an event)."""
        item = actions.record_result_download(actor=request.user, item=self.get_object())
        response = FileResponse(open(state_path(item.submission.path), "rb"), as_attachment=True,
                                filename=f"miliao-showcase-{item.pk}.pt", content_type="application/octet-stream")
        response["X-Content-SHA256"] = item.submission.sha256
        response["X-Licence"] = item.licence
        return response


# --- metrics -------------------------------------------------------------------------------


class MetricsSerializer(serializers.Serializer):
    """Crowd-innovation figures (counts)."""

    scenarios = serializers.IntegerField()
    scenarios_deployed = serializers.IntegerField()
    followers = serializers.IntegerField()
    interested_organisations = serializers.IntegerField()
    challenges = serializers.IntegerField()
    challenges_open = serializers.IntegerField()
    teams = serializers.IntegerField()
    participants = serializers.IntegerField()
    participating_organisations = serializers.IntegerField()
    submissions = serializers.IntegerField()
    submissions_scored = serializers.IntegerField()
    shared_results = serializers.IntegerField()
    reuse_jobs = serializers.IntegerField()
    reuse_downloads = serializers.IntegerField()


class MetricsView(APIView):
    """Crowd-innovation figures for the bureau (stewards: their bureau's; auditors and admins: all)."""

    @extend_schema(responses={200: MetricsSerializer})
    def get(self, request):
        rules.check_read_innovation_metrics(request.user)
        bureau = request.user.organisation if roles.has_role(request.user, "steward") else None
        return Response(queries.metrics(bureau))
