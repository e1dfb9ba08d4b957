"""The session endpoints of /api/v1/: spawn (one or a batch), list and read sessions, their
messages, and act on them (send, kill, restore, merge, review, claim a PR). Thin, as every view
in ``sessions.api.views``: validate, check the caller's role in the project, call one service.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from integrations.base import IntegrationError, PermanentIntegrationError
from integrations.registry import ConfigurationError
from sessions.agents import claiming, messaging, operating, spawning
from sessions.api import serializers as s
from sessions.api.errors import Conflict, error_body, to_api_error
from sessions.api.pagination import cursor_by
from sessions.api.permissions import project_for, session_for
from sessions.api.views import AoAPIView, AoListView
from sessions.core import selectors
from sessions.core.selectors import OPERATE
from sessions.domain.lifecycle import Zone
from sessions.models import Actor, ApiToken, Message, Session
from sessions.prs import merge, reviews


def _actor_fields(request) -> dict:
    """How services record who acted on the timeline: a person (or their bot token) is a user."""
    return {"by": request.user, "actor": Actor.USER}


# --- spawning -------------------------------------------------------------------------------------
class SpawnView(AoAPIView):
    """Spawn a session on an issue and/or with a prompt (operator). Queued when over the cap."""

    serializer_class = s.SpawnSerializer

    @extend_schema(
        operation_id="sessions_spawn", request=s.SpawnSerializer, responses={201: s.SessionSerializer}
    )
    def post(self, request, key: str):
        project = project_for(request, key, OPERATE)
        data = self.body(s.SpawnSerializer)
        session = spawning.session_spawn(
            project=project,
            issue_ref=data.get("issue") or None,
            prompt=data.get("prompt") or None,
            agent=data.get("agent") or None,
            branch=data.get("branch") or None,
            missing_issue_ok=data.get("missing_issue_ok", False),
            host=data.get("host") or None,
            **_actor_fields(request),
        )
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class BatchSpawnView(AoAPIView):
    """One session per issue, in the order given (each issue once). Failures are per issue."""

    serializer_class = s.BatchSpawnSerializer

    @extend_schema(
        operation_id="sessions_batch_spawn",
        request=s.BatchSpawnSerializer,
        responses=s.BatchSpawnResponseSerializer,
    )
    def post(self, request, key: str):
        project = project_for(request, key, OPERATE)
        data = self.body(s.BatchSpawnSerializer)
        results = []
        for ref in dict.fromkeys(data["issues"]):
            try:
                session = spawning.session_spawn(
                    project=project, issue_ref=ref, agent=data.get("agent") or None, **_actor_fields(request)
                )
            except (spawning.SpawnRefused, ConfigurationError, IntegrationError, ValueError) as exc:
                translated = to_api_error(exc)
                code = getattr(getattr(translated, "detail", None), "code", None) or "invalid"
                results.append({"issue": ref, "session": None, "error": error_body(code, str(exc))["error"]})
                continue
            session.refresh_from_db()
            results.append({"issue": ref, "session": s.SessionSerializer(session).data, "error": None})
        failed = sum(1 for r in results if r["error"])
        return Response({"results": results, "spawned": len(results) - failed, "failed": failed})


# --- sessions -------------------------------------------------------------------------------------
class SessionListView(AoListView):
    """Sessions of your projects, newest first; filter by project, status, zone, agent, kind."""

    pagination_class = cursor_by("-created_at")
    serializer_class = s.SessionSerializer

    @extend_schema(operation_id="sessions_list", parameters=[s.SessionFilterSerializer])
    def get(self, request):
        filters = self.query(s.SessionFilterSerializer)
        qs = Session.objects.select_related("project", "pull_request", "created_by", "credentials_of").filter(
            project__in=selectors.projects_visible_to(request.user)
        )
        if filters.get("project"):
            qs = qs.filter(project=project_for(request, filters["project"]))
        for name in ("status", "zone", "agent", "kind"):
            if filters.get(name):
                qs = qs.filter(**{name: filters[name]})
        if not filters["include_done"]:
            qs = qs.exclude(zone=Zone.DONE)
        return self.page(qs, s.SessionSerializer)


class SessionDetailView(AoAPIView):
    serializer_class = s.SessionDetailSerializer

    @extend_schema(operation_id="sessions_retrieve")
    def get(self, request, session_id: str):
        return Response(s.SessionDetailSerializer(session_for(request, session_id)).data)


SEND_DESCRIPTION = (
    "Queue a message for the agent (operator). A session that is not running (killed, its runtime "
    "gone) is restored first and the message is delivered once the agent is ready (`restored` says "
    "so); 409 `refused` when it cannot be restored (cleaned up, worktree gone), with the reason: "
    "nothing is queued then."
)


class SessionMessagesView(AoListView):
    """A session's messages (oldest first); POST queues one (operator), like `ao send`."""

    pagination_class = cursor_by("pk")
    serializer_class = s.MessageSerializer

    @extend_schema(operation_id="messages_list")
    def get(self, request, session_id: str):
        session = session_for(request, session_id)
        return self.page(
            Message.objects.filter(session=session).select_related("sender_user", "session"),
            s.MessageSerializer,
        )

    @extend_schema(
        operation_id="messages_create",
        request=s.MessageCreateSerializer,
        responses={201: s.MessageSentSerializer},
        description=SEND_DESCRIPTION,
    )
    def post(self, request, session_id: str):
        return _send(self, request, session_id)


def _send(view: AoAPIView, request, session_id: str) -> Response:
    session = session_for(request, session_id, OPERATE)
    data = view.body(s.MessageCreateSerializer)
    try:
        sent = messaging.session_send(
            session=session,
            text=data["text"],
            sender=Actor.USER,
            sender_user=request.user,
            sender_name=getattr(request.auth, "name", "") if isinstance(request.auth, ApiToken) else "",
            answers_prompt=data["answers_prompt"],
        )
    except messaging.SendRefused as exc:
        raise Conflict(str(exc), code="refused") from exc
    except ValueError as exc:
        raise serializers.ValidationError({"text": [str(exc)]}) from exc
    message = sent.message
    message.refresh_from_db()
    message.restored = sent.restored
    return Response(s.MessageSentSerializer(message).data, status=status.HTTP_201_CREATED)


class SessionSendView(AoAPIView):
    serializer_class = s.MessageCreateSerializer

    @extend_schema(
        operation_id="sessions_send",
        request=s.MessageCreateSerializer,
        responses={201: s.MessageSentSerializer},
        description=SEND_DESCRIPTION,
    )
    def post(self, request, session_id: str):
        return _send(self, request, session_id)


class SessionKillView(AoAPIView):
    serializer_class = s.KillSerializer

    @extend_schema(
        operation_id="sessions_kill",
        request=s.KillSerializer,
        responses={200: s.SessionSerializer, 202: s.SessionSerializer},
        description="200: killed. 202: the session runs on another agent host; the kill was "
        "requested there and its result lands on the session's timeline.",
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        data = self.body(s.KillSerializer)
        reason = data["reason"] or f"by {request.user.get_username()} via the API"
        requested = operating.session_kill(session=session, reason=reason, **_actor_fields(request))
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=202 if requested else 200)


class SessionRestoreView(AoAPIView):
    serializer_class = s.SessionSerializer

    @extend_schema(
        operation_id="sessions_restore",
        request=None,
        responses={200: s.SessionSerializer, 202: s.SessionSerializer},
        description="200: restored. 202: the session runs on another agent host; the restore was "
        "requested there and its result lands on the session's timeline.",
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        requested = operating.session_restore(session=session, **_actor_fields(request))
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=202 if requested else 200)


class SessionMergeView(AoAPIView):
    """Merge the session's PR through the project's SCM, only when it is mergeable (else 409)."""

    serializer_class = s.MergeResponseSerializer

    @extend_schema(operation_id="sessions_merge", request=None, responses=s.MergeResponseSerializer)
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        try:
            pr = merge.session_pull_request_merge(session=session, by=request.user, via="the API")
        except merge.MergeRefused as exc:
            raise Conflict(f"not mergeable: {exc}", code="not_mergeable", blockers=exc.blockers) from exc
        return Response(
            {"session": session.id, "number": pr.number, "merged": pr.state == "merged", "state": pr.state}
        )


class SessionReviewView(AoAPIView):
    """Approve, request changes on or comment on the session's PR (operator; `local` SCM only, else 409).
    Requesting changes needs a ``body``. The review is on the timeline and the PR's facts are re-read."""

    serializer_class = s.ReviewSerializer

    @extend_schema(
        operation_id="sessions_review", request=s.ReviewSerializer, responses=s.ReviewResponseSerializer
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        data = self.body(s.ReviewSerializer)
        pr = getattr(session, "pull_request", None)
        if pr is None:
            raise Conflict(f"{session.id} has no pull request", code="no_pr")
        try:
            review = reviews.pull_request_review(
                project=session.project,
                number=pr.number,
                state=reviews.DECISIONS[data["decision"]],
                reviewer=request.user.get_username(),
                body=data["body"],
                **_actor_fields(request),
                via="the API",
            )
        except reviews.ReviewNotSupported as exc:
            raise Conflict(str(exc), code="not_supported") from exc
        except (ValueError, PermanentIntegrationError) as exc:
            raise Conflict(str(exc), code="review_refused") from exc
        pr.refresh_from_db()
        return Response(
            {
                "session": session.id,
                "number": pr.number,
                "state": review.state,
                "review_decision": pr.review_decision,
            }
        )


class SessionClaimPullRequestView(AoAPIView):
    """Link an existing PR (number or URL) to the session: its facts are read from the SCM and stored."""

    serializer_class = s.ClaimPullRequestSerializer

    @extend_schema(
        operation_id="sessions_claim_pr",
        request=s.ClaimPullRequestSerializer,
        responses=s.SessionDetailSerializer,
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        number = self.body(s.ClaimPullRequestSerializer)["number"]
        try:
            claiming.session_pr_claim(session=session, number=number, **_actor_fields(request))
        except claiming.ClaimedPullRequestMissing as exc:
            raise NotFound(str(exc)) from exc
        except claiming.SessionHasPullRequest as exc:
            raise Conflict(str(exc), code="has_pr") from exc
        except claiming.PullRequestHeld as exc:
            raise Conflict(str(exc), code="claimed") from exc
        except (claiming.ClaimRefused, PermanentIntegrationError) as exc:
            raise Conflict(str(exc), code="claim_refused") from exc
        session = session_for(request, session_id)
        return Response(s.SessionDetailSerializer(session).data)
