from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from sessions.api import (
    sse,
    views,
    views_agent,
    views_credentials,
    views_events,
    views_hosts,
    views_reactions,
    views_sessions,
    views_usage,
)
from sessions.cli import cli_relay

urlpatterns = [
    path("me", views.MeView.as_view(), name="api-me"),
    path("me/credentials/", views_credentials.PersonalSecretListView.as_view(), name="api-credentials"),
    path(
        "me/credentials/<str:name>",
        views_credentials.PersonalSecretDetailView.as_view(),
        name="api-credential",
    ),
    path("cli", cli_relay.cli_run, name="api-cli"),  # this machine's CLI (AO_HOME/cli.json)
    path("projects/", views.ProjectListView.as_view(), name="api-projects"),
    path("projects/<str:key>/", views.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<str:key>/issues/", views.IssueListView.as_view(), name="api-issues"),
    path("projects/<str:key>/issues/<str:ref>/", views.IssueDetailView.as_view(), name="api-issue"),
    path(
        "projects/<str:key>/reactions", views_reactions.ProjectReactionsView.as_view(), name="api-reactions"
    ),
    path("projects/<str:key>/spawn", views_sessions.SpawnView.as_view(), name="api-spawn"),
    path("projects/<str:key>/batch-spawn", views_sessions.BatchSpawnView.as_view(), name="api-batch-spawn"),
    path("sessions/", views_sessions.SessionListView.as_view(), name="api-sessions"),
    path("sessions/<str:session_id>/", views_sessions.SessionDetailView.as_view(), name="api-session"),
    path(
        "sessions/<str:session_id>/messages/",
        views_sessions.SessionMessagesView.as_view(),
        name="api-messages",
    ),
    path("sessions/<str:session_id>/send", views_sessions.SessionSendView.as_view(), name="api-send"),
    path("sessions/<str:session_id>/kill", views_sessions.SessionKillView.as_view(), name="api-kill"),
    path(
        "sessions/<str:session_id>/restore", views_sessions.SessionRestoreView.as_view(), name="api-restore"
    ),
    path("sessions/<str:session_id>/merge", views_sessions.SessionMergeView.as_view(), name="api-merge"),
    path("sessions/<str:session_id>/review", views_sessions.SessionReviewView.as_view(), name="api-review"),
    path(
        "sessions/<str:session_id>/claim-pr",
        views_sessions.SessionClaimPullRequestView.as_view(),
        name="api-claim-pr",
    ),
    path("sessions/<str:session_id>/report", views_agent.ReportView.as_view(), name="api-session-report"),
    path("sessions/<str:session_id>/pr", views_agent.PullRequestOpenView.as_view(), name="api-session-pr"),
    path("events/", views_events.EventListView.as_view(), name="api-events"),
    path("events/stream", sse.events_stream, name="api-events-stream"),
    path("reactions/attempts/", views_events.ReactionAttemptListView.as_view(), name="api-reaction-attempts"),
    path("notifications/", views_events.NotificationListView.as_view(), name="api-notifications"),
    path(
        "notifications/<int:pk>/read",
        views_events.NotificationReadView.as_view(),
        name="api-notification-read",
    ),
    path("audit/", views_events.AuditListView.as_view(), name="api-audit"),
    path("usage", views_usage.UsageView.as_view(), name="api-usage"),
    path("hosts", views_hosts.HostListView.as_view(), name="api-hosts"),
    path(
        "hosts/<str:name>/allowed/<str:username>",
        views_hosts.HostAllowedView.as_view(),
        name="api-host-allowed",
    ),
    path("tokens/", views.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", views.TokenDetailView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script from a URL: no inline script (the CSP allows none).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
