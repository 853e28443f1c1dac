"""API for organisations, users and the caller's own identity."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from django.contrib.auth.signals import user_logged_in
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel import roles

from . import actions, rules
from .models import Organisation, Role, User


class OrganisationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "code", "name", "name_en", "kind", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Uniqueness is checked by the action, with the field named; skip DRF's copy.
        extra_kwargs = {"code": {"validators": []}, "name": {"validators": []}}


class UserSerializer(serializers.ModelSerializer):
    organisation = serializers.SlugRelatedField(slug_field="code", queryset=Organisation.objects.all())
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = User
        fields = ["id", "username", "password", "email", "first_name", "role", "organisation", "is_active"]
        read_only_fields = ["id", "is_active"]
        extra_kwargs = {"username": {"validators": []}}


class OrganisationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The directory of organisations. Every logged-in user reads it; admins add to it."""

    serializer_class = OrganisationSerializer
    queryset = Organisation.objects.all()

    def create(self, request, *args, **kwargs):
        rules.check_manage_accounts(request.user)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = actions.create_organisation(actor=self.request.user, **serializer.validated_data)


class UserViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Users: admins and auditors see everyone, others their own organisation."""

    serializer_class = UserSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return User.objects.none()
        return rules.visible_users(
            self.request.user, User.objects.select_related("organisation")
        )

    def create(self, request, *args, **kwargs):
        # Refuse before validating, so a non-admin learns nothing about existing names.
        rules.check_manage_accounts(request.user)
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = actions.create_user(
            actor=self.request.user,
            username=data["username"],
            password=data["password"],
            role=data["role"],
            organisation=data["organisation"],
            email=data.get("email", ""),
            display_name=data.get("first_name", ""),
        )


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.CharField()
    organisation = OrganisationSerializer(allow_null=True)


class MeView(APIView):
    """Who the caller is: username, role and organisation."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = request.user
        return Response(
            MeSerializer(
                {
                    "id": user.pk,
                    "username": user.username,
                    "role": roles.role_of(user),
                    "organisation": user.organisation,
                }
            ).data
        )


class ObtainTokenView(ObtainAuthToken):
    """Exchange a username and password for the user's API token."""

    # Too many failed tries for a username from one client answer 429 (LoginLocked below).
    locks_out_failed_logins = True

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
        # axes flags the DRF request when this try was refused or ended in a lockout.
        if getattr(request, "axes_locked_out", False):
            raise LoginLocked()
        if not valid:
            raise serializers.ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        # A successful login, as the login page sends it: axes clears this client's failures.
        user_logged_in.send(sender=type(user), request=request, user=user)
        token = actions.issue_api_token(user=user)
        return Response({"token": token.key})


class LoginLocked(exceptions.Throttled):
    """Too many failed logins for this username from this client (accounts.throttling)."""

    def __init__(self):
        from .throttling import cooloff_seconds, lockout_message

        super().__init__(wait=cooloff_seconds(), detail=lockout_message())
