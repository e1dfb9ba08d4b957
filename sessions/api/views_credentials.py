"""``/api/v1/me/credentials``: your personal model credentials (issue 19), write-only.

``GET`` lists their names and when they changed, never a value; ``PUT .../NAME`` with
``{"value": "..."}`` stores or replaces one (the value is in no response, log or audit entry);
``DELETE .../NAME`` removes it. Each person manages only their own: there is no way to read,
list or change another person's, superusers included. An agent's session token is refused.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from sessions.api.views import AoAPIView
from sessions.core import secrets


class PersonalSecretSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="the environment variable your agents get it in")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PersonalSecretSetSerializer(serializers.Serializer):
    value = serializers.CharField(
        max_length=secrets.MAX_SECRET_CHARS,
        trim_whitespace=False,
        write_only=True,
        help_text="never shown back",
    )


def _person(request):
    if not getattr(request.user, "pk", None):
        raise PermissionDenied("personal credentials belong to a person: use your own API token")
    return request.user


class PersonalSecretListView(AoAPIView):
    """Your personal model credentials: names and times, never values."""

    pagination_class = None
    serializer_class = PersonalSecretSerializer

    @extend_schema(operation_id="credentials_list", responses=PersonalSecretSerializer(many=True))
    def get(self, request):
        rows = secrets.personal_secrets_of(_person(request))
        return Response(PersonalSecretSerializer(rows, many=True).data)


class PersonalSecretDetailView(AoAPIView):
    serializer_class = PersonalSecretSetSerializer

    @extend_schema(
        operation_id="credentials_set",
        request=PersonalSecretSetSerializer,
        responses={200: PersonalSecretSerializer, 201: PersonalSecretSerializer},
    )
    def put(self, request, name: str):
        user = _person(request)
        try:
            secrets.validate_personal_name(name)
        except ValueError as exc:
            raise ValidationError({"name": [str(exc)]}) from None
        data = self.body(PersonalSecretSetSerializer)
        existed = secrets.personal_secrets_of(user).filter(name=name).exists()
        try:
            row = secrets.personal_secret_set(user=user, name=name, value=data["value"])
        except ValueError as exc:  # the message names the limit, never the value
            raise ValidationError({"value": [str(exc)]}) from None
        return Response(
            PersonalSecretSerializer(row).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    @extend_schema(
        operation_id="credentials_delete",
        request=None,
        responses={204: OpenApiResponse(description="deleted; no body")},
    )
    def delete(self, request, name: str):
        if not secrets.personal_secret_delete(user=_person(request), name=name):
            raise NotFound(f"you have no personal credential {name}")
        return Response(status=status.HTTP_204_NO_CONTENT)
