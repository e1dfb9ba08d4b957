"""``/api/v1/hosts``: the agent hosts you may use, and who may use your personal host (issue 19).

``GET hosts`` lists them (a superuser: every host): name, shared or personal, owner, online, the
cap, the live sessions, whether you may use it, and, to its owner and superusers, who else may.
``PUT hosts/NAME/allowed/USER`` lets USER's sessions run on your personal host (201; 200 when they
were already), ``DELETE`` stops their new ones (204). Only the host's owner or a superuser may:
anyone else gets 403 with the reason, a host they may not use is a 404. An agent's session token
is refused.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from sessions.api.errors import Conflict
from sessions.api.views import AoAPIView
from sessions.core import hosts


class HostSerializer(serializers.Serializer):
    name = serializers.CharField()
    shared = serializers.BooleanField(help_text="any operator's sessions; else the owner's and those allowed")
    owner = serializers.CharField(allow_null=True)
    online = serializers.BooleanField(help_text="its worker's heartbeat is recent")
    last_seen = serializers.DateTimeField(allow_null=True)
    max_sessions = serializers.IntegerField(help_text="live sessions at most (the cap)")
    running = serializers.IntegerField(help_text="live sessions there now")
    may_use = serializers.BooleanField(help_text="your sessions may run there")
    allowed = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="who else may use it (its owner and superusers see this; null for others)",
    )


def _refusal(exc: hosts.HostRefused) -> Exception:
    if isinstance(exc, hosts.HostNotFound):
        return NotFound(str(exc))
    if isinstance(exc, hosts.HostForbidden):
        return PermissionDenied(str(exc))
    return Conflict(str(exc), code="refused")


class HostListView(AoAPIView):
    """The agent hosts you may use (every host for a superuser)."""

    pagination_class = None
    serializer_class = HostSerializer

    @extend_schema(operation_id="hosts_list", responses=HostSerializer(many=True))
    def get(self, request):
        return Response(HostSerializer(hosts.host_rows(user=request.user), many=True).data)


class HostAllowedView(AoAPIView):
    serializer_class = HostSerializer

    @extend_schema(
        operation_id="hosts_allow",
        request=None,
        responses={
            200: OpenApiResponse(description="already allowed"),
            201: OpenApiResponse(description="allowed"),
        },
    )
    def put(self, request, name: str, username: str):
        try:
            added = hosts.host_allow(name=name, username=username, by=request.user)
        except hosts.HostRefused as exc:
            raise _refusal(exc) from None
        return Response(
            {"host": name, "user": username, "allowed": True},
            status=status.HTTP_201_CREATED if added else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="hosts_deny",
        request=None,
        responses={204: OpenApiResponse(description="no longer allowed; no body")},
    )
    def delete(self, request, name: str, username: str):
        try:
            hosts.host_deny(name=name, username=username, by=request.user)
        except hosts.HostRefused as exc:
            raise _refusal(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
